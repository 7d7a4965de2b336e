"""A webhook receiver as a user would write one, on 127.0.0.1: checks the signature, answers
with the planned status codes (or slowly, or with errors), and keeps each notification id
once, remembering every request so a test can count repeats; and which alerts the
notifications it took carry."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from newsradar.delivery.sinks import ID_HEADER, verify_signature
from newsradar.identity import alert_id
from newsradar.records import Alert, format_time

SECRET = "s3cret-for-tests"
SECRET_ENV = "NEWSRADAR_TEST_WEBHOOK_SECRET"


def make_alert(n: int, kind: str = "new_mention", created: datetime | None = None, org: str = "cmw",
               topic: str | None = None, severity: str = "warning", why: str | None = None) -> Alert:
    """An alert of story ``story-<n>`` (so each ``n`` is a notification of its own)."""
    subject = topic if kind == "topic" else org
    trigger = f"{org}|story-{n}" if kind == "topic" else f"story-{n}"
    return Alert(
        alert_id=alert_id(kind, subject, trigger), kind=kind, severity=severity, article_id=f"a{n}",
        story_id=f"story-{n}", url=f"https://example.org/{n}", title=f"Title {n}",
        snippet=f"… the {org} said …",
        why=why or f"{org} is mentioned in a new story{' about ' + topic if topic else ''}.",
        created_at=format_time(created or datetime.now(UTC)), org_id=org, topic_id=topic,
    )


THREE_ORGS = ("cmw", "ovd-info", "memorial")


def three_org_article(n: int = 1) -> list[Alert]:
    """One article naming three watched organizations, topic protest: three new_mention and
    three topic alerts of one story, as the rules raise them."""
    mentions = [make_alert(n, org=o, severity="info" if o == "memorial" else "warning") for o in THREE_ORGS]
    topics = [make_alert(n, kind="topic", org=o, topic="protest", severity="critical" if o == "ovd-info" else "warning")
              for o in THREE_ORGS]
    return mentions + topics


def carried(note: dict) -> list[str]:
    """The alert ids a webhook notification carries (a first one, a follow-up, or a digest of several)."""
    if "notifications" in note:
        return [a for n in note["notifications"] for a in carried(n)]
    if "alert_ids" in note:
        return list(note["alert_ids"])
    return [a["alert_id"] for a in note["alerts"]]


class Receiver:
    """``statuses``: answers for the first requests (then 200); ``delay``: seconds each
    request takes before it is answered."""

    def __init__(self, statuses=(), secret=SECRET, retry_after=None, delay: float = 0.0, port: int = 0):
        self.statuses = list(statuses)
        self.secret = secret.encode()
        self.retry_after = retry_after
        self.delay = delay
        self.attempts: list[tuple[str, bool]] = []
        self.notes: dict[str, dict] = {}  # notification id -> its first body answered 200
        self.alerts: dict[str, dict] = {}  # alert id -> the first notification answered 200 that carried it
        self.ok: list[str] = []  # the id of every request answered 200, repeats included
        self.first_ok_at: dict[str, float] = {}  # alert id -> when its first notification was answered 200
        self.bodies: dict[str, set[bytes]] = {}  # every distinct body answered 200, per notification id
        self.lock = threading.Lock()
        self.active = 0  # requests read and not yet answered
        self.closing = threading.Event()  # set on close: held requests are answered at once
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    receiver.active += 1
                if receiver.delay:
                    # the slow receiver being simulated: a request is held for its service time,
                    # or until the receiver closes
                    receiver.closing.wait(receiver.delay)
                valid = verify_signature(receiver.secret, self.headers, body)
                with receiver.lock:
                    receiver.attempts.append((self.headers.get(ID_HEADER, ""), valid))
                    receiver.active -= 1
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    if not valid:
                        status = 401
                    if status == 200:
                        ident = self.headers[ID_HEADER]
                        note = json.loads(body)
                        receiver.ok.append(ident)
                        receiver.notes.setdefault(ident, note)
                        for alert in carried(note):
                            receiver.alerts.setdefault(alert, note)
                            receiver.first_ok_at.setdefault(alert, time.time())
                        receiver.bodies.setdefault(ident, set()).add(body)
                self.send_response(status)
                if receiver.retry_after is not None and status in (429, 503):
                    self.send_header("Retry-After", str(receiver.retry_after))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.closing.set()
        self.server.shutdown()
        self.server.server_close()


def send_each(sink, notes):
    """Send ``notes`` one call each through ``sink``, then close it; None, or the Retryable or
    Permanent the sink raised."""
    from newsradar.delivery.sinks import Permanent, Retryable

    async def go():
        try:
            for n in notes:
                await sink.send([n])
        except (Retryable, Permanent) as exc:
            return exc
        finally:
            await sink.close()
        return None

    return asyncio.run(go())
