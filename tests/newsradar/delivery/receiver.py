"""A webhook receiver as a user would write one, on 127.0.0.1: checks the signature, answers
with the planned status codes (or slowly, or with errors), and keeps each alert id once,
remembering every request so a test can count repeats."""

from __future__ import annotations

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


def make_alert(n: int, kind: str = "new_mention", created: datetime | None = None) -> Alert:
    return Alert(
        alert_id=alert_id(kind, "cmw", f"story-{n}"), kind=kind, severity="warning", article_id=f"a{n}",
        story_id=f"story-{n}", url=f"https://example.org/{n}", title=f"Title {n}", snippet="… the Council said …",
        why="Council of Mothers and Wives is mentioned in a new story.",
        created_at=format_time(created or datetime.now(UTC)), org_id="cmw",
    )


class Receiver:
    """``statuses``: answers for the first requests (then 200); ``delay``: seconds each
    request takes before it is answered."""

    def __init__(self, statuses=(), secret=SECRET, retry_after=None, delay: float = 0.0, port: int = 0):
        self.statuses = list(statuses)
        self.secret = secret.encode()
        self.retry_after = retry_after
        self.delay = delay
        self.attempts: list[tuple[str, bool]] = []
        self.alerts: dict[str, dict] = {}
        self.ok: list[str] = []  # the id of every request answered 200, repeats included
        self.first_ok_at: dict[str, float] = {}
        self.bodies: dict[str, set[bytes]] = {}  # every distinct body answered 200, per id
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.delay:
                    time.sleep(receiver.delay)
                valid = verify_signature(receiver.secret, self.headers, body)
                with receiver.lock:
                    receiver.attempts.append((self.headers.get(ID_HEADER, ""), valid))
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    if not valid:
                        status = 401
                    if status == 200:
                        ident = self.headers[ID_HEADER]
                        receiver.ok.append(ident)
                        receiver.alerts.setdefault(ident, json.loads(body))
                        receiver.first_ok_at.setdefault(ident, time.time())
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
        self.server.shutdown()
        self.server.server_close()
