"""The image and the compose stack in a real Docker engine (started here when none runs), on
images made here from Debian's packages where the registry's cannot be pulled (engine.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.docker.engine import engine, stand_ins


@pytest.fixture(scope="session")
def base_images() -> Iterator[dict[str, str]]:
    """The engine, and every image the Dockerfile and docker-compose.yml name: name → what it
    is."""
    with engine(), stand_ins() as what:
        yield what
