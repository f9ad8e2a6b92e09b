"""Dashboard sessions: after the admin token is typed once, an encrypted cookie (Fernet, with a
key derived from the secret key file) stands for it.

The cookie is HttpOnly and SameSite=Strict, names the admin token it was opened with (rotating
the token ends every session) and carries the session's CSRF token, which the page sends back in
`x-csrf-token` on every change: another site can neither read it nor make a browser send it.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network

import orjson
from cryptography.fernet import Fernet, InvalidToken

from quotapool.domain.credential import control_characters

COOKIE = "quotapool_session"
CSRF_HEADER = "x-csrf-token"
SESSION_SECONDS = 12 * 3600


ENDED_KEPT = 100_000
"""Sessions ended by a logout remembered at most (each until it would have expired anyway)."""


@dataclass(frozen=True, slots=True)
class Session:
    csrf: str
    id: str = ""
    user: str = ""
    """Who signed in through the proxy in front (`trusted_user_header`); "" for the admin
    token."""

    def allows(self, sent: str | None) -> bool:
        """A change the page itself asked for (it sent the session's CSRF token)."""
        return sent is not None and hmac.compare_digest(sent, self.csrf)


class Sessions:
    def __init__(
        self, key: bytes, admin_hash: Callable[[], str | None], now: Callable[[], float]
    ) -> None:
        self._fernet = Fernet(key)
        self._admin_hash = admin_hash
        self._now = now
        self._ended: dict[str, float] = {}
        """Session id → when it would have expired: sessions a logout ended."""

    def open(self, user: str = "") -> tuple[str, Session]:
        """A new session for whoever just gave the admin token (or `user`, signed in by the
        proxy in front): the cookie value and it."""
        session = Session(secrets.token_urlsafe(24), secrets.token_urlsafe(12), user)
        payload = orjson.dumps(
            {"admin": self._admin_hash(), "csrf": session.csrf, "id": session.id, "user": user}
        )
        cookie = self._fernet.encrypt_at_time(payload, int(self._now())).decode()
        return cookie, session

    def read(self, cookie: str | None) -> Session | None:
        """The session the cookie stands for, if it is ours, recent and of the current token."""
        if not cookie:
            return None
        try:
            payload = self._fernet.decrypt_at_time(
                cookie.encode(), SESSION_SECONDS, int(self._now())
            )
            data = orjson.loads(payload)
        except (InvalidToken, orjson.JSONDecodeError):
            return None
        admin = self._admin_hash()
        if not isinstance(data, dict) or data.get("admin") != admin:
            return None  # (the admin token rotated since: every session ends)
        user = str(data.get("user") or "")
        if admin is None and not user:
            return None
        session = Session(str(data.get("csrf", "")), str(data.get("id", "")), user)
        return None if session.id in self._ended else session

    def end(self, session: Session) -> None:
        """Log out: the session's cookie stops working here, even if a copy of it is kept.
        (With replicas, each remembers the logouts it served.)"""
        now = self._now()
        self._ended = {sid: until for sid, until in self._ended.items() if until > now}
        if len(self._ended) >= ENDED_KEPT:
            self._ended.pop(next(iter(self._ended)))
        self._ended[session.id] = now + SESSION_SECONDS


@dataclass(frozen=True, slots=True)
class TrustedUser:
    """The user the proxy in front signed in (`trusted_user_header`), believed only from its
    addresses (`trusted_proxies`)."""

    header: str
    proxies: tuple[IPv4Network | IPv6Network, ...]

    @classmethod
    def of(cls, header: str | None, proxies: tuple[str, ...]) -> TrustedUser | None:
        if not header:
            return None
        return cls(header.lower(), tuple(ip_network(p, strict=False) for p in proxies))

    def user(self, client: str | None, headers: Mapping[str, str]) -> str | None:
        """Who the request's `header` names, if it comes from a trusted proxy."""
        try:
            address = ip_address(client or "")
        except ValueError:
            return None
        if not any(address in network for network in self.proxies):
            return None
        name = headers.get(self.header, "").strip()
        if not name or len(name) > 256 or control_characters(name):
            return None
        return name
