"""The client key store's version: a running server reloads the keys when it changes."""

from __future__ import annotations

from sqlalchemy import Engine

from quotapool.store.client_keys import ClientKeyStore


def test_a_revocation_stamped_before_another_keys_change_is_noticed(engine: Engine) -> None:
    store = ClientKeyStore(engine)
    store.create("ahead", 2_000.0)  # made on a machine whose clock runs ahead
    store.create("victim", 1_000.0)
    seen = store.version()
    store.revoke("victim", 1_500.0)  # the CLI elsewhere: earlier than "ahead"'s stamp
    assert store.version() != seen
    seen = store.version()
    store.rotate("ahead", 1_600.0)
    assert store.version() != seen
    assert store.version() == store.version()
