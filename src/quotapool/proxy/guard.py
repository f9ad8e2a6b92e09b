"""What keeps web pages away from the pool: the `Host` a request was sent to (DNS rebinding),
the `Origin` of a browser's request (cross-site requests spend quota), and the content type of
JSON bodies (a cross-site "simple" request can only send text/plain or a form). Pure."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

from quotapool.proxy.asgi import Headers

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
_ANY_ADDRESS = frozenset({"", "0.0.0.0", "::"})


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    message: str


def _host_name(authority: str) -> str:
    """`example.com:8410` → `example.com`; `[::1]:8410` → `::1`."""
    authority = authority.strip().lower()
    if authority.startswith("["):
        return authority[1 : authority.find("]")] if "]" in authority else authority
    return authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority


@dataclass(frozen=True, slots=True)
class Guard:
    hosts: frozenset[str]
    """Host names clients may address quotapool by ("*" = any)."""
    origins: frozenset[str]
    """Web origins (scheme://host[:port]) whose pages may call quotapool."""

    @classmethod
    def build(cls, listen_host: str, hosts: tuple[str, ...], origins: tuple[str, ...]) -> Guard:
        names = set(LOOPBACK_NAMES) | {_host_name(h) for h in hosts}
        if listen_host not in _ANY_ADDRESS:
            names.add(_host_name(listen_host))
        return cls(frozenset(names), frozenset(o.rstrip("/").lower() for o in origins))

    def _host_allowed(self, name: str) -> bool:
        """An allowed name, or an IP address (a rebinding page is addressed by its own name;
        a browser sends that name as Host, never an address)."""
        return "*" in self.hosts or name in self.hosts or _is_address(name)

    def refusal(
        self, headers: Headers, *, json_body: bool, own_pages: bool = False
    ) -> Refusal | None:
        """Why this request is refused, or None. `json_body`: the endpoint takes JSON.
        `own_pages`: the dashboard and admin API, whose own pages call them from wherever the
        server is reachable (a LAN address, a name a proxy in front rewrites): there a page is
        refused only when the browser says it is another site's (fetch metadata), since the
        session cookie (SameSite=Strict) and the CSRF token already keep other sites out."""
        host = origin = content_type = fetch_site = None
        for name, value in headers:
            if name == b"host":
                if host is not None:  # which one a proxy in front checked is anyone's guess
                    return Refusal(400, "The request has two Host headers; send one.")
                host = value
            elif name == b"origin":
                origin = value
            elif name == b"content-type":
                content_type = value
            elif name == b"sec-fetch-site":
                fetch_site = value
        if host is not None:
            host_name = _host_name(host.decode("latin-1"))
            if not self._host_allowed(host_name):
                return Refusal(
                    400,
                    f"Host {host_name!r} is not allowed. quotapool answers only to loopback "
                    "names and the names in allowed_hosts (a guard against DNS rebinding); add "
                    "it there if this is how clients reach it.",
                )
        if (
            origin is not None
            and not self._origin_allowed(origin.decode("latin-1"))
            and not (own_pages and _own_page(origin, host, fetch_site))
        ):
            return Refusal(
                403,
                f"Requests from web pages ({origin.decode('latin-1')}) are refused: a page "
                "must not spend the pool's quota. Add the origin to allowed_origins to let it.",
            )
        if origin is None and fetch_site == b"cross-site":
            return Refusal(403, "Cross-site requests from web pages are refused.")
        if json_body and not _is_json(content_type):
            sent = content_type.decode("latin-1") if content_type else "none"
            return Refusal(
                415,
                f"Send the body as JSON with 'Content-Type: application/json' (got {sent}).",
            )
        return None

    def _origin_allowed(self, origin: str) -> bool:
        """Pages served from a name quotapool answers to (never by the "*" wildcard), or a
        configured origin. A rebinding page keeps its own origin, so it is refused."""
        origin = origin.strip().rstrip("/").lower()
        if origin in self.origins:
            return True
        parts = urlsplit(origin)
        name = _host_name(parts.netloc)
        return parts.scheme in ("http", "https") and (name in self.hosts or is_loopback(name))


def _own_page(origin: bytes, host: bytes | None, fetch_site: bytes | None) -> bool:
    """A page of the origin it calls: the browser says so (`Sec-Fetch-Site`), or, from a browser
    that sends no fetch metadata, the page's origin names the host it sent the request to."""
    if fetch_site is not None:
        return fetch_site in (b"same-origin", b"none")
    page_host = urlsplit(origin.decode("latin-1").strip().lower()).netloc
    return host is not None and page_host == host.decode("latin-1").strip().lower()


@lru_cache(maxsize=256)
def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


@lru_cache(maxsize=1024)
def is_loopback(host: str) -> bool:
    """A loopback address, or `localhost` (a client's address; a page's host name)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _is_json(content_type: bytes | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or media.endswith(b"+json")
