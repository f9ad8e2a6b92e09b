"""A Docker engine for the tests, and the images the project's files name, made here.

No image registry is reachable from this project's machines, so `python:3.11-slim`,
`postgres:16`, `redis:7` and `nginx:1.27` cannot be pulled. `stand_ins()` builds them from
Debian's packages (a bookworm root file system made by mmdebstrap, then the small Dockerfiles
in images/) and tags them with those names for the tests' run only: a name that already holds
an image not made here (the official one, pulled) is left alone and used, and the names given
here are taken off again at the end. Each stand-in says what it is in its
`org.quotapool.stand-in` label; none is presented as the official image.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IMAGES = Path(__file__).resolve().parent / "images"
LABEL = "org.quotapool.stand-in"
BASE = "quotapool-stand-in/debian:bookworm"
MIRRORS = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
STAND_INS = {
    "python:3.11-slim": "python",
    "postgres:16": "postgres",
    "redis:7": "redis",
    "nginx:1.27": "nginx",
}
"""The images the Dockerfile and docker-compose.yml name → the folder of images/ standing in."""


def docker(
    *args: str, timeout: float = 120, check: bool = True, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`docker …` (the CLI), its output as text; a failure says what it printed."""
    done = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, input=input
    )
    if check and done.returncode != 0:
        raise AssertionError(
            f"docker {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        )
    return done


def named() -> set[str]:
    """The images the project's Dockerfile (FROM) and docker-compose.yml (image:) name."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    compose = (ROOT / "docker-compose.yml").read_text()
    return set(re.findall(r"^FROM (\S+)", dockerfile, re.M)) | set(
        re.findall(r"^\s+image: (\S+)", compose, re.M)
    )


def _answers() -> bool:
    return docker("info", timeout=20, check=False).returncode == 0


@contextlib.contextmanager
def engine() -> Iterator[None]:
    """A Docker engine to talk to: the one running, or `dockerd` started here (as root; its
    log in a temporary file) and stopped at the end."""
    if _answers():
        yield
        return
    dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
    with tempfile.TemporaryDirectory(prefix="dockerd-") as folder:
        log = Path(folder) / "dockerd.log"
        with log.open("wb") as output:
            process = subprocess.Popen([dockerd], stdout=output, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while not _answers():
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("dockerd did not start: " + log.read_text()[-3000:])
                time.sleep(0.5)
            yield
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _label(image: str) -> str | None:
    """The image's stand-in label ("" when it has none), None when there is no such image."""
    found = docker("image", "inspect", "-f", f'{{{{index .Config.Labels "{LABEL}"}}}}', image,
                   check=False)  # fmt: skip
    return found.stdout.strip().replace("<no value>", "") if found.returncode == 0 else None


def _base() -> None:
    """Debian bookworm (minbase) with this machine's certificate authorities (its network
    inspects TLS, and apt and pip inside the images must trust what it presents)."""
    if _label(BASE) is not None:
        return
    trust = (
        'cp /etc/ssl/certs/ca-certificates.crt "$1/usr/local/share/ca-certificates/host.crt"'
        ' && chroot "$1" update-ca-certificates >/dev/null 2>&1'
    )
    command = [
        "mmdebstrap", "--quiet", "--variant=minbase", "--include=ca-certificates",
        f"--customize-hook={trust}", '--customize-hook=rm -rf "$1"/var/lib/apt/lists/*',
        "bookworm", "-", *MIRRORS,
    ]  # fmt: skip
    with subprocess.Popen(command, stdout=subprocess.PIPE) as made:
        assert made.stdout is not None
        imported = subprocess.run(
            ["docker", "import", "-c", f'LABEL {LABEL}="Debian bookworm minbase (mmdebstrap)"',
             "-c", 'CMD ["bash"]', "-", BASE],
            stdin=made.stdout, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
    assert made.returncode == 0 and imported.returncode == 0, imported.stderr


@contextlib.contextmanager
def stand_ins() -> Iterator[dict[str, str]]:
    """Every image the project's files name, present: yields name → what it is (the stand-in's
    label, or "pulled" for an image that was already there)."""
    missing = named() - STAND_INS.keys()
    assert not missing, f"no stand-in in tests/docker/images for {sorted(missing)}: add one"
    _base()
    tagged, what = [], {}
    try:
        for name, folder in STAND_INS.items():
            label = _label(name)
            if label == "":  # an image not made here: the real one, used as it is
                what[name] = "pulled"
                continue
            built = f"quotapool-stand-in/{folder}:bookworm"
            docker("build", "-q", "-t", built, str(IMAGES / folder), timeout=600)
            docker("tag", built, name)
            tagged.append(name)
            what[name] = _label(name) or ""
        yield what
    finally:
        for name in tagged:
            docker("rmi", name, check=False)  # the name only: the stand-in stays cached
