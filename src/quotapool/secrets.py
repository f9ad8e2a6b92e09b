"""Secrets: what authenticates a credential upstream (`Secret`), how they rest encrypted
(`SecretBox`, a Fernet key file created 0600 in a 0700 home), and how they are kept out of
everything that leaves the process (`Redactor`)."""

from __future__ import annotations

import base64
import logging
import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from quotapool.domain.egress import DIRECT, Egress
from quotapool.problem import Problem

KEY_FILE_NAME = "secret.key"
REDACTED = "[redacted]"
MIN_SECRET_LENGTH = 8
"""Shorter values are not treated as secrets (redacting them would mangle ordinary text)."""
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Secret:
    """What authenticates a credential upstream, and the way its connections leave (a proxy URL
    may hold a password). Never logged, never in a snapshot."""

    token: str
    account_id: str | None = None
    egress: Egress = DIRECT

    def __repr__(self) -> str:
        return "Secret(***)"


_REPORTED: set[Path] = set()
"""Homes whose permissions were reported already."""


def private_home(home: Path) -> Path:
    """`home`, created 0700 if absent; one others can read is reported (never chmod-ed: it may
    be a directory the user shares on purpose)."""
    if not home.exists():
        home.mkdir(mode=0o700, parents=True)
    elif home.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO) and home not in _REPORTED:
        _REPORTED.add(home)  # once a process (forked workers inherit it: once in all)
        log.warning(
            "%s is readable by other users (mode %o); run `chmod 700 %s`",
            home,
            stat.S_IMODE(home.stat().st_mode),
            home,
        )
    return home


def private_file(path: Path) -> None:
    """Create `path` 0600 if absent; make one of ours 0600 (database files: SQLite gives its
    -wal and -shm files the mode of the database)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.close(fd)
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)


class KeyFileError(Problem):
    """The key file is missing, unreadable, or not the key the database was written with."""

    exit_code = 2


def load_or_create_key(home: Path, *, create: bool = True) -> bytes:
    """The Fernet key in `home/secret.key`; created with mode 0600 when absent and allowed."""
    path = home / KEY_FILE_NAME
    if not path.exists():
        if not create:
            raise KeyFileError(
                f"key file {path} is missing; secrets in the database cannot be read"
            )
        private_home(home)
        key = Fernet.generate_key()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key)
        return key
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise KeyFileError(
            f"key file {path} can be read by other users (mode {mode:o}); anyone who can read "
            f"it can read every token in the database. Run `chmod 600 {path}` and start again."
        )
    key = path.read_bytes().strip()
    try:
        Fernet(key)
    except ValueError:
        raise KeyFileError(
            f"key file {path} does not hold a valid key (32 url-safe base64 bytes)"
        ) from None
    return key


class SecretBox:
    """Encrypts secrets before they reach the database; decrypts them for use."""

    def __init__(self, key: bytes, key_path: Path | None = None) -> None:
        self._fernet = Fernet(key)
        self._key = key
        self._path = key_path

    def derived_key(self, purpose: str) -> bytes:
        """A Fernet key for `purpose` (e.g. dashboard sessions), derived from this one with
        HKDF: nothing sealed for one purpose opens under another."""
        hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode())
        return base64.urlsafe_b64encode(hkdf.derive(base64.urlsafe_b64decode(self._key)))

    def seal(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def open(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            where = f" ({self._path})" if self._path else ""
            raise KeyFileError(
                f"the key file{where} is not the one these secrets were encrypted with; "
                "restore the original key file (replicas sharing one database need the same "
                "one: copy it from the first) or re-import the accounts"
            ) from None

    def __repr__(self) -> str:
        return "SecretBox(***)"


class Redactor:
    """Replaces every pool secret (keys, access and refresh tokens) in what leaves the process:
    upstream error bodies and headers relayed to clients, errors stored in the request log,
    log lines. `secrets` is read at each use, so refreshed tokens are covered at once.

    >>> Redactor(lambda: ["sk-very-secret"]).text("bad key sk-very-secret")
    'bad key [redacted]'
    """

    def __init__(self, secrets: Callable[[], Iterable[str]]) -> None:
        self._secrets = secrets

    def _values(self) -> list[str]:
        return [s for s in self._secrets() if s and len(s) >= MIN_SECRET_LENGTH]

    def text(self, value: str) -> str:
        for secret in self._values():
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value

    def bytes(self, value: bytes) -> bytes:
        for secret in self._values():
            raw = secret.encode()
            if raw in value:
                value = value.replace(raw, REDACTED.encode())
        return value
