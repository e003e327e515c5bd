"""The request threads (web/workers.py): results and errors come back, context variables
are copied, a cancelled caller still waits for its call, and no call waits behind a busy
thread while another could take it."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time

import pytest

from billfold.web import workers

WHO: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="nobody")


def _run(coroutine):  # type: ignore[no-untyped-def]
    return asyncio.run(coroutine)


def test_the_call_runs_in_another_thread_and_its_result_comes_back():
    async def main() -> tuple[str, int]:
        return await workers.run_sync(lambda a, b: (threading.current_thread().name, a + b), 2, 3)

    name, total = _run(main())
    assert total == 5
    assert name.startswith("billfold-request-")
    assert name != threading.current_thread().name


def test_an_exception_is_raised_to_the_caller():
    def fail() -> None:
        raise LookupError("no such thing")

    async def main() -> None:
        await workers.run_sync(fail)

    with pytest.raises(LookupError, match="no such thing"):
        _run(main())


def test_context_variables_are_copied_in_and_do_not_leak_out():
    def read_and_set() -> str:
        seen = WHO.get()
        WHO.set("the thread")
        return seen

    async def main() -> tuple[str, str]:
        WHO.set("the caller")
        seen = await workers.run_sync(read_and_set)
        return seen, WHO.get()

    assert _run(main()) == ("the caller", "the caller")


def test_threads_are_kept_for_later_calls():
    pool = workers.Workers(most=4)

    async def main() -> set[str]:
        return {await pool.run_sync(lambda: threading.current_thread().name) for _ in range(20)}

    assert len(_run(main())) == 1


def test_a_cancelled_caller_waits_for_its_call_to_finish():
    release, finished = threading.Event(), threading.Event()

    def slow() -> str:
        release.wait(10)
        finished.set()
        return "done"

    async def main() -> None:
        task = asyncio.create_task(workers.run_sync(slow))
        await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.sleep(0.1)
        assert not task.done()  # the call still runs: the task waits for it
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert finished.is_set()

    _run(main())


def test_at_most_so_many_run_at_once_and_the_rest_in_order():
    pool = workers.Workers(most=2)
    lock = threading.Lock()
    running, most_running, started = [0], [0], []
    gates = [threading.Event() for _ in range(6)]

    def call(number: int) -> int:
        with lock:
            started.append(number)
            running[0] += 1
            most_running[0] = max(most_running[0], running[0])
        gates[number].wait(10)
        with lock:
            running[0] -= 1
        return number

    async def main() -> list[int]:
        tasks = []
        for number in range(6):
            tasks.append(asyncio.create_task(pool.run_sync(call, number)))
            await asyncio.sleep(0.01)  # queued in this order
        for number, gate in enumerate(gates):  # let them finish one by one
            gate.set()
            deadline = time.monotonic() + 5
            while len(started) < min(number + 3, 6) and time.monotonic() < deadline:
                await asyncio.sleep(0.005)  # the next waiting call has started
        return list(await asyncio.gather(*tasks))

    assert _run(main()) == list(range(6))
    assert most_running[0] == 2
    assert started == list(range(6))


def test_after_a_queue_every_idle_thread_is_used_again():
    # Six calls on two threads: four waited. Afterwards two calls at once must both run
    # at once (a miscount of idle threads would leave one waiting behind the other).
    pool = workers.Workers(most=2)

    async def main() -> None:
        await asyncio.gather(*(pool.run_sync(time.sleep, 0.01) for _ in range(6)))
        both = threading.Barrier(2, timeout=5)
        await asyncio.gather(pool.run_sync(both.wait), pool.run_sync(both.wait))

    _run(main())
