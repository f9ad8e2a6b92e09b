"""`/keys`: client keys (never their secrets, but what each used against its limits); create,
rotate and revoke."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from quotapool.admin.control import Control, actor
from quotapool.domain.client import parse_duration, parse_limit
from quotapool.store.client_keys import ClientKeyError, UnknownClientKey


class NewKey(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    models: list[str] = []
    profile: str | None = None
    limits: list[str] = Field(default=[], examples=[["requests=1000/day", "cost=20/month"]])
    expires: str | None = Field(default=None, examples=["30d"])


def add(api: APIRouter, control: Control) -> None:
    @api.get("/keys", summary="Client keys with their usage against each limit")
    def keys() -> list[dict[str, Any]]:
        return [
            {**key.public(), "usage": control.keys.usage(key)} for key in control.key_store.all()
        ]

    @api.post("/keys", status_code=201, summary="Create a client key; its secret is shown once")
    def create_key(body: NewKey, request: Request) -> dict[str, Any]:
        now = control.now()
        try:
            limits = [str(parse_limit(text)) for text in body.limits]
            expires_at = now + parse_duration(body.expires) if body.expires else None
            key, secret = control.key_store.create(
                body.name,
                now,
                models=body.models,
                profile=body.profile or None,
                limits=limits,
                expires_at=expires_at,
            )
        except (ValueError, ClientKeyError) as exc:
            raise HTTPException(400, str(exc)) from None
        control.keys.load()
        control.audit.record(actor(request), "key.create", key.name, None, key.audited())
        return {**key.public(), "key": secret}

    @api.post("/keys/{name}/rotate", summary="A new secret for a key (shown once); the old stops")
    def rotate_key(name: str, request: Request) -> dict[str, Any]:
        try:
            key, secret = control.key_store.rotate(name, control.now())
        except UnknownClientKey as exc:
            raise HTTPException(404, str(exc)) from None
        except ClientKeyError as exc:
            raise HTTPException(400, str(exc)) from None
        control.keys.load()
        control.audit.record(actor(request), "key.rotate", key.name)
        return {**key.public(), "key": secret}

    @api.post("/keys/{name}/revoke", summary="Stop a client key from working")
    def revoke_key(name: str, request: Request) -> dict[str, Any]:
        try:
            key = control.key_store.revoke(name, control.now())
        except UnknownClientKey as exc:
            raise HTTPException(404, str(exc)) from None
        control.keys.load()
        control.audit.record(actor(request), "key.revoke", key.name, None, key.audited())
        return key.public()
