"""Real HTTP servers on 127.0.0.1 for the Telegram tests: t.me/s fixture pages and a Bot API
driven by a JSON sequence file. Both record what they were asked, for the tests to check."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from tests.conftest import FIXTURES

WEB_PAGES = FIXTURES / "telegram" / "web"
BOT_SEQUENCES = FIXTURES / "telegram" / "bot"


class _Server:
    def __init__(self):
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                owner.handle(self)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.lock = threading.Lock()

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(10)

    @staticmethod
    def reply(handler, status: int, body: bytes, content_type: str, headers: dict | None = None):
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)


class ChannelSite(_Server):
    """Serves ``/s/<channel>`` and ``/s/<channel>?before=N`` from ``tests/fixtures/telegram/web/<channel>/``.

    ``pages`` maps ``None`` (the newest page) or a ``before`` id to a file name; tests swap it
    to move the channel forward. ``forced`` answers the next requests with a status instead.
    """

    def __init__(self, channel: str, pages: dict):
        super().__init__()
        self.channel = channel
        self.pages = dict(pages)
        self.forced: list[tuple[int, dict]] = []
        self.requests: list[str] = []

    def handle(self, handler):
        url = urlsplit(handler.path)
        with self.lock:
            self.requests.append(handler.path)
            forced = self.forced.pop(0) if self.forced else None
            pages = dict(self.pages)
        if forced is not None:
            self.reply(handler, forced[0], b"Too Many Requests", "text/plain", forced[1])
            return
        if url.path != f"/s/{self.channel}":
            self.reply(handler, 404, b"not found", "text/plain")
            return
        before = parse_qs(url.query).get("before")
        key = int(before[0]) if before else None
        name = pages.get(key)
        if name is None:
            self.reply(handler, 404, b"no such page", "text/plain")
            return
        body = (WEB_PAGES / self.channel / name).read_bytes()
        self.reply(handler, 200, body, "text/html; charset=utf-8")


class FakeBotApi(_Server):
    """``/bot<token>/getUpdates`` with Telegram's semantics over a sequence file.

    Call k first confirms (forgets) every update below the requested ``offset``, then applies
    step k of the file: ``{"updates": [...]}`` makes them pending, ``{"error": {...}}`` answers
    with that error instead. It answers the pending updates at or above ``offset`` (at most
    ``limit``). With nothing pending it holds the request up to ``timeout`` (capped at
    ``max_hold`` seconds), as long polling does.
    """

    def __init__(self, sequence: str | Path, token: str, max_hold: float = 1.0):
        super().__init__()
        path = Path(sequence) if Path(sequence).is_absolute() else BOT_SEQUENCES / sequence
        self.steps = json.loads(path.read_text("utf-8"))["steps"]
        self.token = token
        self.max_hold = max_hold
        self.pending: list[dict] = []
        self.calls: list[dict] = []
        self.confirmed_below = 0
        # Called (on the server thread) before the first answer is sent, for fault injection.
        self.before_first_answer = None
        self._changed = threading.Condition(self.lock)
        self._stopping = False

    def handle(self, handler):
        url = urlsplit(handler.path)
        if url.path != f"/bot{self.token}/getUpdates":
            body = {"ok": False, "error_code": 401 if url.path.endswith("/getUpdates") else 404,
                    "description": "Unauthorized" if url.path.endswith("/getUpdates") else "Not Found"}
            self.reply(handler, body["error_code"], json.dumps(body).encode(), "application/json")
            return
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        offset = int(query["offset"]) if "offset" in query else None
        limit = int(query.get("limit", 100))
        hold = min(float(query.get("timeout", 0)), self.max_hold)
        with self._changed:
            self.calls.append({"offset": offset, "allowed_updates": query.get("allowed_updates")})
            if offset is not None:
                self.confirmed_below = max(self.confirmed_below, offset)
                self.pending = [u for u in self.pending if u["update_id"] >= offset]
            step = self.steps[len(self.calls) - 1] if len(self.calls) <= len(self.steps) else {}
            if "error" in step:
                error = step["error"]
                self.reply(handler, error["status"], json.dumps(error["body"]).encode(), "application/json",
                           error.get("headers"))
                return
            self.pending.extend(step.get("updates", ()))
            if not self.pending and not self._stopping:
                self._changed.wait(hold)
            answer = [u for u in self.pending if offset is None or u["update_id"] >= offset][:limit]
            hook, self.before_first_answer = self.before_first_answer, None
        if hook is not None:
            hook()
        body = {"ok": True, "result": answer}
        try:
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            # A lone surrogate in a post: Telegram sends it as a "\ud83d" escape.
            data = json.dumps(body).encode("ascii")
        self.reply(handler, 200, data, "application/json")

    def stop(self):
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        super().stop()
