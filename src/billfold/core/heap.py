"""The garbage collector's view of a long-running process.

Python's full collection walks every object that survived the younger generations: in a
server, that is every module, model, route and schema built at startup, hundreds of
thousands of objects. Measured with two API processes on PostgreSQL, each full collection
stopped its process for 105-125 ms, every request in flight with it: the slowest
requests of a benchmark run. Freezing what exists once the process is set up takes those
objects out of every later collection; what requests allocate is collected as before.
"""

from __future__ import annotations

import gc


def settle() -> None:
    """Call once a process is ready to serve, never in a process that builds and drops
    applications (tests): what is frozen is never collected."""
    gc.collect()  # what startup left as garbage goes first, not into the frozen set
    gc.freeze()
