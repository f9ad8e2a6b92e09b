"""A client key's rules hold over the Codex WebSocket transport as over HTTP: every turn on a
socket is a request — admitted against the key's limits and models, counted, logged — and a
revoked or rotated key's open socket is closed at its next turn. Written from the attacker's
side: many turns on one socket, many sockets at once, binary frames, a key revoked mid-session."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import pytest

from tests.conftest import Harness, HarnessFactory
from tests.proxy.test_client_keys_e2e import cli, create

HEADERS = {"session-id": "attack", "openai-beta": "responses_websockets=2026-02-06"}
TURN = {"type": "response.create", "model": "gpt-5.5", "input": "hi", "stream": True}


@pytest.fixture
def h(harness: HarnessFactory) -> Harness:
    return harness(accounts_watch_interval=0.1)


async def turn(socket: aiohttp.ClientWebSocketResponse, frame: dict[str, Any]) -> dict[str, Any]:
    """Send one turn; the event that ends it (completed, or the error that refused it)."""
    await socket.send_str(json.dumps(frame))
    async for message in socket:
        if message.type is not aiohttp.WSMsgType.TEXT:
            break
        event: dict[str, Any] = json.loads(message.data)
        if event["type"] in ("response.completed", "response.failed", "error"):
            return event
    return {"type": "closed", "code": socket.close_code}


def connect(http: aiohttp.ClientSession, h: Harness, key: str) -> Any:
    headers = {**HEADERS, "authorization": f"Bearer {key}"}
    return http.ws_connect(f"{h.base}/backend-api/codex/responses", headers=headers)


def test_ten_turns_on_one_socket_get_three_of_a_three_a_day_key(h: Harness) -> None:
    key = create(h, "three", "--limit", "requests=3/day")

    async def attack() -> list[dict[str, Any]]:
        async with aiohttp.ClientSession() as http, connect(http, h, key) as socket:
            return [await turn(socket, TURN) for _ in range(10)]

    ends = asyncio.run(attack())
    assert [e["type"] for e in ends] == ["response.completed"] * 3 + ["error"] * 7
    assert all(e["status"] == 429 and e["error"]["code"] == "key_limit_reached" for e in ends[3:])
    assert len([s for s in h.fake.seen if s.body.get("type") == "response.create"]) == 3
    turns = [r for r in h.rows(12) if r["status"] != 101 and "." in r["request_id"]]
    assert sorted(r["status"] for r in turns) == [200] * 3 + [429] * 7
    assert all(r["client_key"] == "three" for r in turns)


def test_parallel_sockets_and_binary_frames_share_one_limit(h: Harness) -> None:
    key = create(h, "burst", "--limit", "requests=3/day")

    async def one_socket(http: aiohttp.ClientSession) -> list[str]:
        async with connect(http, h, key) as socket:
            await socket.send_bytes(json.dumps(TURN).encode())  # the same request, as bytes
            binary = json.loads((await socket.receive()).data)
            assert binary["status"] == 400 and "text frames" in binary["error"]["message"]
            return [(await turn(socket, TURN))["type"] for _ in range(2)]

    async def attack() -> list[list[str]]:
        async with aiohttp.ClientSession() as http:
            return await asyncio.gather(*(one_socket(http) for _ in range(8)))

    ends = [end for socket in asyncio.run(attack()) for end in socket]
    assert ends.count("response.completed") == 3 and ends.count("error") == 13
    assert len([s for s in h.fake.seen if s.body.get("type") == "response.create"]) == 3
    usage = h.qp.keys.usage(h.qp.keys._by_name["burst"])  # type: ignore[union-attr]
    assert usage[0]["used"] == 3


def test_a_socket_refused_at_its_limit_is_refused_at_the_upgrade(h: Harness) -> None:
    key = create(h, "spent", "--limit", "requests=1/day")

    async def attack() -> int:
        async with aiohttp.ClientSession() as http:
            async with connect(http, h, key) as socket:
                assert (await turn(socket, TURN))["type"] == "response.completed"
            try:
                async with connect(http, h, key):
                    return 101
            except aiohttp.WSServerHandshakeError as exc:
                return exc.status

    assert asyncio.run(attack()) == 429


@pytest.mark.parametrize("change", ["revoke", "rotate"])
def test_a_revoked_or_rotated_keys_socket_is_closed_at_its_next_turn(
    h: Harness, change: str
) -> None:
    key = create(h, "leaving")
    ring = h.qp.keys

    async def session() -> tuple[dict[str, Any], dict[str, Any], int | None]:
        async with aiohttp.ClientSession() as http, connect(http, h, key) as socket:
            first = await turn(socket, TURN)
            before = ring.store.version()  # type: ignore[union-attr]
            await asyncio.to_thread(cli, h, "keys", change, "leaving")
            deadline = time.monotonic() + 5
            while ring._version == before and time.monotonic() < deadline:  # type: ignore[union-attr]
                await asyncio.sleep(0.05)
            refused = await turn(socket, TURN)
            await socket.receive()  # the close that follows the error
            return first, refused, socket.close_code

    first, refused, code = asyncio.run(session())
    assert first["type"] == "response.completed"
    assert refused["type"] == "error" and refused["status"] == 401
    assert ("revoked" if change == "revoke" else "rotated") in refused["error"]["message"]
    assert code == 1008
    assert len([s for s in h.fake.seen if s.body.get("type") == "response.create"]) == 1


def test_each_turns_model_is_checked_against_the_allowlist(h: Harness) -> None:
    key = create(h, "mini", "--models", "gpt-4.1")

    async def attack() -> list[dict[str, Any]]:
        async with aiohttp.ClientSession() as http, connect(http, h, key) as socket:
            return [
                await turn(socket, {**TURN, "model": "gpt-4.1"}),
                await turn(socket, {**TURN, "model": "gpt-5.5"}),
                await turn(socket, {**TURN, "model": None}),
            ]

    allowed, pricier, unnamed = asyncio.run(attack())
    assert allowed["type"] == "response.completed"
    assert pricier["status"] == 403 and "may use only: gpt-4.1" in pricier["error"]["message"]
    assert unnamed["status"] == 403
    sent = [s.body.get("model") for s in h.fake.seen if s.body.get("type") == "response.create"]
    assert sent == ["gpt-4.1"]


def test_a_key_created_a_moment_ago_opens_a_socket_at_once(harness: HarnessFactory) -> None:
    """The door re-reads the keys for a key it does not know on the WebSocket upgrade as on
    HTTP (the watch is a minute away here)."""
    h = harness(accounts_watch_interval=60)
    ring = h.qp.app._door.keys  # type: ignore[union-attr]
    assert ring is not None
    cli(h, "keys", "create", "first")
    ring.load()  # (as its watch would: keys are required from now on)
    key = cli(h, "keys", "create", "second").strip().splitlines()[-1]

    async def first_turn() -> dict[str, Any]:
        async with aiohttp.ClientSession() as http, connect(http, h, key) as socket:
            return await turn(socket, TURN)

    assert asyncio.run(first_turn())["type"] == "response.completed"
