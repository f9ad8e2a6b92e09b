"""Secrets at rest: Fernet with a key file created on first run (mode 0600)."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

KEY_FILE_NAME = "secret.key"


class KeyFileError(Exception):
    """The key file is missing, unreadable, or not the key the database was written with."""


def load_or_create_key(home: Path, *, create: bool = True) -> bytes:
    """The Fernet key in `home/secret.key`; created with mode 0600 when absent and allowed."""
    path = home / KEY_FILE_NAME
    if not path.exists():
        if not create:
            raise KeyFileError(
                f"key file {path} is missing; secrets in the database cannot be read"
            )
        home.mkdir(parents=True, exist_ok=True)
        key = Fernet.generate_key()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key)
        return key
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
        self._path = key_path

    def seal(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def open(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            where = f" ({self._path})" if self._path else ""
            raise KeyFileError(
                f"the key file{where} is not the one these secrets were encrypted with; "
                "restore the original key file or re-import the accounts"
            ) from None

    def __repr__(self) -> str:
        return "SecretBox(***)"
