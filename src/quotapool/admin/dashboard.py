"""The web dashboard at `/quotapool/`: a login page for the admin token, then one page that
reads and changes the pool through the admin API (Alpine.js for the page, uPlot for charts;
both vendored under `static/vendor`, so it needs no build step and no network)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from quotapool.admin.control import Control
from quotapool.admin.session import COOKIE, CSRF_HEADER, SESSION_SECONDS

HOME = "/quotapool/"
STATIC = Path(__file__).parent / "static"
PAGE_HEADERS = {
    "cache-control": "no-store",
    # Alpine.js evaluates its attributes with Function(): 'unsafe-eval', but nothing inline
    # and nothing from another origin.
    "content-security-policy": (
        "default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' "
        "'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
        "form-action 'self'; base-uri 'none'"
    ),
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",  # "no-referrer" would make form posts send Origin: null
    "x-content-type-options": "nosniff",
}
NO_TOKEN = "No admin token exists yet: run <code>quotapool admin token</code> on the server."
WRONG_TOKEN = "That is not the admin token (<code>quotapool admin token</code> makes a new one)."


def add(app: FastAPI, control: Control) -> None:
    app.mount("/quotapool/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/quotapool", include_in_schema=False)
    def bare() -> Response:
        return RedirectResponse(HOME, 308)

    @app.get(HOME, include_in_schema=False)
    def home(request: Request) -> Response:
        session = control.sessions.read(request.cookies.get(COOKIE))
        cookie = None
        if control.trusted is not None:  # signed in by the proxy in front: its user's session
            client = request.client.host if request.client else None
            user = control.trusted.user(client, request.headers)
            if user is not None and (session is None or session.user != user):
                cookie, session = control.sessions.open(user)
        if session is None:
            return _login_page(control, None)
        page = (STATIC / "index.html").read_text().replace("{{csrf}}", session.csrf)
        response = HTMLResponse(page, headers=PAGE_HEADERS)
        if cookie is not None:
            _set_cookie(response, cookie, request)
        return response

    @app.post("/quotapool/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        token = form.get("token", [""])[0].strip()
        headers = [(b"authorization", f"Bearer {token}".encode("latin-1", "replace"))]
        if not token or not control.keys.is_admin(headers):
            return _login_page(control, WRONG_TOKEN, 401)
        cookie, _session = control.sessions.open()
        response = RedirectResponse(HOME, 303)
        _set_cookie(response, cookie, request)
        return response

    @app.post("/quotapool/logout", include_in_schema=False)
    def logout(request: Request) -> Response:
        session = control.sessions.read(request.cookies.get(COOKIE))
        if session is not None:
            if not session.allows(request.headers.get(CSRF_HEADER)):
                return Response(status_code=403)
            control.sessions.end(session)
        response = Response(status_code=204)
        response.delete_cookie(COOKIE, path="/quotapool")
        return response


def add_docs(app: FastAPI, path: str) -> None:
    """The admin API's docs (Swagger UI from the swagger-ui-bundle package, no CDN)."""
    from swagger_ui_bundle import swagger_ui_path

    app.mount(f"{path}/static", StaticFiles(directory=str(swagger_ui_path)), name="docs-static")

    @app.get(path, include_in_schema=False)
    def docs() -> Response:
        return HTMLResponse((STATIC / "docs.html").read_text(), headers=PAGE_HEADERS)


def _set_cookie(response: Response, cookie: str, request: Request) -> None:
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=SESSION_SECONDS,
        path="/quotapool",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def _login_page(control: Control, problem: str | None, status: int = 200) -> HTMLResponse:
    if problem is None and control.keys.admin_hash is None:
        problem = NO_TOKEN
    notice = f'<p class="problem" role="alert">{problem}</p>' if problem else ""
    page = (STATIC / "login.html").read_text().replace("{{problem}}", notice)
    return HTMLResponse(page, status, headers=PAGE_HEADERS)
