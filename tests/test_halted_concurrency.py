"""Where a refusal (a ``BaseException``) goes in threads, process pools, asyncio tasks and TaskGroups.

The guard is real (SQLite file, ``max_steps: 1``); the first step is allowed, the second is
refused. ``docs/refusals.md`` states what these tests check.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing.pool
import pickle
from pathlib import Path

import pytest

import agentfuse
from agentfuse import enforce
from runtime_helpers import make_policy, store_url


def _spend_two_steps(url: str) -> None:
    """Two steps of one run capped at one: the second is refused (module level: picklable)."""
    guard = enforce(make_policy(budget={"max_steps": 1}), store=url)
    try:
        for _ in range(2):
            with guard.step(estimate_usd="0.01"):
                pass
    finally:
        guard.close()


def _swallowing_worker(url: str) -> str:
    """A worker that catches ``Exception`` around its work, as tool runners do."""
    try:
        _spend_two_steps(url)
    except Exception:  # noqa: BLE001 - the point of the test
        return "swallowed"
    return "finished"


@pytest.fixture()
def url(tmp_path: Path) -> str:
    return store_url(tmp_path / "state.db")


def test_halted_is_a_base_exception_and_policy_error_an_exception() -> None:
    assert not issubclass(agentfuse.Halted, Exception)
    assert issubclass(agentfuse.Halted, BaseException)
    assert issubclass(agentfuse.StoreUnavailable, agentfuse.Halted)
    assert issubclass(agentfuse.PolicyError, Exception)
    assert issubclass(agentfuse.PolicyError, agentfuse.AgentfuseError)
    assert issubclass(agentfuse.Halted, agentfuse.AgentfuseError)


def test_except_exception_misses_a_refusal_and_except_halted_catches_it(url: str) -> None:
    with pytest.raises(agentfuse.StepLimitExceeded):
        _swallowing_worker(url)
    try:
        _spend_two_steps(url + "-2")
    except agentfuse.Halted as exc:
        assert exc.reason == "max_steps"


def test_a_refusal_keeps_its_fields_through_pickle() -> None:
    sent = agentfuse.StepLimitExceeded("no more steps", agent="a", run_id="r", figures={"max_steps": 1})
    got = pickle.loads(pickle.dumps(sent))
    assert type(got) is agentfuse.StepLimitExceeded
    assert (str(got), got.reason, got.agent, got.run_id, got.figures) == (
        "no more steps", "max_steps", "a", "r", {"max_steps": 1},
    )


@pytest.mark.parametrize("executor", [concurrent.futures.ThreadPoolExecutor, concurrent.futures.ProcessPoolExecutor])
def test_future_result_reraises_a_refusal_from_a_worker(url: str, executor: type) -> None:
    with executor(max_workers=1) as pool:
        future = pool.submit(_swallowing_worker, url)
        with pytest.raises(agentfuse.StepLimitExceeded) as caught:
            future.result(timeout=60)
        assert caught.value.reason == "max_steps"
        assert pool.submit(str, 1).result(timeout=60) == "1"  # the pool still works


def test_multiprocessing_pool_loses_a_refusal_raised_in_its_worker(url: str) -> None:
    """multiprocessing.pool catches only Exception: the worker dies and the result never comes.

    This is the one place where a BaseException refusal is worse than an Exception (see
    docs/refusals.md: use concurrent.futures, or catch ``Halted`` in the worker function).
    """
    with multiprocessing.pool.ThreadPool(1) as pool:
        pending = pool.apply_async(_swallowing_worker, (url,))
        with pytest.raises(multiprocessing.TimeoutError):
            pending.get(timeout=1)


def test_an_asyncio_task_carries_the_refusal_to_its_awaiter(url: str) -> None:
    guard = enforce(make_policy(budget={"max_steps": 1}), store=url)

    async def step() -> None:
        async with guard.step(estimate_usd="0.01"):
            await asyncio.sleep(0)

    async def main() -> BaseException | None:
        await asyncio.create_task(step())
        task = asyncio.create_task(step())
        with pytest.raises(agentfuse.StepLimitExceeded):
            await task
        return task.exception()

    try:
        assert isinstance(asyncio.run(main()), agentfuse.StepLimitExceeded)
    finally:
        guard.close()


def test_gather_raises_the_refusal_itself(url: str) -> None:
    guard = enforce(make_policy(budget={"max_steps": 1}), store=url)

    async def step() -> None:
        async with guard.step(estimate_usd="0.01"):
            await asyncio.sleep(0)

    async def main() -> list[object]:
        return await asyncio.gather(step(), step(), return_exceptions=True)

    try:
        results = asyncio.run(main())
        # return_exceptions=True returns a refusal as a result (the caller must look at it).
        assert sum(isinstance(r, agentfuse.StepLimitExceeded) for r in results) == 1
    finally:
        guard.close()


def test_a_task_group_raises_the_refusal_in_a_base_exception_group_and_cancels_its_siblings(url: str) -> None:
    guard = enforce(make_policy(budget={"max_steps": 1}), store=url)
    cancelled: list[str] = []

    async def sibling() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append("sibling")
            raise

    async def agent() -> None:
        for _ in range(2):
            async with guard.step(estimate_usd="0.01"):
                await asyncio.sleep(0)

    async def main() -> str:
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(sibling())
                group.create_task(agent())
        except Exception:  # noqa: BLE001 - a BaseExceptionGroup of refusals is not an Exception
            return "swallowed"
        return "finished"

    caught: list[BaseException] = []
    try:
        try:
            asyncio.run(main())
        except* agentfuse.Halted as group:  # Python 3.11's TaskGroup wraps it: catch it with except*
            caught.extend(group.exceptions)
    finally:
        guard.close()
    assert [type(exc) for exc in caught] == [agentfuse.StepLimitExceeded]
    assert cancelled == ["sibling"]


def test_a_refusal_inside_an_outer_step_settles_the_outer_step_as_neutral(url: str) -> None:
    """The sync shell: a refusal from an inner guard is neither a failure nor a breaker count."""
    outer = enforce(make_policy(agent="outer", budget={"max_steps": 10}), store=url)
    inner = enforce(make_policy(agent="inner", budget={"max_steps": 1}), store=url)
    try:
        with inner.step(estimate_usd="0.01"):
            pass
        with pytest.raises(agentfuse.StepLimitExceeded):
            with outer.step(estimate_usd="0.01"), inner.step(estimate_usd="0.01"):
                pass
        outer.flush()
        run = outer.store.get_run(outer.run_id)
        assert run is not None and run.failures == 0
        assert outer.store.get_breaker(outer.agent).consecutive_failures == 0
    finally:
        outer.close()
        inner.close()
