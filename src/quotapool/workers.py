"""`serve --workers N`: N forked processes serving one listening socket, kept running.

Each worker is a whole quotapool (its own copy of the pool, request-log writer and journals);
they share the socket (the kernel spreads connections), the database and, through Redis, the
pool. A worker that dies is started again; SIGTERM and SIGINT are passed to every worker, which
stop as a single server does; SIGHUP too (each re-reads the routing configuration, or, when the
terminal they ran in closed, all stop)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable

from quotapool.terminal import Terminal

log = logging.getLogger(__name__)
RESTART_DELAY_SECONDS = 1.0


class Workers:
    def __init__(self, count: int, run: Callable[[int], None]) -> None:
        self.count = count
        self._run = run
        """Runs worker N in the forked process, until it is told to stop."""
        self._children: dict[int, int] = {}
        """pid → worker number."""
        self._stopping: int | None = None
        """The signal that stops them all, once received."""
        self._terminal = Terminal()

    def run(self) -> int | None:
        """Start the workers, keep them running, and return once they have all stopped: the
        signal that stopped them (the caller dies of a SIGTERM, as a single server does, once
        it has cleaned up)."""
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        signal.signal(signal.SIGHUP, self._hang_up_or_forward)
        for worker in range(self.count):
            self._start(worker)
        while self._children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            if pid not in self._children:
                continue
            worker = self._children.pop(pid)
            if self._stopping is not None:
                continue
            log.warning(
                "worker %d (pid %d) ended (%s); starting it again",
                worker,
                pid,
                _how(status),
            )
            time.sleep(RESTART_DELAY_SECONDS)
            if self._stopping is None:
                self._start(worker)
        return self._stopping

    def _start(self, worker: int) -> None:
        pid = os.fork()
        if pid:
            self._children[pid] = worker
            return
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # (a reload must not kill one starting)
        code = 0
        try:
            self._run(worker)
        except BaseException:
            log.exception("worker %d failed", worker)
            code = 1
        finally:
            os._exit(code)

    def _stop(self, signum: int, _frame: object) -> None:
        self._stopping = signum
        self._forward(signum, _frame)  # SIGTERM drains first, SIGINT stops at once

    def _hang_up_or_forward(self, signum: int, frame: object) -> None:
        """The terminal closed: stop them all (each sees it too); else each reloads."""
        if self._terminal.hung_up():
            self._stop(signal.SIGINT, frame)
        else:
            self._forward(signum, frame)

    def _forward(self, signum: int, _frame: object) -> None:
        for pid in list(self._children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)


def _how(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"
