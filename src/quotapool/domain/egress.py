"""Where a credential's connections leave from: directly, or through its own proxy.

>>> parse_egress("socks5h://ann:pw@10.0.0.7:1080").label
'socks5h://10.0.0.7:1080'
>>> parse_egress("direct") is DIRECT
True
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

SCHEMES = ("http", "https", "socks4", "socks5", "socks5h")
"""`http`/`https`: a proxy that tunnels with CONNECT (`https`: TLS to the proxy itself);
`socks5h`: the proxy resolves names (`socks5`: they are resolved here)."""
DEFAULT_PORTS = {"http": 80, "https": 443}


class EgressConfigError(ValueError):
    """A proxy URL that cannot be used; the message says why (and never holds a password)."""


@dataclass(frozen=True, slots=True)
class Egress:
    url: str | None = None
    """The proxy URL, with its user and password; None: direct."""

    @property
    def label(self) -> str:
        """What may be shown: the scheme, host and port, never the user or password."""
        if self.url is None:
            return "direct"
        parts = urlsplit(self.url)
        host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
        return f"{parts.scheme}://{host}:{parts.port or DEFAULT_PORTS[parts.scheme]}"

    @property
    def password(self) -> str | None:
        """The proxy's password, decoded (as it would show in a message)."""
        raw = urlsplit(self.url).password if self.url else None
        return unquote(raw) if raw else None

    def __repr__(self) -> str:
        return f"Egress({self.label})"


DIRECT = Egress()


def parse_egress(url: str) -> Egress:
    """`url` checked: "direct", or a proxy URL with a scheme of SCHEMES, a host and (for SOCKS)
    a port."""
    if url.strip().lower() == "direct":
        return DIRECT
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise EgressConfigError("the proxy URL's port is not a number") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        shown = f"{parts.scheme}://" if parts.scheme else "none"
        raise EgressConfigError(
            f"proxy URL scheme {shown} is not one of {', '.join(s + '://' for s in SCHEMES)} "
            '(or "direct")'
        )
    if not parts.hostname:
        raise EgressConfigError(f"the proxy URL names no host (e.g. {scheme}://10.0.0.7:1080)")
    if port is None and scheme not in DEFAULT_PORTS:
        raise EgressConfigError(f"a {scheme}:// proxy URL needs a port (e.g. :1080)")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise EgressConfigError("a proxy URL is scheme://[user:password@]host:port, nothing after")
    return Egress(f"{scheme}://{parts.netloc}")
