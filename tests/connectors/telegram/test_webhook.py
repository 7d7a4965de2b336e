"""The webhook receiver: the secret-token check, answers that wait for delivery, and a webhook
bot source run by ``newsradar connect`` into a real Kafka broker."""

import asyncio
import json
import os
import signal
import subprocess
import urllib.error
import urllib.request

import aiohttp
import pytest
import yaml

from connectors.telegram.webhook import SECRET_HEADER, DeliveryFailed, WebhookReceiver, serve
from newsradar.kafka import ensure_topics, read_topic
from newsradar.records import TOPIC_RAW, decode_raw
from tests.conftest import FIXTURES, free_port, newsradar_cmd, wait_for

SECRET = "s3cret-Token_for-tests"
UPDATES = [u for step in json.loads((FIXTURES / "telegram/bot/basic.json").read_text("utf-8"))["steps"]
           for u in step.get("updates", ())]


def exchange(receiver, requests):
    """POST each (headers, body) to a real listener on 127.0.0.1; returns the statuses."""

    async def go():
        runner, port = await serve(receiver)
        try:
            async with aiohttp.ClientSession() as session:
                out = []
                for headers, body in requests:
                    async with session.post(f"http://127.0.0.1:{port}/telegram/webhook", data=body,
                                            headers=headers) as resp:
                        out.append(resp.status)
                return out
        finally:
            await runner.cleanup()

    return asyncio.run(go())


def test_only_the_exact_secret_is_accepted():
    delivered = []

    async def deliver(records):
        delivered.extend(records)

    receiver = WebhookReceiver(secret=SECRET, deliver=deliver, source_id="tg-hook")
    body = json.dumps(UPDATES[0]).encode()
    statuses = exchange(receiver, [
        ({}, body),
        ({SECRET_HEADER: ""}, body),
        ({SECRET_HEADER: SECRET[:-1]}, body),
        ({SECRET_HEADER: SECRET + "x"}, body),
        ({SECRET_HEADER: SECRET.upper()}, body),
        ({SECRET_HEADER.lower(): SECRET}, body),  # header names are case-insensitive in HTTP
    ])
    assert statuses == [401, 401, 401, 401, 401, 200]
    assert receiver.counts["rejected"] == 5 and [r.article_id for r in delivered] == ["tg:mothers_watch:41"]


def test_answers_follow_delivery():
    calls = []

    async def deliver(records):
        calls.append(records)
        if len(calls) == 1:
            raise DeliveryFailed("broker down")

    receiver = WebhookReceiver(secret=SECRET, deliver=deliver, source_id="tg-hook", max_body=4096)
    ok = {SECRET_HEADER: SECRET, "Content-Type": "application/json"}
    statuses = exchange(receiver, [
        (ok, json.dumps(UPDATES[0]).encode()),  # delivery fails: Telegram must retry
        (ok, json.dumps(UPDATES[0]).encode()),  # the retry
        (ok, json.dumps(UPDATES[2]).encode()),  # a private-chat message: nothing to deliver
        (ok, b"{not json"),
        (ok, b"[" + b" " * 5000 + b"]"),
    ])
    assert statuses == [503, 200, 200, 400, 413]
    assert len(calls) == 2 and receiver.counts["failed"] == 1 and receiver.counts["skipped"] == 1


def test_secret_must_be_a_telegram_secret():
    async def deliver(records):
        return None

    for bad in ("", "has space", "x" * 257, "ünïcode"):
        with pytest.raises(ValueError):
            WebhookReceiver(secret=bad, deliver=deliver, source_id="s")


@pytest.mark.kafka
@pytest.mark.slow
def test_webhook_source_through_connect(kafka, topic_prefix, tmp_path):
    ensure_topics(kafka.bootstrap, topics=[TOPIC_RAW])
    port = free_port()
    source_id = f"hook-{topic_prefix}"
    sources = tmp_path / "sources.yaml"
    sources.write_text(yaml.safe_dump({
        "metrics": {"port": 0},
        "defaults": {"interval": "0s", "min_interval": "0s"},
        "sources": [{"id": source_id, "kind": "telegram", "mode": "bot", "long_poll": "1s",
                     "channels": ["mothers_watch"], "webhook": {"port": port, "secret_env": "TEST_HOOK_SECRET"}}],
    }))
    proc = subprocess.Popen(
        newsradar_cmd("connect", "--sources", str(sources), "--state-dir", str(tmp_path / "state"),
                      "--bootstrap-servers", kafka.bootstrap),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "TEST_HOOK_SECRET": SECRET},
    )

    def post(update, secret=SECRET):
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/telegram/webhook", data=json.dumps(update).encode(), method="POST",
            headers={"Content-Type": "application/json", **({SECRET_HEADER: secret} if secret else {})},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except (urllib.error.URLError, ConnectionError):
            return None

    try:
        wait_for(lambda: post(UPDATES[2]) == 200, 60, "the webhook listener to answer")
        assert post(UPDATES[0], secret=None) == 401
        assert post(UPDATES[0], secret="wrong") == 401
        statuses = [post(u) for u in UPDATES[:2] + UPDATES[4:6]]
        assert statuses == [200, 200, 200, 200]
        # Each 200 came after Kafka acknowledged: the records are already on news.raw.
        records = [decode_raw(r.value) for r in read_topic(kafka.bootstrap, TOPIC_RAW)]
        mine = sorted((r.article_id, r.edited_at or "") for r in records if r.source_id == source_id)
        assert mine == [("tg:mothers_watch:41", ""), ("tg:mothers_watch:41", "2026-03-02T08:20:00Z"),
                        ("tg:mothers_watch:42", ""), ("tg:mothers_watch:43", "")]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)
    assert proc.returncode == 0, proc.stdout.read().decode()
