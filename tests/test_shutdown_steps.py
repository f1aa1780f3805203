"""A stuck stop step names the call it waits on, through helper tasks."""

from __future__ import annotations

import asyncio

from bananas.worker.shutdown import awaiting


async def wait_on_redis_reply(never: asyncio.Event) -> None:
    await never.wait()


def test_a_step_waiting_on_other_tasks_names_the_innermost_call() -> None:
    async def main() -> tuple[str, str]:
        never = asyncio.Event()

        async def step_gathering() -> None:
            await asyncio.gather(wait_on_redis_reply(never), wait_on_redis_reply(never))

        async def step_awaiting_a_task() -> None:
            await asyncio.ensure_future(wait_on_redis_reply(never))

        gathered = asyncio.ensure_future(step_gathering())
        tasked = asyncio.ensure_future(step_awaiting_a_task())
        await asyncio.sleep(0.01)
        where = awaiting(gathered), awaiting(tasked)
        for t in (gathered, tasked):
            t.cancel()
        await asyncio.gather(gathered, tasked, return_exceptions=True)
        return where

    for where in asyncio.run(main()):
        assert "step_" in where and "wait_on_redis_reply" in where, where
