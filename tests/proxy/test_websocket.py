"""The WebSocket transport: one client socket, one account, failover before the upgrade."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import pytest

from quotapool.testing.fake_model import server_error
from quotapool.testing.fake_upstream import usage_limit
from tests.conftest import Harness, HarnessFactory

HEADERS = {
    "session-id": "ws-thread",
    "openai-beta": "responses_websockets=2026-02-06",
    "originator": "codex_exec",
}


async def exchange(
    socket: aiohttp.ClientWebSocketResponse, message: dict[str, Any]
) -> list[dict[str, Any]]:
    """Send one response.create; collect events until the response completes or fails."""
    await socket.send_str(json.dumps({"type": "response.create", **message}))
    events = []
    async for frame in socket:
        event = json.loads(frame.data)
        events.append(event)
        if event["type"] in ("response.completed", "response.failed", "error"):
            return events
    return events


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def nothing_in_flight(h: Harness, name: str) -> bool:
    """Whether `name` has no request in flight once the server has seen the socket close."""
    deadline = time.monotonic() + 5
    while h.state(name).in_flight and time.monotonic() < deadline:
        time.sleep(0.02)
    return bool(h.state(name).in_flight == 0)


def test_prewarm_turn_and_tool_follow_up_stay_on_one_account(h: Harness) -> None:
    async def session() -> tuple[list[list[dict[str, Any]]], str]:
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(f"{h.base}/backend-api/codex/responses", headers=HEADERS) as socket,
        ):
            route = socket._response.headers["x-quotapool-route"]
            base = {"model": "gpt-5.5", "stream": True, "store": False}
            prewarm = await exchange(socket, {**base, "input": [], "generate": False})
            tools = [{"type": "function", "name": "shell", "parameters": {"type": "object"}}]
            turn = await exchange(
                socket,
                {
                    **base,
                    "input": "run it",
                    "tools": tools,
                    "tool_choice": "required",
                    "previous_response_id": prewarm[0]["response"]["id"],
                },
            )
            call = next(e["item"] for e in turn if e["type"] == "response.output_item.done")
            output = {"type": "function_call_output", "call_id": call["call_id"], "output": "ok"}
            follow = await exchange(
                socket,
                {**base, "input": [output], "previous_response_id": turn[0]["response"]["id"]},
            )
            return [prewarm, turn, follow], route

    (prewarm, turn, follow), route = run(session())
    assert [e["type"] for e in prewarm] == ["response.created", "response.completed"]
    assert all(events[-1]["type"] == "response.completed" for events in (turn, follow))
    frames = [s for s in h.fake.seen if s.body.get("type") == "response.create"]
    assert len(frames) == 3 and len({s.account for s in frames}) == 1
    assert route.endswith(f"credential={frames[0].account}")
    assert frames[0].headers["session-id"] == "ws-thread" and frames[0].headers[
        "authorization"
    ].startswith("Bearer ")
    rows = sorted(h.rows(4), key=lambda r: r["request_id"])  # the socket's, then its turns'
    socket_row, turn_rows = rows[0], rows[1:]
    assert socket_row["route"] == "websocket" and socket_row["status"] == 101
    assert [r["request_id"] for r in turn_rows] == [
        f"{socket_row['request_id']}.{n}" for n in (1, 2, 3)
    ]
    assert all(r["status"] == 200 and r["model"] == "gpt-5.5" for r in turn_rows)
    assert all(r["credential"] == socket_row["credential"] for r in turn_rows)
    assert [r["output_tokens"] for r in turn_rows] == [7, 7, 7]  # (the socket's row had 7)


def test_handshake_429_fails_over_before_the_upgrade(h: Harness) -> None:
    h.fake.account("tok-a").ws_refuse = 429

    async def session() -> list[dict[str, Any]]:
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(f"{h.base}/backend-api/codex/responses", headers=HEADERS) as socket,
        ):
            return await exchange(socket, {"model": "gpt-5.5", "input": "hi"})

    events = run(session())
    assert events[-1]["type"] == "response.completed"
    assert [s.account for s in h.fake.seen[:2]] == ["alpha", "bravo"]
    assert h.state("alpha").until is not None


def test_no_upstream_websocket_is_426(h: Harness) -> None:
    for token in ("tok-a", "tok-b", "tok-c"):
        h.fake.account(token).ws_refuse = 426

    async def session() -> None:
        async with aiohttp.ClientSession() as http, http.ws_connect(f"{h.base}/v1/responses"):
            pass

    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        run(session())
    assert refused.value.status == 426


def test_every_account_out_is_429_before_the_upgrade(h: Harness) -> None:
    for token in ("tok-a", "tok-b", "tok-c"):
        h.fake.account(token).fail_next(usage_limit(h.qp.dispatcher.clock.now() + 300))
    with h.http() as http:
        for _ in range(3):
            http.post("/v1/responses", json={"model": "gpt-5.5", "input": f"x{_}"})

    async def session() -> None:
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(f"{h.base}/backend-api/codex/responses"),
        ):
            pass

    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        run(session())
    headers = refused.value.headers
    assert refused.value.status == 429 and headers is not None
    assert int(headers["retry-after"]) > 200


def test_large_frames_pass(h: Harness) -> None:
    image = "A" * (24 * 1024 * 1024)

    async def session() -> list[dict[str, Any]]:
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(f"{h.base}/backend-api/codex/responses", max_msg_size=0) as socket,
        ):
            return await exchange(
                socket,
                {
                    "model": "gpt-5.5",
                    "input": [
                        {"type": "input_image", "image_url": f"data:image/png;base64,{image}"}
                    ],
                },
            )

    events = run(session())
    assert events[-1]["type"] == "response.completed"
    assert len(h.fake.seen[-1].body["input"][0]["image_url"]) > len(image)


def test_a_429_inside_the_socket_moves_the_next_socket(h: Harness) -> None:
    """A turn refused for its account's limit closes the socket with 1012 (nothing of the turn
    sent): the client's retry opens a new socket, which goes to another account."""

    async def session() -> tuple[list[dict[str, Any]], int | None, list[dict[str, Any]]]:
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(
                f"{h.base}/backend-api/codex/responses", headers=HEADERS
            ) as socket:
                first = await exchange(socket, {"model": "gpt-5.5", "input": [], "generate": False})
                code = socket.close_code
            async with http.ws_connect(
                f"{h.base}/backend-api/codex/responses", headers=HEADERS
            ) as socket:
                second = await exchange(socket, {"model": "gpt-5.5", "input": "hi"})
            return first, code, second

    for token in ("tok-a", "tok-b", "tok-c"):
        h.fake.account(token).fail_next(usage_limit(h.qp.dispatcher.clock.now() + 600))
        h.fake.account(token).failures[0].in_stream = True
    h.fake.account("tok-b").failures.clear()
    h.fake.account("tok-c").failures.clear()
    first, code, second = run(session())
    assert first == [] and code == 1012
    assert second[-1]["type"] == "response.completed"
    frames = [s.account for s in h.fake.seen if s.body.get("type") == "response.create"]
    assert frames == ["alpha", "bravo"]


def test_a_limit_inside_the_socket_takes_the_account_out_and_releases_it_once(
    h: Harness,
) -> None:
    """A limit a frame reports takes the account out and closes the socket (1012): counted
    in flight until then, released once (it was released twice: once by the limit)."""

    async def session() -> tuple[list[dict[str, Any]], int | None, str]:
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(f"{h.base}/backend-api/codex/responses", headers=HEADERS) as socket,
        ):
            events = await exchange(socket, {"model": "gpt-5.5", "input": [], "generate": False})
            return events, socket.close_code, h.state("alpha").status.value

    h.fake.account("tok-a").fail_next(usage_limit(time.time() + 600))
    h.fake.account("tok-a").failures[0].in_stream = True
    assert run(session()) == ([], 1012, "quota_exceeded")
    assert nothing_in_flight(h, "alpha")


def test_image_generation_turns_go_upstream_over_http(h: Harness) -> None:
    async def session() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(f"{h.base}/backend-api/codex/responses", headers=HEADERS) as socket,
        ):
            image = await exchange(
                socket,
                {"model": "gpt-5.5", "input": "draw", "tools": [{"type": "image_generation"}]},
            )
            plain = await exchange(socket, {"model": "gpt-5.5", "input": "thanks"})
            return image, plain

    image, plain = run(session())
    assert image[-1]["type"] == "response.completed" and plain[-1]["type"] == "response.completed"
    over_http = [
        s
        for s in h.fake.seen
        if s.path == "/backend-api/codex/responses" and not s.body.get("websocket")
    ]
    http_posts = [s for s in over_http if "type" not in s.body]
    assert len(http_posts) == 1 and http_posts[0].body["tools"] == [{"type": "image_generation"}]
    frames = [s for s in over_http if s.body.get("type") == "response.create"]
    assert len(frames) == 1 and frames[0].account == http_posts[0].account  # one account throughout


@pytest.mark.parametrize("answer", ["server_error", "usage_limit"])
def test_an_image_turn_that_fails_over_http_counts_against_its_account(
    h: Harness, answer: str
) -> None:
    """The HTTP leg of a socket is a request like any other: its failure is the account's
    (a 5xx backs it off, a spent quota takes it out), not only an error frame."""

    async def session() -> list[dict[str, Any]]:
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(f"{h.base}/backend-api/codex/responses", headers=HEADERS) as socket,
        ):
            draw = {"model": "gpt-5.5", "input": "draw", "tools": [{"type": "image_generation"}]}
            return await exchange(socket, draw)

    for token in ("tok-a", "tok-b", "tok-c"):
        failure = server_error() if answer == "server_error" else usage_limit(time.time() + 600)
        h.fake.account(token).fail_next(failure)
    events = run(session())
    assert events[-1]["type"] == "error"
    assert events[-1]["status"] == (500 if answer == "server_error" else 429)
    posted = [s.account or "" for s in h.fake.seen if s.body.get("tools")]
    assert len(posted) == 1 and nothing_in_flight(h, posted[0])
    state = h.state(posted[0])
    if answer == "server_error":
        assert state.consecutive_failures == 1 and state.backoff_until is not None
    else:
        assert state.status.value == "quota_exceeded"


def test_a_profile_chosen_by_path_routes_the_socket(harness: HarnessFactory) -> None:
    h = harness(profiles={"late": {"strategy": "sequential", "credentials": ["charlie"]}})

    async def session(path: str) -> str:
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(f"{h.base}{path}", headers=HEADERS) as socket,
        ):
            events = await exchange(socket, {"model": "gpt-5.5", "input": "hi"})
            assert events[-1]["type"] == "response.completed"
            return str(socket._response.headers["x-quotapool-route"])

    assert run(session("/p/late/backend-api/codex/responses")) == "sequential; credential=charlie"
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        run(session("/p/nope/backend-api/codex/responses"))
    assert refused.value.status == 400
    served = [r for r in h.rows(2) if r["status"] == 101]  # (each row lands as its socket ends)
    assert [(r["profile"], r["credential"]) for r in served] == [("late", "charlie")]
