"""The admin API and the dashboard: credentials, client keys, routing and requests, for the
admin token (as a bearer, or a dashboard session opened with it).

Its own FastAPI app (OpenAPI at `/quotapool/api/openapi.json`, docs at `/quotapool/api/docs`
when `admin_docs = true`, the dashboard at `/quotapool/`); the data plane hands it only paths
under `/quotapool/` that are not its own, after the same door as its own (the remote rule, body
limits), so the proxy's hot path is unchanged.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from quotapool.admin import dashboard
from quotapool.admin.control import Control
from quotapool.admin.routes import credentials, keys, log, routing
from quotapool.admin.session import COOKIE, CSRF_HEADER

PREFIX = "/quotapool/api"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def build_admin(control: Control, *, docs: bool = False) -> FastAPI:
    """`docs`: serve the API's browsable docs at `/quotapool/api/docs` (`admin_docs = true`),
    from files of this install (no CDN), with the dashboard's headers."""
    app = FastAPI(
        title="quotapool admin API",
        openapi_url=f"{PREFIX}/openapi.json",
        docs_url=None,
        redoc_url=None,
    )

    async def admin(request: Request) -> None:
        if (by := control.keys.admin_by(request.scope["headers"])) is not None:
            request.state.actor = by
            return
        session = control.sessions.read(request.cookies.get(COOKIE))
        request.state.actor = (
            f"dashboard ({session.user})" if session and session.user else "dashboard"
        )
        if session is None:
            raise HTTPException(
                401,
                "Send the admin token as a bearer; `quotapool admin token` prints a new one.",
                headers={"www-authenticate": "Bearer"},
            )
        if request.method not in SAFE_METHODS and not session.allows(
            request.headers.get(CSRF_HEADER)
        ):
            raise HTTPException(403, "This change lacks the dashboard's CSRF token; reload it.")

    api = APIRouter(prefix=PREFIX, dependencies=[Depends(admin)])
    app.add_exception_handler(HTTPException, _error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _invalid)  # type: ignore[arg-type]
    for routes in (credentials, keys, routing, log):
        routes.add(api, control)
    app.include_router(api)
    dashboard.add(app, control)
    if docs:
        dashboard.add_docs(app, f"{PREFIX}/docs")
    return app


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
