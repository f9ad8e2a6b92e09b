"""A client key's model allowlist holds for the model sent upstream, not only the model asked
for: no profile (by path, header or scenario) sends a model the key may not use."""

from __future__ import annotations

import openai
import pytest

from tests.conftest import Harness, HarnessFactory
from tests.proxy.test_client_keys_e2e import client, create


@pytest.fixture
def h(harness: HarnessFactory) -> Harness:
    return harness(
        routing={"models": {"think": "gpt-5.5"}},
        profiles={"premium": {"models": {"default": "gpt-5.5"}}},
        accounts_watch_interval=0.1,
    )


def sent_models(h: Harness) -> list[str]:
    return [str(s.body.get("model")) for s in h.fake.seen]


def test_no_profile_or_scenario_sends_a_model_the_key_may_not_use(h: Harness) -> None:
    key = create(h, "mini", "--models", "gpt-4.1-mini")
    by_path = openai.OpenAI(base_url=f"{h.base}/p/premium/v1", api_key=key, max_retries=0)
    h.clients.append(by_path)
    by_header = client(h, key, default_headers={"x-quotapool-profile": "premium"})
    for sdk in (by_path, by_header):
        with pytest.raises(openai.PermissionDeniedError, match="'premium' sends 'gpt-5.5'"):
            sdk.responses.create(model="gpt-4.1-mini", input="hi")
    with pytest.raises(openai.PermissionDeniedError, match="scenario 'think'"):
        client(h, key).responses.create(
            model="gpt-4.1-mini", input="hi", reasoning={"effort": "high"}
        )
    assert client(h, key).responses.create(model="gpt-4.1-mini", input="hi").output_text
    assert sent_models(h) == ["gpt-4.1-mini"]
    refused = [r for r in h.rows(4) if r["status"] == 403]
    assert len(refused) == 3 and all(r["attempts"] == 0 for r in refused)


def test_a_key_that_may_use_the_profiles_model_is_served_by_it(h: Harness) -> None:
    key = create(h, "both", "--models", "gpt-4.1-mini", "--models", "gpt-5.5")
    by_header = client(h, key, default_headers={"x-quotapool-profile": "premium"})
    assert by_header.responses.create(model="gpt-4.1-mini", input="hi").output_text
    assert sent_models(h) == ["gpt-5.5"]
