"""Whether `serve` runs in a terminal, and whether that terminal has closed: its hang-up (a
SIGHUP from the kernel) stops the server as it stops any program in the foreground, while a
`kill -HUP` from an operator, or any SIGHUP to a server started without a terminal (systemd,
Docker, nohup), re-reads the configuration as daemons do."""

from __future__ import annotations

import os


def _has_terminal() -> bool:
    try:
        os.close(os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY))
    except OSError:  # ENXIO: none, or it hung up
        return False
    return True


class Terminal:
    def __init__(self) -> None:
        self.attached = _has_terminal()

    def hung_up(self) -> bool:
        """The terminal this process started in has closed (checked on SIGHUP)."""
        return self.attached and not _has_terminal()
