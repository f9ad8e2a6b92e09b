"""Background tasks that are named, referenced until done, and cancelled together."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Mapping
from typing import Any

log = logging.getLogger(__name__)


class TaskSet:
    """Keeps a strong reference to every task it starts (asyncio only keeps weak ones)."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task %s failed", task.get_name(), exc_info=task.exception())

    async def cancel_all(self, timeout: float | None = None) -> None:
        """Cancel every task and wait for them, at most `timeout` seconds: a task still running
        then is named in the log with where it waits, and left (a server asked to stop must
        stop)."""
        tasks = list(self._tasks)
        if not tasks:
            return
        pending = await cancelled(tasks, timeout)
        for task in pending:
            log.warning(
                "background task %s did not stop within %g s of its cancellation (waiting in %s)",
                task.get_name(), timeout, _awaiting(task),
            )  # fmt: skip


RECANCEL_SECONDS = 0.1


async def cancelled(
    tasks: list[asyncio.Task[Any]], timeout: float | None = None
) -> set[asyncio.Task[Any]]:
    """Cancel `tasks` and wait until they end (at most `timeout` seconds; the tasks still
    running then are returned). A task still running is cancelled again every 0.1 s: on Python
    3.11 `asyncio.wait_for` drops a cancellation that comes as its inner call ends (redis-py
    wraps every command in one), so a single cancel can leave a loop running."""
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        wait = (
            RECANCEL_SECONDS if deadline is None else min(RECANCEL_SECONDS, deadline - loop.time())
        )
        if wait <= 0:
            break
        _, pending = await asyncio.wait(pending, timeout=wait)
    return pending


def _awaiting(task: asyncio.Task[Any]) -> str:
    """Where a task waits: its chain of awaits, outermost first."""
    found: list[str] = []
    coro: Any = task.get_coro()
    while coro is not None and (frame := getattr(coro, "cr_frame", None)) is not None:
        found.append(f"{frame.f_code.co_filename.rsplit('/', 1)[-1]}:{frame.f_lineno}")
        coro = getattr(coro, "cr_await", None)
    return " → ".join(found) or "?"


async def until_one_fails(jobs: Mapping[str, Coroutine[Any, Any, Any]]) -> None:
    """Run `jobs` together until one fails: cancel the others, wait for them, raise its error;
    when the caller is cancelled, cancel them all, wait, and let the cancellation go on.

    What `asyncio.TaskGroup` does, without its Python 3.11 bookkeeping: there, a child failing
    while the caller is cancelled raises the child's error and drops the cancellation, and a
    child failing while the group waits leaves the caller marked as being cancelled."""
    tasks = [asyncio.create_task(job, name=name) for name, job in jobs.items()]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        await cancelled(tasks)
        for task in tasks:  # each failure retrieved (none logged later as "never retrieved")
            if task.done() and not task.cancelled():
                task.exception()
    for task in done:
        if not task.cancelled() and (error := task.exception()) is not None:
            raise error


class Outage:
    """A background job that fails again and again (the database is down) says so once, and
    once more when it works again; not once per try."""

    def __init__(self, logger: logging.Logger, what: str) -> None:
        self.log = logger
        self.what = what
        self.out = False

    def failed(self, exc: BaseException) -> None:
        if not self.out:
            self.out = True
            self.log.warning("%s failed (%s: %s); retrying", self.what, type(exc).__name__, exc)

    def ok(self) -> None:
        if self.out:
            self.out = False
            self.log.warning("%s works again", self.what)
