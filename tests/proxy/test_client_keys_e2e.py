"""Client API keys through the real server and the real CLI: who may use the pool, for which
models and profile, and how much."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anthropic
import httpx
import openai
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from quotapool.cli.main import app
from quotapool.domain.outcome import StatusSet
from quotapool.domain.state import Status
from tests.conftest import Harness, HarnessFactory, codex_credentials

runner = CliRunner()


def cli(h: Harness, *args: str) -> str:
    """Run `quotapool …` against the harness's home; returns stdout."""
    env = {"QUOTAPOOL_HOME": str(h.qp.settings.resolved_home), "COLUMNS": "200"}
    result = runner.invoke(app, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result.stdout


def create(h: Harness, name: str, *options: str) -> str:
    """A new key (the last line of stdout), once the running server has picked it up."""
    key = cli(h, "keys", "create", name, *options).strip().splitlines()[-1]
    assert key.startswith("qp-")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with h.http() as http:
            answer = http.get("/v1/models", headers={"authorization": f"Bearer {key}"})
        if answer.status_code == 200 and h.qp.app._door.keys_required:  # type: ignore[union-attr]
            break
        time.sleep(0.05)
    return key


def client(h: Harness, key: str, **options: Any) -> openai.OpenAI:
    made = openai.OpenAI(base_url=f"{h.base}/v1", api_key=key, max_retries=0, **options)
    h.clients.append(made)
    return made


@pytest.fixture
def h(harness: HarnessFactory) -> Harness:
    creds = codex_credentials() + [{"kind": "anthropic", "name": "ant", "api_key": "sk-ant"}]
    return harness(
        credentials=creds,
        routing={"strategy": "sequential"},
        profiles={"late": {"credentials": ["charlie"]}},
        accounts_watch_interval=0.1,
    )


def test_once_a_key_exists_every_client_needs_one(h: Harness) -> None:
    assert client(h, "anything").responses.create(model="gpt-5.5", input="hi").output_text
    key = create(h, "alice")
    with pytest.raises(openai.AuthenticationError, match="not valid here") as wrong:
        client(h, "a-wrong-one").responses.create(model="gpt-5.5", input="x")
    assert wrong.value.status_code == 401
    assert client(h, key).responses.create(model="gpt-5.5", input="hi").output_text
    ant = anthropic.Anthropic(base_url=h.base, api_key="wrong", max_retries=0)
    with ant, pytest.raises(anthropic.AuthenticationError, match="not valid here"):
        ant.messages.create(model="claude-x", max_tokens=5, messages=[])
    with anthropic.Anthropic(base_url=h.base, api_key=key, max_retries=0) as good:
        answer = good.messages.create(
            model="claude-x", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        )
        assert answer.content
    with h.http() as http:
        assert http.get("/health").status_code == 200  # probes need no key
        bare = http.post("/v1/responses", json={"model": "gpt-5.5", "input": "x"})
    assert bare.status_code == 401 and bare.json()["error"]["code"] == "invalid_api_key"
    assert "needs a client key" in bare.json()["error"]["message"]
    assert bare.headers["x-should-retry"] == "false"  # no SDK retries a missing key
    rows = h.rows(6)  # the refused ones are rows too
    assert [(r["status"], r["client_key"]) for r in rows] == [
        (200, None),
        (401, None),
        (200, "alice"),
        (401, None),
        (200, "alice"),
        (401, None),
    ]
    listed = cli(h, "requests", "--status", "401")
    assert listed.count("401") >= 3 and "needs a client key" in listed


def test_a_key_works_the_moment_the_cli_prints_it(harness: HarnessFactory) -> None:
    """`export QP_KEY=$(quotapool keys create me)` and the client at once: the CLI writes the
    database, and the server, not knowing the key, reads the keys anew before refusing (it
    would otherwise learn of it at its next watch, here a minute away). Keys it does not know
    make it look at most every quarter second, however many arrive."""
    h = harness(
        credentials=codex_credentials(),
        profiles={"late": {"credentials": ["charlie"]}},
        accounts_watch_interval=60,
    )
    ring = h.qp.app._door.keys  # type: ignore[union-attr]
    assert ring is not None
    cli(h, "keys", "create", "first")
    ring.load()  # (as its watch would: keys are required from now on)
    second = cli(h, "keys", "create", "second").strip().splitlines()[-1]
    assert client(h, second).responses.create(model="gpt-5.5", input="hi").output_text
    third = cli(h, "keys", "create", "third").strip().splitlines()[-1]  # through a profile's path
    late = openai.OpenAI(base_url=f"{h.base}/p/late/v1", api_key=third, max_retries=0)
    h.clients.append(late)
    assert late.responses.create(model="gpt-5.5", input="hi").output_text
    looks: list[float] = []
    version = ring.store.version

    def counted() -> tuple[int, int, str | None]:
        looks.append(time.monotonic())
        return version()

    ring.store.version = counted  # type: ignore[method-assign]
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: _wrong(h), range(200)))
    elapsed = time.monotonic() - started
    assert set(answers) == {401}
    assert 1 <= len(looks) <= elapsed / 0.25 + 2, (len(looks), elapsed)


def _wrong(h: Harness) -> int:
    with h.http() as http:
        headers = {"authorization": "Bearer qp-not-a-key"}
        return http.post(
            "/v1/responses", json={"model": "gpt-5.5", "input": "x"}, headers=headers
        ).status_code


def test_the_first_key_says_every_client_now_needs_one(h: Harness) -> None:
    env = {"QUOTAPOOL_HOME": str(h.qp.settings.resolved_home), "COLUMNS": "80"}
    first = runner.invoke(app, ["keys", "create", "first"], env=env)
    assert "every client must send a key" in first.stderr
    assert "ANTHROPIC_API_KEY=KEY claude" in first.stderr and "api_key=KEY" in first.stderr
    assert "GEMINI_API_KEY=KEY gemini" in first.stderr
    assert max(len(line) for line in first.stderr.splitlines()) <= 80
    second = runner.invoke(app, ["keys", "create", "second"], env=env)
    assert second.exit_code == 0 and "every client" not in second.stderr


def test_a_key_over_its_limit_gets_its_own_429_and_others_go_on(h: Harness) -> None:
    small = create(h, "small", "--limit", "requests=2/day")
    other = create(h, "other")
    for _ in range(2):
        client(h, small).responses.create(model="gpt-5.5", input="hi")
    with pytest.raises(openai.RateLimitError) as over:
        client(h, small).responses.create(model="gpt-5.5", input="hi")
    message = over.value.body["message"]  # type: ignore[index]
    assert message.startswith("This key's daily request limit (2) is used up (2 of 2)")
    assert "resets at" in message and "pool itself is not exhausted" in message
    assert over.value.response.headers["x-should-retry"] == "false"
    assert int(over.value.response.headers["retry-after"]) > 0
    assert client(h, other).responses.create(model="gpt-5.5", input="hi").output_text
    h.rows(4)  # the CLI reads usage from the request log
    usage = cli(h, "keys", "list")
    assert "2/2 requests per day" in usage


def test_concurrent_requests_cannot_pass_a_request_limit_together(h: Harness) -> None:
    key = create(h, "burst", "--limit", "requests=4/day")
    h.fake.account("tok-a").event_delay = 0.05  # each answer takes a while: all overlap
    headers = {"authorization": f"Bearer {key}"}

    def ask(body: dict[str, Any]) -> int:
        with h.http() as http:
            return http.post("/v1/responses", json=body, headers=headers).status_code

    plain = {"model": "gpt-5.5", "input": "hi"}
    for credential in h.qp.pool.snapshot().credentials:  # one that never reaches an upstream
        h.qp.pool.apply(StatusSet(credential.id, time.time(), Status.PAUSED))  # is given back
    assert ask(plain) == 503
    for credential in h.qp.pool.snapshot().credentials:
        h.qp.pool.apply(StatusSet(credential.id, time.time(), Status.ACTIVE))
    with ThreadPoolExecutor(10) as pool:
        statuses = list(pool.map(ask, [plain] * 10))
    assert sorted(statuses) == [200] * 4 + [429] * 6
    rows = h.rows(12)
    assert sum(r["attempts"] > 0 for r in rows) == 4
    assert h.qp.keys.usage(h.qp.keys._by_name["burst"])[0]["used"] == 4


def test_tokens_are_counted_from_the_final_usage(h: Harness) -> None:
    key = create(h, "tokens", "--limit", "tokens=100/day")
    client(h, key).responses.create(model="gpt-5.5", input="hi")  # the fake reports 1,234 in
    with pytest.raises(openai.RateLimitError, match="daily token limit"):
        client(h, key).responses.create(model="gpt-5.5", input="again")


def test_the_readmes_large_limits_are_kept_as_written(h: Harness) -> None:
    create(h, "big", "--limit", "tokens=2000000/week", "--limit", "cost=2.5/month")
    listed = cli(h, "keys", "list", "--json")
    assert '"tokens=2000000/week"' in listed and '"cost=2.5/month"' in listed
    assert "0/2000000 tokens per week" in cli(h, "keys", "list")


def test_models_allowlist_and_the_keys_profile(h: Harness) -> None:
    key = create(h, "late-key", "--models", "gpt-5.5", "--profile", "late")
    with pytest.raises(openai.PermissionDeniedError, match="may use only: gpt-5.5"):
        client(h, key).responses.create(model="gpt-5.4", input="hi")
    raw = client(h, key, default_headers={"x-quotapool-profile": "default"})
    response = raw.responses.with_raw_response.create(model="gpt-5.5", input="hi")
    assert response.headers["x-quotapool-route"] == "sequential; credential=charlie"
    assert h.rows(2)[-1]["profile"] == "late"


def test_revoke_and_rotate(h: Harness) -> None:
    key = create(h, "temp")
    cli(h, "keys", "revoke", "temp")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            client(h, key).responses.create(model="gpt-5.5", input="hi")
        except openai.AuthenticationError as exc:
            assert "'temp' was revoked" in str(exc)
            break
        time.sleep(0.05)
    else:
        pytest.fail("a revoked key still works")
    kept = create(h, "kept")
    rotated = cli(h, "keys", "rotate", "kept").strip().splitlines()[-1]
    assert rotated != kept
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with h.http() as http:
            if http.get("/v1/models", headers={"x-api-key": kept}).status_code == 401:
                break
        time.sleep(0.05)
    assert client(h, rotated).responses.create(model="gpt-5.5", input="hi").output_text


def test_keys_are_stored_hashed_and_listed_without_the_secret(h: Harness) -> None:
    record = json.loads(cli(h, "keys", "create", "secretive", "--json"))
    key = record["key"]
    assert key.startswith(record["prefix"])
    with h.qp.request_log.engine.connect() as connection:  # type: ignore[union-attr]
        row = connection.execute(text("SELECT * FROM client_keys")).one()
    stored = " ".join(str(value) for value in row)
    assert key not in stored
    assert key not in cli(h, "keys", "list", "--json")
    deadline = time.monotonic() + 5
    while not h.qp.keys.required:  # the server picks the first key up within 0.1 s
        assert time.monotonic() < deadline
        time.sleep(0.02)
    view = httpx.get(f"{h.base}/quotapool/pool", headers={"x-api-key": key})
    assert view.status_code == 403 and "admin token" in view.text  # not for every key holder
    assert key not in view.text
    admin = cli(h, "admin", "token").strip().splitlines()[-1]
    deadline = time.monotonic() + 5
    while (
        seen := httpx.get(f"{h.base}/quotapool/pool", headers={"authorization": f"Bearer {admin}"})
    ).status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert "alpha" in seen.text and key not in seen.text


def test_usage_survives_a_restart(harness: HarnessFactory, h: Harness) -> None:
    key = create(h, "counted", "--limit", "requests=1/day")
    client(h, key).responses.create(model="gpt-5.5", input="hi")
    h.rows(1)  # written to the log (the usage of a key is read back from it)
    again = harness(accounts_watch_interval=0.1)  # a second server on the same home
    with pytest.raises(openai.RateLimitError, match="daily request limit"):
        client(again, key).responses.create(model="gpt-5.5", input="hi")
