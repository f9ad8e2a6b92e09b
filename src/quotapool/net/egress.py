"""One HTTP client session per egress: every credential's connections leave by its own.

A credential whose proxy is down fails like an unreachable upstream (`EgressError`, an
`aiohttp.ClientConnectionError`): its connections are never made directly instead."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

import aiohttp
import python_socks
from aiohttp_socks import ProxyConnectionError, ProxyConnector, ProxyError, ProxyTimeoutError

from quotapool.domain.egress import DEFAULT_PORTS, DIRECT, Egress
from quotapool.secrets import Secret

log = logging.getLogger("quotapool.egress")

_TYPES = {
    "http": python_socks.ProxyType.HTTP,
    "https": python_socks.ProxyType.HTTP,
    "socks4": python_socks.ProxyType.SOCKS4,
    "socks5": python_socks.ProxyType.SOCKS5,
    "socks5h": python_socks.ProxyType.SOCKS5,
}


class EgressError(aiohttp.ClientConnectionError):
    """The proxy a credential's connections leave by failed (refused, timed out, refused the
    destination or the password); the upstream was not reached."""


class EgressConnector(ProxyConnector):
    """aiohttp-socks' connector, its failures turned into `EgressError`s naming the proxy (by
    its label: never its password)."""

    def __init__(self, egress: Egress, **kwargs: Any) -> None:
        assert egress.url is not None
        parts = urlsplit(egress.url)
        super().__init__(
            host=parts.hostname or "",
            port=parts.port or DEFAULT_PORTS[parts.scheme],
            proxy_type=_TYPES[parts.scheme],
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            rdns=parts.scheme == "socks5h",
            proxy_ssl=ssl.create_default_context() if parts.scheme == "https" else None,
            **kwargs,
        )
        self.label = egress.label

    async def _wrap_create_connection(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super()._wrap_create_connection(*args, **kwargs)
        except (ProxyConnectionError, ProxyTimeoutError, ProxyError) as exc:
            raise EgressError(f"egress proxy {self.label} failed: {exc}") from None


def report(credential: str, exc: BaseException) -> None:
    """The log line of a credential whose proxy failed (others are the upstream's)."""
    if isinstance(exc, EgressError):
        log.warning("%s: %s; its upstream was not reached", credential, exc)


def connector(egress: Egress, **kwargs: Any) -> aiohttp.TCPConnector:
    """The connector that leaves by `egress` (`kwargs`: TCPConnector's)."""
    if egress.url is None:
        return aiohttp.TCPConnector(**kwargs)
    return EgressConnector(egress, **kwargs)


class Egresses:
    """The sessions, made on first use (inside the running loop) and closed together.

    `secrets` maps a credential to its `Secret`, whose `egress` says how it leaves; a
    credential not in it (removed meanwhile) leaves by `default`."""

    def __init__(
        self,
        make: Callable[[Egress], aiohttp.ClientSession],
        secrets: Mapping[str, Secret],
        default: Egress = DIRECT,
    ) -> None:
        self._make = make
        self._secrets = secrets
        self._default = default
        self._sessions: dict[Egress, aiohttp.ClientSession] = {}

    def of(self, credential_id: str) -> Egress:
        secret = self._secrets.get(credential_id)
        return secret.egress if secret is not None else self._default

    def session(self, egress: Egress) -> aiohttp.ClientSession:
        found = self._sessions.get(egress)
        if found is None or found.closed:
            found = self._sessions[egress] = self._make(egress)
        return found

    async def close(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        for each in sessions:
            await each.close()
