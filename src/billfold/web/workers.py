"""The threads that run a request's blocking work: its route (routing.in_thread), its API
key and idempotency checks, closing a session that still holds a transaction.

anyio's ``to_thread.run_sync``, which FastAPI uses, asks on every call which event-loop
library is running, looks up its thread limiter and default thread in run-variables,
enters a cancel scope and takes a capacity token: about 170,000 instructions a call, a
fifteenth of what creating a pay session costs in all (callgrind, in process: 2.45 → 2.28
million per session). ``run_sync`` here hands the call to an idle thread through one
queue and is woken through the loop's thread-safe callback, as anyio is.

As with anyio, at most ``MOST_THREADS`` calls run at once (more wait their turn, in order),
each in a copy of the caller's context variables, and cancelling the awaiting task does
not abandon the call: the task waits for it to finish and is cancelled then, so a request
never closes a session its thread is still using."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any, TypeVar

T = TypeVar("T")

MOST_THREADS = 40  # anyio's default limit, which FastAPI's own thread pool keeps


class _Uncancellable(asyncio.Future[Any]):
    """A future that refuses to be cancelled: a task cancelled while awaiting it is
    cancelled once it completes (asyncio's Task does this when its waiter refuses)."""

    def cancel(self, msg: Any | None = None) -> bool:
        return False


def _settle(future: asyncio.Future[Any], failed: bool, outcome: Any) -> None:
    if not future.done():
        if failed:
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


_Call = tuple[asyncio.AbstractEventLoop, asyncio.Future[Any], contextvars.Context,
              Callable[..., Any], tuple[Any, ...]]


class Workers:
    """Threads started as calls need them, up to ``most``, kept for the next calls."""

    def __init__(self, most: int = MOST_THREADS) -> None:
        self._calls: SimpleQueue[_Call] = SimpleQueue()
        self._lock = threading.Lock()
        # Every queued call is promised a thread: an idle one, a new one, or (with
        # ``most`` busy) the next to finish. So no call waits behind a busy thread while
        # another could take it.
        self._idle = 0  # threads waiting for a call and not yet promised one
        self._owed = 0  # calls promised to the next thread to finish
        self._started = 0
        self._most = most

    async def run_sync(self, func: Callable[..., T], *args: Any) -> T:
        """``func(*args)`` in a worker thread; its result, or its exception raised here."""
        loop = asyncio.get_running_loop()
        future = _Uncancellable(loop=loop)
        start = False
        with self._lock:
            if self._idle:
                self._idle -= 1
            elif self._started < self._most:
                self._started += 1
                start = True
            else:
                self._owed += 1
        self._calls.put((loop, future, contextvars.copy_context(), func, args))
        if start:
            threading.Thread(target=self._work, name=f"billfold-request-{self._started}",
                             daemon=True).start()
        result: T = await future
        return result

    def _work(self) -> None:
        calls = self._calls
        while True:
            loop, future, context, func, args = calls.get()
            failed = False
            try:
                outcome = context.run(func, *args)
            except BaseException as exc:  # handed to the awaiting task, as anyio does
                outcome, failed = exc, True
            # Free again before the caller hears: its next call finds this thread idle.
            with self._lock:
                if self._owed:
                    self._owed -= 1
                else:
                    self._idle += 1
            _hand_back(loop, future, failed, outcome)
            del loop, future, context, func, args, outcome  # nothing kept alive while idle


def _hand_back(loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], failed: bool,
               outcome: Any) -> None:
    with contextlib.suppress(RuntimeError):  # a closed loop: nobody awaits the call
        loop.call_soon_threadsafe(_settle, future, failed, outcome)


_workers = Workers()


async def run_sync(func: Callable[..., T], *args: Any) -> T:
    """``func(*args)`` in one of this process's request threads."""
    return await _workers.run_sync(func, *args)
