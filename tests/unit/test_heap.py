"""core.heap: a process that is ready to serve takes its startup objects out of every
later garbage collection."""

import gc
import weakref

from billfold.core import heap


class Startup:
    pass


def test_settle_collects_startup_garbage_then_freezes_the_rest():
    kept = Startup()
    garbage = Startup()
    garbage.cycle = garbage  # type: ignore[attr-defined]  # only a collection frees it
    gone = weakref.ref(garbage)
    del garbage
    try:
        heap.settle()
        assert gone() is None
        assert gc.get_freeze_count() > 0
        # Frozen: in none of the generations a collection walks.
        assert not any(o is kept for generation in range(3)
                       for o in gc.get_objects(generation=generation))
    finally:
        gc.unfreeze()
