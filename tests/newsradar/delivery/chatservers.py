"""Stand-ins on 127.0.0.1 for the chat services, following their documented contracts:

* the Telegram Bot API's ``POST /bot<token>/sendMessage`` and ``/editMessageText`` (JSON body;
  answers ``{"ok": true, "result": <Message>}``, or ``{"ok": false, "error_code",
  "description"}`` with the same HTTP status, ``parameters.retry_after`` on 429; 401 for a wrong
  token, 400 for an unknown chat, a text over 4096 characters, or HTML that does not parse with
  the tags Telegram allows; an edit: 400 ``message to edit not found`` for a message id the
  chat does not have (deleted), ``message can't be edited``, ``message is not modified`` when
  the text is the one the message has);
* a Slack incoming webhook (``POST`` of ``{"text": ...}`` to the secret path; ``ok``, 429
  with ``Retry-After``, 404 ``no_service`` for another path, 400 ``invalid_payload``).
"""

from __future__ import annotations

import json
import threading
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TELEGRAM_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre", "tg-spoiler",
                 "span", "blockquote"}


class _TelegramHtml(HTMLParser):
    """The check Telegram makes of parse_mode=HTML: only its tags, balanced; returns the text."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.text: list[str] = []
        self.error: str | None = None

    def handle_starttag(self, tag, attrs):
        if tag not in TELEGRAM_TAGS:
            self.error = self.error or f"Unsupported start tag \"{tag}\""
        self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack.pop() != tag:
            self.error = self.error or f"Unexpected end tag \"{tag}\""

    def handle_data(self, data):
        self.text.append(data)


def telegram_text(html_text: str) -> tuple[str, str | None]:
    """(the text a reader sees, the parse error Telegram would answer, if any)."""
    p = _TelegramHtml()
    p.feed(html_text)
    p.close()
    if p.stack and p.error is None:
        p.error = f"Can't find end tag corresponding to start tag \"{p.stack[-1]}\""
    return "".join(p.text), p.error


class _Server:
    def __init__(self, handler):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def _answer(handler: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str] | None = None):
    handler.send_response(status)
    for k, v in (headers or {}).items():
        handler.send_header(k, v)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


class TelegramApi(_Server):
    """``too_many``: how many calls answer 429 first (with ``retry_after``); ``frozen``: message
    ids an edit of answers "message can't be edited"; :meth:`delete` removes a message."""

    def __init__(self, token: str, chats=("-1001234567890",), too_many: int = 0, retry_after: int = 2):
        self.token = token
        self.chats = set(chats)
        self.too_many = too_many
        self.retry_after = retry_after
        self.messages: list[dict] = []  # every message accepted by sendMessage, as sent
        self.chat: dict[int, dict] = {}  # message_id -> the message as the chat shows it now
        self.edits: list[dict] = []  # every edit accepted
        self.frozen: set[int] = set()
        self.calls: list[tuple[str, int]] = []  # (path with the token hidden, status)
        self.lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, reply = api.handle(self.path, self.headers.get("Content-Type", ""), body)
                with api.lock:
                    api.calls.append((self.path.replace(api.token, "<token>"), status))
                _answer(self, status, json.dumps(reply).encode(), {"Content-Type": "application/json"})

            def log_message(self, *args):
                pass

        super().__init__(Handler)
        self.url = f"http://127.0.0.1:{self.port}"

    def handle(self, path: str, content_type: str, body: bytes) -> tuple[int, dict]:
        def fail(code, description, **params):
            reply = {"ok": False, "error_code": code, "description": description}
            if params:
                reply["parameters"] = params
            return code, reply

        method = path.rsplit("/", 1)[-1]
        if method not in ("sendMessage", "editMessageText"):
            return fail(404, "Not Found")
        if path != f"/bot{self.token}/{method}":
            return fail(401, "Unauthorized")
        if not content_type.startswith("application/json"):
            return fail(400, "Bad Request: message text is empty")
        try:
            msg = json.loads(body)
        except ValueError:
            return fail(400, "Bad Request: can't parse JSON")
        with self.lock:
            if self.too_many > 0:
                self.too_many -= 1
                return fail(429, f"Too Many Requests: retry after {self.retry_after}", retry_after=self.retry_after)
        if str(msg.get("chat_id")) not in self.chats:
            return fail(400, "Bad Request: chat not found")
        text = msg.get("text") or ""
        if msg.get("parse_mode") == "HTML":
            shown, error = telegram_text(text)
            if error:
                return fail(400, f"Bad Request: can't parse entities: {error}")
        else:
            shown = text
        if not shown.strip():
            return fail(400, "Bad Request: message text is empty")
        if len(shown) > 4096:
            return fail(400, "Bad Request: message is too long")
        if method == "editMessageText":
            return self._edit(msg, shown, fail)
        with self.lock:
            self.messages.append({**msg, "shown": shown})
            message_id = len(self.messages)
            self.chat[message_id] = {"message_id": message_id, "chat": {"id": msg["chat_id"]}, "text": shown,
                                     "html": text}
            result = dict(self.chat[message_id])
        result.pop("html")
        return 200, {"ok": True, "result": result}

    def _edit(self, msg: dict, shown: str, fail) -> tuple[int, dict]:
        message_id = msg.get("message_id")
        with self.lock:
            current = self.chat.get(message_id) if isinstance(message_id, int) else None
            if current is None:
                return fail(400, "Bad Request: message to edit not found")
            if message_id in self.frozen:
                return fail(400, "Bad Request: message can't be edited")
            if current["html"] == msg["text"]:
                return fail(400, "Bad Request: message is not modified: specified new message content and "
                                 "reply markup are exactly the same as a current content and reply markup of the "
                                 "message")
            current.update(text=shown, html=msg["text"], edit_date=len(self.edits) + 1)
            self.edits.append({**msg, "shown": shown})
            result = {k: v for k, v in current.items() if k != "html"}
        return 200, {"ok": True, "result": result}

    def delete(self, message_id: int) -> None:
        with self.lock:
            del self.chat[message_id]


class SlackHook(_Server):
    """``statuses``: answers for the first requests (then 200 ``ok``)."""

    def __init__(self, path: str = "/services/T000/B000/XXXXSECRETXXXX", statuses=(), retry_after: int = 3):
        self.path = path
        self.statuses = list(statuses)
        self.retry_after = retry_after
        self.messages: list[dict] = []
        self.lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with hook.lock:
                    planned = hook.statuses.pop(0) if hook.statuses else 200
                if self.path != hook.path:
                    return _answer(self, 404, b"no_service")
                if planned == 429:
                    return _answer(self, 429, b"rate_limited", {"Retry-After": str(hook.retry_after)})
                if planned != 200:
                    return _answer(self, planned, b"internal_error")
                try:
                    msg = json.loads(body)
                except ValueError:
                    return _answer(self, 400, b"invalid_payload")
                if not isinstance(msg, dict) or not isinstance(msg.get("text"), str) or not msg["text"]:
                    return _answer(self, 400, b"no_text")
                with hook.lock:
                    hook.messages.append(msg)
                return _answer(self, 200, b"ok")

            def log_message(self, *args):
                pass

        super().__init__(Handler)
        self.url = f"http://127.0.0.1:{self.port}{path}"
