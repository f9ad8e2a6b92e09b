"""The admin API: credentials, client keys, routing and requests, for the admin token.

Its own FastAPI app (OpenAPI at `/quotapool/api/openapi.json`, docs at `/quotapool/api/docs`);
the data plane hands it only paths under `/quotapool/api`, so the proxy's hot path is unchanged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import Engine

from quotapool.domain.client import parse_duration, parse_limit
from quotapool.domain.credential import Credential
from quotapool.domain.outcome import StatusSet
from quotapool.domain.state import Status
from quotapool.proxy.keys import KeyRing
from quotapool.proxy.models import credential_rows
from quotapool.proxy.record import Record
from quotapool.proxy.warmup import CHEAP_MODELS
from quotapool.routing.profiles import Routing
from quotapool.store.accounts import AccountError, AccountStore
from quotapool.store.base import PoolStore
from quotapool.store.batch import recent
from quotapool.store.client_keys import ClientKeyError, ClientKeyStore
from quotapool.store.usage import usage

PREFIX = "/quotapool/api"
PROBE_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class Control:
    """What the admin API reads and changes."""

    pool: PoolStore
    accounts: AccountStore
    keys: KeyRing
    key_store: ClientKeyStore
    engine: Engine
    routing: Callable[[], Routing]
    now: Callable[[], float]
    probe: Callable[[Credential, str, float], Awaitable[Record]]


class NewKey(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    models: list[str] = []
    profile: str | None = None
    limits: list[str] = Field(default=[], examples=[["requests=1000/day", "cost=20/month"]])
    expires: str | None = Field(default=None, examples=["30d"])


def build_admin(control: Control) -> FastAPI:
    app = FastAPI(
        title="quotapool admin API",
        openapi_url=f"{PREFIX}/openapi.json",
        docs_url=f"{PREFIX}/docs",
        redoc_url=None,
    )

    async def admin(request: Request) -> None:
        if not control.keys.is_admin(request.scope["headers"]):
            raise HTTPException(
                401,
                "Send the admin token as a bearer; `quotapool admin token` prints a new one.",
                headers={"www-authenticate": "Bearer"},
            )

    api = APIRouter(prefix=PREFIX, dependencies=[Depends(admin)])
    app.add_exception_handler(HTTPException, _error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _invalid)  # type: ignore[arg-type]
    _credential_routes(api, control)
    _key_routes(api, control)
    _log_routes(api, control)
    app.include_router(api)
    return app


def _credential_routes(api: APIRouter, control: Control) -> None:
    @api.get("/credentials", summary="Every credential with its status, quota and resets")
    def credentials() -> list[dict[str, Any]]:
        return credential_rows(control.pool.snapshot(), control.now())

    @api.post("/credentials/{name}/pause", summary="Take a credential out until resumed")
    def pause(name: str) -> dict[str, Any]:
        return _set(control, name, Status.PAUSED, "paused by operator")

    @api.post("/credentials/{name}/resume", summary="Put a paused credential back")
    def resume(name: str) -> dict[str, Any]:
        return _set(control, name, Status.ACTIVE, "")

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

    @api.get("/routing", summary="Every routing profile")
    def routing() -> dict[str, Any]:
        return {name: p.describe() for name, p in sorted(control.routing().profiles.items())}


def _key_routes(api: APIRouter, control: Control) -> None:
    @api.get("/keys", summary="Client keys (never their secrets)")
    def keys() -> list[dict[str, Any]]:
        return [k.public() for k in control.key_store.all()]

    @api.post("/keys", status_code=201, summary="Create a client key; its secret is shown once")
    def create_key(body: NewKey) -> dict[str, Any]:
        now = control.now()
        try:
            limits = [str(parse_limit(text)) for text in body.limits]
            expires_at = now + parse_duration(body.expires) if body.expires else None
            key, secret = control.key_store.create(
                body.name,
                now,
                models=body.models,
                profile=body.profile,
                limits=limits,
                expires_at=expires_at,
            )
        except (ValueError, ClientKeyError) as exc:
            raise HTTPException(400, str(exc)) from None
        control.keys.load()
        return {**key.public(), "key": secret}

    @api.post("/keys/{name}/revoke", summary="Stop a client key from working")
    def revoke_key(name: str) -> dict[str, Any]:
        try:
            key = control.key_store.revoke(name, control.now())
        except ClientKeyError as exc:
            raise HTTPException(404, str(exc)) from None
        control.keys.load()
        return key.public()


def _log_routes(api: APIRouter, control: Control) -> None:
    @api.get("/requests", summary="Recent requests with their decisions, newest last")
    def requests(
        credential: str | None = None,
        key: str | None = None,
        status: int | None = None,
        since: float | None = None,
        after_id: int = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[dict[str, Any]]:
        rows = recent(
            control.engine,
            limit,
            after_id=after_id,
            since=since,
            credential=credential,
            client_key=key,
            status=status,
        )
        for row in rows:
            row["decision"] = orjson.loads(row["decision"]) if row["decision"] else None
        return rows

    @api.get("/usage", summary="Requests, tokens and cost per credential, key or model")
    def usage_view(
        by: Literal["credential", "key", "model"] = "credential",
        period: Literal["hour", "day"] = "hour",
        since: float | None = None,
    ) -> list[dict[str, Any]]:
        seconds = 3600.0 if period == "hour" else 86400.0
        start = since if since is not None else control.now() - 7 * 86400.0
        return usage(control.engine, by, seconds, start, control.keys.prices)


def _set(control: Control, name: str, status: Status, reason: str) -> dict[str, Any]:
    """Pause or resume: accounts in the database (kept over restarts) and credentials from
    quotapool.toml (until the next start) alike."""
    credential = _credential(control, name)
    now = control.now()
    with contextlib.suppress(AccountError):  # from quotapool.toml: it lives in the pool only
        control.accounts.set_status(name, status.value, reason or None, now)
    control.pool.apply(StatusSet(credential.id, now, status, reason))
    return _row(control, name)


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


async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in exc.errors()
    )
    return await _error(_request, HTTPException(422, f"Invalid request: {problems}."))


async def _error(_request: Request, exc: HTTPException) -> JSONResponse:
    """Errors shaped like the rest of quotapool's (OpenAI-style)."""
    kind = "invalid_api_key" if exc.status_code == 401 else "invalid_request_error"
    body = {"error": {"message": exc.detail, "type": kind, "param": None, "code": kind}}
    return JSONResponse(body, exc.status_code, headers=exc.headers)
