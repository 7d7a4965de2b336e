"""The e-mail sink: one message per notification over SMTP, with the stdlib's smtplib run in a
thread (as the file sink's writes are), so the delivery loop and the other sinks keep going.

Guarantees of each send (the contract of :mod:`newsradar.delivery.sinks`):

* STARTTLS (``tls: starttls``, the default; a server that does not offer it is refused, never
  sent to in clear) or implicit TLS (``tls: implicit``, port 465); the certificate and the host
  name are verified (against ``ca_file`` when given). ``tls: none`` cannot carry a password.
* AUTH with ``username`` and the password from ``password_env`` or ``password_file`` (never in
  the watchlist, an error, a dead letter or the ledger); smtplib picks CRAM-MD5, PLAIN or LOGIN
  among what the server offers.
* The message is ``multipart/alternative``: a plain-text part, then an HTML part (escaped).
  ``Message-ID`` is derived from the notification id and ``X-Newsradar-Notification-Id``
  carries it, so a repeat after a kill is the same message (the same Message-ID and text; the
  ``Date`` header is the attempt's); an update
  has ``In-Reply-To``/``References`` of update 1's Message-ID, so mail clients thread it.
* Raises :class:`~newsradar.delivery.sinks.Permanent` for a refused login (535), a 5xx answer,
  a server without STARTTLS or AUTH, and a refused address (internal, after DNS, unless
  ``allow_private_networks``); :class:`~newsradar.delivery.sinks.Retryable` for 4xx answers,
  network errors, TLS errors and timeouts. A message some recipients took and others refused
  is delivered (sending it again would repeat it to the ones that took it): the refusals are a
  warning in the log.
"""

from __future__ import annotations

import asyncio
import html
import logging
import smtplib
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path

from newsradar import paths
from newsradar.config.watchlist import EmailSink
from newsradar.netguard import AddressPolicy, ForbiddenAddress, check_peer

from .digest import Digest, digest_lines, digest_title
from .notification import Notification
from .sinks import ID_HEADER, Permanent, Retryable, SinkConfigError, chat_lines, full_form, read_secret

log = logging.getLogger(__name__)

# What an error message quotes of a server's answer, at most.
_ANSWER_CAP = 300


def message_id(notification_id: str, domain: str) -> str:
    """The Message-ID of a notification's mail: ``story:<digest>:<n>`` holds colons, which a
    msg-id's left part cannot."""
    return f"<{notification_id.replace(':', '.')}@{domain}>"


def subject(n: Notification, prefix: str, full: bool) -> str:
    c = chat_lines(n, full)
    return " ".join(x for x in (prefix, f"[{c['severity']}]", c["head"]) if x)


def plain_text(n: Notification, full: bool) -> str:
    c = chat_lines(n, full)
    lines = [f"[{c['severity']}] {c['head']}", ""]
    if c["orgs"]:
        lines.append(f"Organizations: {c['orgs']}")
    if c["topics"]:
        lines.append(f"Topics: {c['topics']}")
    lines.extend(f"- {w}" for w in c["why"])
    if c["snippet"]:
        lines += ["", f"  {c['snippet']}"]
    if c["url"]:
        lines += ["", c["url"]]
    lines += ["", f"notification {c['id']}"]
    return "\n".join(lines) + "\n"


def html_text(n: Notification, full: bool) -> str:
    def esc(text: str) -> str:
        return html.escape(text, quote=False)

    c = chat_lines(n, full)
    out = [f"<p><b>[{esc(c['severity'])}] {esc(c['head'])}</b></p>"]
    if c["orgs"]:
        out.append(f"<p>Organizations: {esc(c['orgs'])}</p>")
    if c["topics"]:
        out.append(f"<p>Topics: {esc(c['topics'])}</p>")
    if c["why"]:
        out.append("<ul>" + "".join(f"<li>{esc(w)}</li>" for w in c["why"]) + "</ul>")
    if c["snippet"]:
        out.append(f"<blockquote>{esc(c['snippet'])}</blockquote>")
    if c["url"].startswith(("http://", "https://")):
        out.append(f'<p><a href="{html.escape(c["url"], quote=True)}">Open the article</a></p>')
    out.append(f"<p><small><code>{esc(c['id'])}</code></small></p>")
    return "<!DOCTYPE html>\n<html><body>\n" + "\n".join(out) + "\n</body></html>\n"


def build_message(n: Notification, sender: str, recipients: Sequence[str], prefix: str, full: bool,
                  now: float) -> EmailMessage:
    domain = sender.rpartition("@")[2]
    msg = EmailMessage()
    msg["Subject"] = subject(n, prefix, full)
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = formatdate(now, usegmt=True)
    msg["Message-ID"] = message_id(n.notification_id, domain)
    if n.follows:
        first = message_id(n.follows, domain)
        msg["In-Reply-To"] = first
        msg["References"] = first
    msg[ID_HEADER] = n.notification_id
    msg.set_content(plain_text(n, full))
    msg.add_alternative(html_text(n, full), subtype="html")
    return msg


def build_digest_message(d: Digest, sender: str, recipients: Sequence[str], prefix: str, now: float) -> EmailMessage:
    """A digest as one message: a line per notification in both parts."""
    def esc(text: str) -> str:
        return html.escape(text, quote=False)

    plain = [digest_title(d), ""]
    rows = []
    for x in digest_lines(d):
        plain.append(f"- [{x['severity']}] {x['head']}" + (f" ({x['subjects']})" if x["subjects"] else ""))
        if x["url"]:
            plain.append(f"  {x['url']}")
        head = esc(x["head"])
        if x["url"].startswith(("http://", "https://")):
            head = f'<a href="{html.escape(x["url"], quote=True)}">{head}</a>'
        rows.append(f"<li>[{esc(x['severity'])}] {head}" + (f" ({esc(x['subjects'])})" if x["subjects"] else "")
                    + "</li>")
    plain += ["", f"digest {d.digest_id}"]
    msg = EmailMessage()
    msg["Subject"] = " ".join(x for x in (prefix, digest_title(d)) if x)
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = formatdate(now, usegmt=True)
    msg["Message-ID"] = message_id(d.digest_id, sender.rpartition("@")[2])
    msg[ID_HEADER] = d.digest_id
    msg.set_content("\n".join(plain) + "\n")
    msg.add_alternative(f"<!DOCTYPE html>\n<html><body>\n<p><b>{esc(digest_title(d))}</b></p>\n<ul>"
                        + "".join(rows) + f"</ul>\n<p><small><code>{esc(d.digest_id)}</code></small></p>\n"
                        "</body></html>\n", subtype="html")
    return msg


class Email:
    """One SMTP session per notification: connect, (STARTTLS), (AUTH), MAIL, RCPT, DATA, QUIT."""

    kind = "email"
    batched = False

    def __init__(self, cfg: EmailSink, allow_private: bool = False, clock: Callable[[], float] = time.time):
        self.route = cfg.route
        self.digest = cfg.digest
        self.host, self.port, self.tls = cfg.host, cfg.port, cfg.tls
        self.sender, self.recipients = cfg.from_address, tuple(cfg.to)
        self.prefix = cfg.subject_prefix
        self.timeout = cfg.timeout
        self.concurrency = cfg.concurrency
        self.rate_limit = cfg.rate_limit
        self.username = cfg.username
        self._password = read_secret(cfg, "password_env", "password_file")
        self.policy = AddressPolicy(allow_private_networks=allow_private or cfg.allow_private_networks)
        self.key = f"email {cfg.host}:{cfg.port} {','.join(cfg.to)}"
        self._clock = clock
        self._context: ssl.SSLContext | None = None
        if cfg.tls != "none":
            cafile = None
            if cfg.ca_file is not None:
                path = Path(cfg.ca_file).expanduser()
                cafile = path if path.is_absolute() else paths.home() / path
            try:
                self._context = ssl.create_default_context(cafile=cafile)
            except (OSError, ssl.SSLError) as exc:
                raise SinkConfigError(f"cannot read the CA bundle {cafile}: {getattr(exc, 'strerror', None) or exc}",
                                      "ca_file") from None

    def _scrub(self, text: str) -> str:
        return text.replace(self._password, "<secret>") if self._password else text

    async def send(self, notifications: Sequence[Notification | Digest]) -> None:
        (n,) = notifications
        if isinstance(n, Digest):
            msg = build_digest_message(n, self.sender, self.recipients, self.prefix, self._clock())
        else:
            msg = build_message(n, self.sender, self.recipients, self.prefix, full_form(self.route, n, self.digest),
                                self._clock())
        await asyncio.to_thread(self._deliver, msg)

    def _check_addresses(self) -> None:
        """Every address the host resolves to must be allowed (before any connection)."""
        try:
            infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise Retryable(f"cannot resolve {self.host}: {exc.strerror or exc}") from None
        for info in infos:
            self.policy.check_ip(info[4][0], self.port, self.host)

    def _deliver(self, msg: EmailMessage) -> None:
        try:
            self._check_addresses()
            if self.tls == "implicit":
                smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=self._context)
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            try:
                # belt and braces: the address actually connected to (DNS may answer otherwise twice)
                check_peer(self.policy, smtp.sock.getpeername() if smtp.sock else None, self.host)
            except ForbiddenAddress:
                smtp.close()
                raise
            try:
                self._session(smtp, msg)
            finally:
                try:
                    smtp.quit()
                except (smtplib.SMTPException, OSError):
                    smtp.close()  # the message was taken (or not) before: the goodbye does not matter
        except ForbiddenAddress as exc:
            raise Permanent(str(exc)) from None
        except smtplib.SMTPAuthenticationError as exc:
            reason = f"SMTP login refused for {self.username}: {exc.smtp_code} {self._answer(exc.smtp_error)}"
            raise (Retryable(reason) if 400 <= exc.smtp_code < 500 else Permanent(reason)) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise Permanent(f"SMTP {self.host}:{self.port}: {self._scrub(str(exc))}") from None
        except smtplib.SMTPRecipientsRefused as exc:
            answers = exc.recipients
            text = "; ".join(f"{rcpt}: {code} {self._answer(m)}" for rcpt, (code, m) in answers.items())
            temporary = all(400 <= code < 500 for code, _m in answers.values())
            raise (Retryable if temporary else Permanent)(f"SMTP recipients refused: {text}") from None
        except smtplib.SMTPResponseException as exc:
            reason = f"SMTP {exc.smtp_code} {self._answer(exc.smtp_error)}"
            raise (Permanent(reason) if exc.smtp_code >= 500 else Retryable(reason)) from None
        except ssl.SSLCertVerificationError as exc:
            raise Retryable(f"TLS with {self.host}:{self.port}: {exc.verify_message or exc}") from None
        except (smtplib.SMTPException, ssl.SSLError, OSError) as exc:
            raise Retryable(self._scrub(f"SMTP {self.host}:{self.port}: {type(exc).__name__}: {exc}")) from None

    def _answer(self, raw) -> str:
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        return self._scrub(" ".join(text.split()))[:_ANSWER_CAP]

    def _session(self, smtp: smtplib.SMTP, msg: EmailMessage) -> None:
        smtp.ehlo()
        if self.tls == "starttls":
            if not smtp.has_extn("starttls"):
                raise smtplib.SMTPNotSupportedError(
                    "the server does not offer STARTTLS (tls: starttls); nothing was sent in clear")
            smtp.starttls(context=self._context)
            smtp.ehlo()
        if self.username is not None:
            smtp.login(self.username, self._password)
        refused = smtp.send_message(msg, self.sender, list(self.recipients))
        if refused:
            log.warning("email %s: %s delivered, but refused for %s", self.key, msg[ID_HEADER],
                        "; ".join(f"{r}: {code} {self._answer(m)}" for r, (code, m) in refused.items()))

    async def close(self) -> None:
        return None
