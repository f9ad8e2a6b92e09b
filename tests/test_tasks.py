"""Background tasks stop when cancelled, even a task that drops one cancellation."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from quotapool.tasks import TaskSet, cancelled


async def _drops_the_first_cancellation() -> None:
    # What Python 3.11's wait_for does when the cancellation comes as its call ends:
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.sleep(30)
    while True:
        await asyncio.sleep(1)


def test_a_task_that_drops_a_cancellation_is_cancelled_again() -> None:
    async def scenario() -> tuple[set[asyncio.Task[None]], float, bool]:
        task = asyncio.create_task(_drops_the_first_cancellation())
        await asyncio.sleep(0.01)
        start = time.monotonic()
        pending = await cancelled([task], timeout=5)
        return pending, time.monotonic() - start, task.cancelled()

    pending, took, was_cancelled = asyncio.run(scenario())
    assert not pending and was_cancelled and took < 1


def test_a_task_that_will_not_stop_is_named_and_left(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> float:
        tasks, released = TaskSet(), asyncio.Event()

        async def stubborn() -> None:
            while not released.is_set():
                with contextlib.suppress(asyncio.CancelledError):
                    await released.wait()

        tasks.spawn(stubborn(), "stubborn")
        await asyncio.sleep(0.01)
        start = time.monotonic()
        await tasks.cancel_all(timeout=0.3)
        took = time.monotonic() - start
        released.set()
        return took

    took = asyncio.run(scenario())
    assert 0.3 <= took < 1
    assert "background task stubborn did not stop within 0.3 s" in caplog.text
