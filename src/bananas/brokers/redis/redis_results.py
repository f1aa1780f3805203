"""The Redis broker's reads of a job's outcome (a mixin): its result hash,
and waiting for it on the job's notification channel. Used by
handles, `bananas job` and the dashboard; nothing here is on the worker path."""

from __future__ import annotations

import time
from typing import Any

from ...keys import Keys
from ..records import JobResult
from .connection import RESULT_POLL_S, parse_result, redis_errors


class RedisResults:
    keys: Keys
    sharded: bool  # Redis Cluster: notifications are sharded channels (SSUBSCRIBE)

    @property
    def redis(self) -> Any:
        raise NotImplementedError

    async def get_result(self, job_id: str) -> JobResult | None:
        with redis_errors():
            data = await self.redis.hgetall(self.keys.result(job_id))
        return parse_result(data)

    async def _wait_result(self, job_id: str, timeout: float) -> JobResult | None:
        deadline = time.monotonic() + timeout
        with redis_errors():
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            channel = self.keys.notify_channel(job_id)
            try:
                if self.sharded:
                    await pubsub.ssubscribe(channel)
                else:
                    await pubsub.subscribe(channel)
                # Checked again after subscribing: the job may have finished in between.
                while (found := await self.get_result(job_id)) is None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return None
                    await pubsub.get_message(timeout=min(remaining, RESULT_POLL_S))
                return found
            finally:
                await pubsub.aclose()
