"""The Telegram sink: a bot's messages to one chat (Bot API ``sendMessage``, HTML formatted),
and later updates of a story edit the story's message (``editMessageText``).

Guarantees (with those of :mod:`newsradar.delivery.sinks`):

* Errors are read from the Bot API's answer (``ok``, ``error_code``, ``description``): 429
  is retried after ``parameters.retry_after`` (honoured), 5xx and network errors retried, 401,
  403 and a 400 for a new message refused.
* With a journal (the service's ledger), the id of each story's message is kept per sink
  (:meth:`~newsradar.delivery.ledger.Ledger.remember_message`), written right after Telegram
  acknowledged it. A later update of the story edits that message with the whole story so far
  (one message per story in the chat); an edit Telegram refuses with a 400 (``message to edit
  not found``: deleted; ``message can't be edited``) falls back to a follow-up message, whose id
  the next update edits. ``message is not modified`` (the same edit again, after a kill) is a
  success. Without a journal, or when the story's message is not known (update 1 went out in a
  digest, or before a restart without a ledger), an update is a follow-up message.
* The token is in the URL: the sink is named ``telegram <chat_id> <api_url>`` and every error
  is scrubbed of it.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import sqlite3
from collections.abc import Sequence

from newsradar.config.watchlist import TelegramSink
from newsradar.httpclient import parse_retry_after

from .digest import Digest, digest_bullets, digest_title
from .notification import Notification
from .sinks import Permanent, Retryable, _HttpSink, chat_lines, full_form, read_secret

log = logging.getLogger(__name__)

# Telegram refuses a message longer than this (characters after entities are parsed).
TELEGRAM_TEXT_CAP = 4096
# The answer to an edit that changes nothing: the same edit was made before (a repeat).
NOT_MODIFIED = "message is not modified"


def telegram_html(n: Notification, full: bool, cap: int = TELEGRAM_TEXT_CAP) -> str:
    """Telegram HTML (parse_mode=HTML): text escaped, under ``cap`` characters (why-sentences
    dropped from the end, then the snippet cut, when it would be longer)."""
    def esc(text: str) -> str:
        return html.escape(text, quote=False)

    c = chat_lines(n, full)
    why = list(c["why"])
    snippet = c["snippet"]
    while True:
        lines = [f"<b>[{c['severity']}] {esc(c['head'])}</b>"]
        if c["orgs"]:
            lines.append(f"Organizations: {esc(c['orgs'])}")
        if c["topics"]:
            lines.append(f"Topics: {esc(c['topics'])}")
        lines.extend(f"• {esc(w)}" for w in why)
        if snippet:
            lines.append(f"<i>{esc(snippet)}</i>")
        if c["url"].startswith(("http://", "https://")):
            lines.append(f'<a href="{html.escape(c["url"], quote=True)}">Open the article</a>')
        lines.append(f"<code>{esc(c['id'])}</code>")
        text = "\n".join(lines)
        # Telegram counts the characters left after the tags are parsed; the tagged text is
        # longer, so fitting it fits the message.
        if len(text) <= cap:
            return text
        if len(why) > 1:
            why.pop()
        elif snippet:
            snippet = snippet[: max(0, len(snippet) - (len(text) - cap) - 1)].rstrip() + "…" if len(snippet) > 1 else ""
        else:
            return text[:cap]  # only a head longer than the cap is left: cut it (tags may break: rare)




def telegram_digest_html(d: Digest, cap: int = TELEGRAM_TEXT_CAP) -> str:
    """A digest in Telegram HTML, under ``cap`` characters: the lines that do not fit are
    counted at the end ("… and 12 more")."""
    def esc(text: str) -> str:
        return html.escape(text, quote=False)

    head, tail = f"<b>{esc(digest_title(d))}</b>", f"<code>{esc(d.digest_id)}</code>"
    lines = digest_bullets(d, esc, lambda url: f'<a href="{html.escape(url, quote=True)}">open</a>')
    kept = list(lines)
    while True:
        more = len(lines) - len(kept)
        text = "\n".join([head, *kept, *([f"… and {more} more"] if more else []), tail])
        if len(text) <= cap or not kept:
            return text[:cap]
        kept.pop()


class BotApiRefused(Exception):
    """A 400 from the Bot API (the caller decides: an edit falls back, a new message is refused)."""

    def __init__(self, description: str):
        super().__init__(description)
        self.description = description


class Telegram(_HttpSink):
    """A bot's messages to one chat: update 1 (and a digest) a new message, a later update an
    edit of the story's message where it is known and can be edited, a follow-up otherwise."""

    kind = "telegram"
    batched = False

    def __init__(self, cfg: TelegramSink, allow_private: bool = False, journal=None):
        token = read_secret(cfg, "token_env", "token_file")
        base = cfg.api_url.rstrip("/")
        super().__init__(f"{base}/bot{token}/sendMessage", cfg.timeout, cfg.concurrency, cfg.rate_limit,
                         allow_private or cfg.allow_private_networks, cfg.route,
                         key=f"telegram {cfg.chat_id} {base}", digest=cfg.digest)
        self.api = f"{base}/bot{token}"
        self.chat_id = cfg.chat_id
        self.journal = journal
        self._secret_text = token

    async def send(self, notifications: Sequence[Notification | Digest]) -> None:
        (n,) = notifications
        if isinstance(n, Digest):
            await self._send_message(telegram_digest_html(n))
            return
        if n.update > 1 and self.journal is not None:
            message_id = await asyncio.to_thread(self.journal.story_message, self.key, n.story_id)
            if message_id is not None:
                try:
                    await self._call("editMessageText", {"chat_id": self.chat_id, "message_id": message_id,
                                                         "text": telegram_html(n, True), "parse_mode": "HTML",
                                                         "disable_web_page_preview": True})
                    return
                except BotApiRefused as exc:
                    if NOT_MODIFIED in exc.description:
                        return  # this edit was made before (sent again after a kill)
                    log.info("alert sink telegram: cannot edit message %s of story %s (%s): a follow-up instead",
                             message_id, n.story_id, exc.description)
        message_id = await self._send_message(telegram_html(n, full_form(self.route, n, self.digest)))
        if self.journal is not None and isinstance(message_id, int):
            try:
                await asyncio.to_thread(self.journal.remember_message, self.key, n.story_id, message_id,
                                        n.notification_id)
            except sqlite3.Error as exc:
                # the message is out: sending it again would repeat it; the next update is a follow-up
                log.warning("alert sink telegram: message %s of story %s sent but not remembered (%s): its "
                            "updates will be follow-ups", message_id, n.story_id, exc)

    async def _send_message(self, text: str) -> int | None:
        try:
            result = await self._call("sendMessage", {"chat_id": self.chat_id, "text": text, "parse_mode": "HTML",
                                                      "disable_web_page_preview": True})
        except BotApiRefused as exc:
            raise Permanent(f"Telegram 400: {exc.description}") from None
        return result.get("message_id") if isinstance(result, dict) else None

    async def _call(self, method: str, payload: dict):
        """One Bot API call; its ``result``. Raises Retryable (429 with retry_after, 5xx,
        network), BotApiRefused (400) or Permanent (other 4xx); the token never in a message."""
        body = json.dumps(payload, ensure_ascii=False).encode()
        status, retry_after, answer = await self._exchange(f"{self.api}/{method}", body,
                                                           {"Content-Type": "application/json"})
        try:
            reply = json.loads(answer)
        except ValueError:
            reply = {}
        if not isinstance(reply, dict):
            reply = {}
        if 200 <= status < 300 and reply.get("ok") is True:
            return reply.get("result")
        code = reply.get("error_code") if isinstance(reply.get("error_code"), int) else status
        text = self._scrub(str(reply.get("description") or f"HTTP {status}"))[:300]
        params = reply.get("parameters") if isinstance(reply.get("parameters"), dict) else {}
        wait = params.get("retry_after")
        if code == 429 or status == 429:
            raise Retryable(f"Telegram {code}: {text}",
                            float(wait) if isinstance(wait, int | float) else parse_retry_after(retry_after))
        if code >= 500 or status >= 500 or status == 408:
            raise Retryable(f"Telegram {code}: {text}")
        if 200 <= status < 300:
            # 200 without ok: not the Bot API answering (a proxy, a captive portal): try later
            raise Retryable(f"Telegram: HTTP {status} without ok in the answer")
        if code == 400:
            raise BotApiRefused(text)
        raise Permanent(f"Telegram {code}: {text}")
