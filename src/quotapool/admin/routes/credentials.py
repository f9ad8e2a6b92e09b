"""`/credentials`: every credential (accounts and quotapool.toml's) with its state; pause,
resume, remove, force-probe; reload what the CLI changed in the database."""

from __future__ import annotations

import contextlib
from typing import Any

from fastapi import APIRouter, HTTPException, Request

from quotapool.admin.control import Control, actor
from quotapool.control.views import credential_rows
from quotapool.domain.credential import Credential
from quotapool.domain.outcome import StatusSet
from quotapool.domain.state import Status
from quotapool.jobs.warmup import CHEAP_MODELS
from quotapool.store.accounts import AccountError

PROBE_TIMEOUT_SECONDS = 30.0


def add(api: APIRouter, control: Control) -> None:
    @api.get("/credentials", summary="Every credential with its status, quota and resets")
    def credentials() -> dict[str, Any]:
        now = control.now()
        return {"now": now, "credentials": credential_rows(control.pool.snapshot(), now)}

    @api.post(
        "/credentials/reload",
        summary="Read the accounts from the database now (the CLI asks after it changed them)",
    )
    async def reload() -> dict[str, Any]:
        await control.reload_accounts()
        return {"credentials": len(control.pool.snapshot().credentials)}

    @api.post("/credentials/{name}/pause", summary="Take a credential out until resumed")
    def pause(name: str, request: Request) -> dict[str, Any]:
        return _set(control, name, Status.PAUSED, "paused by operator", actor(request))

    @api.post("/credentials/{name}/resume", summary="Put a paused credential back")
    def resume(name: str, request: Request) -> dict[str, Any]:
        return _set(control, name, Status.ACTIVE, "", actor(request))

    @api.delete("/credentials/{name}", summary="Remove an account and its secrets")
    async def remove(name: str, request: Request) -> dict[str, Any]:
        before = _row(control, _credential(control, name).name)
        try:
            control.accounts.remove(name)
        except AccountError:
            message = f"{name!r} comes from quotapool.toml: remove it there and reload (SIGHUP)."
            raise HTTPException(400, message) from None
        control.audit.record(actor(request), "account.remove", name, _summary(before))
        await control.reload_accounts()
        return {"removed": name}

    @api.post(
        "/credentials/{name}/probe",
        summary="Send one minimal request to it now, to refresh a stale limit or status",
    )
    async def probe(name: str, model: str | None = None) -> dict[str, Any]:
        credential = _credential(control, name)
        sent = model or min(credential.models, default=CHEAP_MODELS[credential.kind])
        record = await control.probe(credential, sent, PROBE_TIMEOUT_SECONDS)
        probed = {"model": sent, "status": record.status, "error": record.error}
        return {"probe": probed, **_row(control, name)}


def _set(control: Control, name: str, status: Status, reason: str, by: str) -> dict[str, Any]:
    """Pause or resume: accounts in the database (kept over restarts) and credentials from
    quotapool.toml (until the next start) alike."""
    credential = _credential(control, name)
    before = _row(control, name)
    now = control.now()
    with contextlib.suppress(AccountError):  # from quotapool.toml: it lives in the pool only
        control.accounts.set_status(name, status.value, reason or None, now)
    control.pool.apply(StatusSet(credential.id, now, status, reason))
    after = _row(control, name)
    action = "account.pause" if status is Status.PAUSED else "account.resume"
    control.audit.record(by, action, name, _summary(before), _summary(after))
    return after


def _summary(row: dict[str, Any]) -> dict[str, Any]:
    """What the audit log keeps of a credential: no quota readings, no secret."""
    return {k: row.get(k) for k in ("kind", "plan", "status", "reason", "egress")}


def _row(control: Control, name: str) -> dict[str, Any]:
    rows = credential_rows(control.pool.snapshot(), control.now())
    return next(row for row in rows if row["name"] == name)


def _credential(control: Control, name: str) -> Credential:
    snapshot = control.pool.snapshot()
    credential = next((c for c in snapshot.credentials if c.name == name), None)
    if credential is None:
        known = ", ".join(c.name for c in snapshot.credentials)
        raise HTTPException(404, f"no credential named {name!r} (credentials: {known})")
    return credential
