"""`/routing`: every profile as routed now; choose a profile's strategy live (kept over
restarts and reloads, like an edit of quotapool.toml followed by SIGHUP)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from quotapool.admin.control import Control, actor


class StrategyChoice(BaseModel):
    strategy: str | None = Field(
        description="A strategy name; null goes back to the one quotapool.toml gives",
        examples=["round_robin"],
    )


def add(api: APIRouter, control: Control) -> None:
    @api.get("/routing", summary="Every routing profile, and the strategies to choose from")
    def routing() -> dict[str, Any]:
        return control.live_routing.describe(control.routing())

    @api.put("/routing/{profile}", summary="Choose the strategy of a profile, live")
    def choose(profile: str, body: StrategyChoice, request: Request) -> dict[str, Any]:
        before = control.routing().profiles.get(profile)
        try:
            routing = control.live_routing.choose(profile, body.strategy or None)
        except LookupError as exc:
            raise HTTPException(404, str(exc.args[0])) from None
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        was = {"strategy": before.strategy.name} if before is not None else None
        now = {"strategy": routing.profiles[profile].strategy.name}
        control.audit.record(actor(request), "routing.set", profile, was, now)
        return control.live_routing.describe(routing)
