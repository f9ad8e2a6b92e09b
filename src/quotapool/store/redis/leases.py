"""Work done once across replicas: a token refresh per account, a warmup per credential.
Each is a Redis key set only if absent, for a while, by the replica doing the work; with Redis
out, every replica does it (the work done twice rather than not at all)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from quotapool.clock import Clock

REFRESHING = "quotapool:refreshing:"
REFRESH_LEASE_MS = 30_000
"""How long a replica may take to refresh an account's token before another may."""
WARMED = "quotapool:warmed:"
"""A credential's warmup claimed by a replica, for the warmup's TTL."""
RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""
"""Delete a key only if this replica holds it."""


class Leases:
    """`accounts.refresh.RefreshLease` and `jobs.warmup.Claims` across replicas."""

    def __init__(self, redis: Callable[[], aioredis.Redis], me: bytes, clock: Clock) -> None:
        self._redis = redis
        """The replica's client of the moment (a new one after each reconnection)."""
        self._me = me
        self.clock = clock

    async def take(self, credential_id: str) -> bool:
        return await self._claim(REFRESHING + credential_id, REFRESH_LEASE_MS)

    async def wait(self, credential_id: str) -> None:
        deadline = self.clock.monotonic() + REFRESH_LEASE_MS / 1000
        while self.clock.monotonic() < deadline:
            try:
                if not await self._redis().exists(REFRESHING + credential_id):
                    return
            except (RedisError, OSError):
                return
            await asyncio.sleep(0.05)

    async def give_back(self, credential_id: str) -> None:
        await self._unclaim(REFRESHING + credential_id)

    async def claim_warmup(self, credential_id: str, seconds: float) -> bool:
        return await self._claim(WARMED + credential_id, max(1, int(seconds * 1000)))

    async def release_warmup(self, credential_id: str) -> None:
        await self._unclaim(WARMED + credential_id)

    async def _claim(self, key: str, ttl_ms: int) -> bool:
        """`key` for this replica for `ttl_ms`, unless another holds it. Redis out: yes."""
        try:
            return bool(await self._redis().set(key, self._me, nx=True, px=ttl_ms))
        except (RedisError, OSError):
            return True

    async def _unclaim(self, key: str) -> None:
        """Give `key` back, if this replica still holds it."""
        with contextlib.suppress(RedisError, OSError):
            await self._redis().eval(RELEASE, 1, key, self._me)
