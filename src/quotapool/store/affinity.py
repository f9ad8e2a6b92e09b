"""Which account holds a conversation: soft bindings (warm prompt cache, TTL) and hard ownership
(response ids that only their account knows). Bounded: it never grows without limit."""

from __future__ import annotations

from collections import OrderedDict
from typing import Protocol


class AffinityStore(Protocol):
    def bound(self, key: str, now: float) -> str | None:
        """The credential a conversation is bound to (refreshing its TTL), or None."""
        ...

    def bind(self, key: str, credential_id: str, now: float) -> None: ...

    def owner(self, response_id: str) -> str | None:
        """The credential that produced `response_id` (only it knows the id)."""
        ...

    def own(self, response_id: str, credential_id: str) -> None: ...


class MemoryAffinityStore:
    """LRU-bounded maps; soft bindings expire `ttl` seconds after their last use."""

    def __init__(
        self, *, ttl: float = 1800.0, max_bindings: int = 50_000, max_owned: int = 50_000
    ) -> None:
        self.ttl = ttl
        self._bindings: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._owners: OrderedDict[str, str] = OrderedDict()
        self._max_bindings = max_bindings
        self._max_owned = max_owned

    def bound(self, key: str, now: float) -> str | None:
        found = self._bindings.get(key)
        if found is None:
            return None
        credential_id, expires = found
        if expires <= now:
            del self._bindings[key]
            return None
        self._bindings[key] = (credential_id, now + self.ttl)
        self._bindings.move_to_end(key)
        return credential_id

    def bind(self, key: str, credential_id: str, now: float) -> None:
        self._bindings[key] = (credential_id, now + self.ttl)
        self._bindings.move_to_end(key)
        while len(self._bindings) > self._max_bindings:
            self._bindings.popitem(last=False)

    def owner(self, response_id: str) -> str | None:
        return self._owners.get(response_id)

    def own(self, response_id: str, credential_id: str) -> None:
        self._owners[response_id] = credential_id
        self._owners.move_to_end(response_id)
        while len(self._owners) > self._max_owned:
            self._owners.popitem(last=False)

    def __len__(self) -> int:
        return len(self._bindings) + len(self._owners)
