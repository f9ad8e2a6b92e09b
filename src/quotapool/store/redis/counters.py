"""Client keys' request limits, counted by every replica in shared Redis counters: a request is
taken from all the counters of its key's windows at once, atomically (a Lua script), so a burst
spread over replicas cannot pass a limit together."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from quotapool.tasks import TaskSet

if TYPE_CHECKING:
    from quotapool.store.redis.replication import Replication

COUNTERS = "quotapool:requests:"
KEPT_SECONDS = 32 * 86_400
"""A counter names its window's start, so it is never read after the window; it goes after the
longest window (a month)."""
_TAKE = """
for i, key in ipairs(KEYS) do
  if redis.call('exists', key) == 0 then
    redis.call('set', key, ARGV[#KEYS + i], 'ex', ARGV[2 * #KEYS + 1])
  end
  if tonumber(redis.call('get', key)) >= tonumber(ARGV[i]) then
    return i - 1
  end
end
for _, key in ipairs(KEYS) do
  redis.call('incr', key)
end
return -1
"""


class KeyCounters:
    """`proxy.keys.SharedCounts` on the Redis a replica shares its pool through."""

    def __init__(self, replication: Replication, timeout: float = 0.25, pause: float = 2.0) -> None:
        self.replication = replication
        self.timeout = timeout
        """Longer than this and the request goes on by this replica's own count (a take is one
        round trip, but a replica busy with a burst answers it late: 50 ms let bursts through
        the limit)."""
        self.pause = pause
        """After a take failed or timed out, requests go on by the local count this long
        before Redis is asked again (a frozen Redis costs one `timeout`, not one a request)."""
        self._paused_until = 0.0
        self._taking = replication.redis.register_script(_TAKE)
        self._giving = TaskSet()

    async def take(self, counters: list[str], amounts: list[int], seeds: list[int]) -> int | None:
        loop = asyncio.get_running_loop()
        if not self.replication.connected or loop.time() < self._paused_until:
            return None
        keys = [COUNTERS + counter for counter in counters]
        try:
            async with asyncio.timeout(self.timeout):
                found = await self._taking(
                    keys, [*amounts, *seeds, KEPT_SECONDS], client=self.replication.redis
                )
        except (RedisError, OSError, TimeoutError):
            self._paused_until = loop.time() + self.pause
            return None
        return int(found)

    def give_back(self, counters: list[str]) -> None:
        self._giving.spawn(self._give_back(counters), "key-counters-give-back")

    async def _give_back(self, counters: list[str]) -> None:
        try:
            async with asyncio.timeout(2.0), self.replication.redis.pipeline() as given:
                for counter in counters:
                    given.decr(COUNTERS + counter)
                await given.execute()
        except (RedisError, OSError, TimeoutError):
            pass  # the counter stays one high until its window ends
