"""Pool outcomes and credential states as bytes, for replicas to share. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from pydantic import TypeAdapter

from quotapool.domain.outcome import (
    Abandoned,
    Failed,
    Limited,
    Observed,
    Outcome,
    Refreshed,
    Served,
    Started,
    StatusSet,
)
from quotapool.domain.state import CredentialState

_OUTCOMES: dict[str, TypeAdapter[Any]] = {
    kind.__name__: TypeAdapter(kind)
    for kind in (Started, Served, Limited, Failed, Abandoned, StatusSet, Observed, Refreshed)
}
_STATE = TypeAdapter(CredentialState)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):  # the frozen mappings of domain state
        return dict(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def encode_outcome(outcome: Outcome) -> bytes:
    """`{"outcome": "Served", ...fields}`.

    >>> decode_outcome(encode_outcome(Failed("a", 1.0, "502")))
    Failed(credential_id='a', at=1.0, reason='502')
    """
    fields = orjson.dumps(outcome, default=_plain)  # an object: {"credential_id": …}
    return b'{"outcome":"' + type(outcome).__name__.encode() + b'",' + fields[1:]


def decode_outcome(data: bytes | dict[str, Any]) -> Outcome:
    """The outcome `encode_outcome` wrote; ValueError if it is not one."""
    fields = orjson.loads(data) if isinstance(data, bytes) else dict(data)
    adapter = _OUTCOMES.get(str(fields.pop("outcome", "")))
    if adapter is None:
        raise ValueError("not an outcome")
    outcome: Outcome = adapter.validate_python(fields)
    return outcome


def encode_state(state: CredentialState) -> bytes:
    return orjson.dumps(state, default=_plain)


def decode_state(data: bytes) -> CredentialState:
    state: CredentialState = _STATE.validate_json(data)
    return state
