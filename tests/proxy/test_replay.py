"""Real Codex CLI traffic (captured in tests/fixtures/samples) replayed through quotapool arrives
upstream intact: the same bytes, the same headers, only the credentials replaced."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import Harness

SAMPLES = Path(__file__).parent.parent / "fixtures" / "samples"
NOT_FORWARDED = {
    "host",
    "content-length",
    "authorization",
    "chatgpt-account-id",
    "connection",
    "upgrade",
}


def sample(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text())


def test_http_request_arrives_byte_equal(h: Harness) -> None:
    captured = sample("example_http_post_responses.json")
    body = json.dumps(captured["body"]).encode()
    headers = {
        k: v for k, v in captured["headers"].items() if k.lower() not in {"host", "content-length"}
    }
    with h.http() as http:
        response = http.post(captured["path"], content=body, headers=headers)
    assert response.status_code == 200
    assert "event: response.completed" in response.text
    seen = h.fake.seen[-1]
    assert seen.raw == body  # byte-equal: builtin tools, custom tools, tool_search… untouched
    for name, value in headers.items():
        if name.lower() not in NOT_FORWARDED | {"accept", "content-type"}:
            assert seen.headers[name.lower()] == value, name
    assert seen.headers["authorization"] != headers["Authorization"]
    assert seen.headers["chatgpt-account-id"] in {"acct-a", "acct-b", "acct-c"}


def test_websocket_messages_arrive_intact(h: Harness) -> None:
    handshake = sample("example_ws_handshake.json")["headers"]
    headers = {
        k: v
        for k, v in handshake.items()
        if k.lower() not in NOT_FORWARDED and not k.lower().startswith("sec-websocket")
    }
    prewarm, turn = (m["data"] for m in sample("example_ws_prewarm_and_turn_messages.json"))

    async def session() -> list[str]:
        sent = []
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(
                f"{h.base}/backend-api/codex/responses", headers=headers, max_msg_size=0
            ) as socket,
        ):
            first_id = None
            for message in (prewarm, turn):
                if "previous_response_id" in message:  # the capture's id belonged to its own server
                    message = {**message, "previous_response_id": first_id}
                text = json.dumps(message)
                sent.append(text)
                await socket.send_str(text)
                async for frame in socket:
                    event = json.loads(frame.data)
                    if event["type"] == "response.created" and first_id is None:
                        first_id = event["response"]["id"]
                    if event["type"] in ("response.completed", "error"):
                        assert event["type"] == "response.completed", event
                        break
        return sent

    sent = asyncio.run(session())
    frames = [s for s in h.fake.seen if s.body.get("type") == "response.create"]
    assert [f.raw.decode() for f in frames] == sent
    upgrade = next(s for s in h.fake.seen if s.body.get("websocket"))
    for name in (
        "session-id",
        "thread-id",
        "x-codex-window-id",
        "x-codex-turn-metadata",
        "originator",
        "openai-beta",
    ):
        assert (
            upgrade.headers[name] == handshake[next(k for k in handshake if k.lower() == name)]
        ), name
