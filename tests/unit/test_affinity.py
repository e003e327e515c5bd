"""API processes claim a CPU each (core/affinity.py). Each case runs in a child process,
so the test process itself is never pinned."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    sys.platform != "linux" or len(os.sched_getaffinity(0)) < 2,
    reason="CPU affinity needs Linux and at least two CPUs")

# Pins itself, prints the CPU it got and the CPUs of a thread started before and one
# started after, then waits for a line on stdin before exiting (releasing its claim).
CHILD = textwrap.dedent("""
    import os, sys, threading
    from pathlib import Path
    from billfold.core import affinity

    def cpus(into):
        into.extend(sorted(os.sched_getaffinity(0)))
        stop.wait()

    stop = threading.Event()
    before, after = [], []
    early = threading.Thread(target=cpus, args=(before,)); early.start()
    cpu = affinity.pin_to_free_cpu(Path(sys.argv[1]))
    late = threading.Thread(target=cpus, args=(after,)); late.start()
    while not (before and after): pass
    print(cpu, sorted(os.sched_getaffinity(0)), before, after, flush=True)
    sys.stdin.readline()
    stop.set()
""")


def _start(directory: Path) -> tuple[subprocess.Popen[str], str]:
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(directory)], text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert child.stdout is not None
    return child, child.stdout.readline().strip()


def _stop(child: subprocess.Popen[str]) -> None:
    assert child.stdin is not None
    child.stdin.write("\n")
    child.stdin.flush()
    assert child.wait(timeout=30) == 0


def test_a_process_takes_a_cpu_of_its_own_and_threads_it_starts_later_share_it(
        tmp_path: Path) -> None:
    allowed = sorted(os.sched_getaffinity(0))
    child, line = _start(tmp_path)
    try:
        assert line == f"{allowed[0]} [{allowed[0]}] {allowed} [{allowed[0]}]"
    finally:
        _stop(child)


def test_processes_spread_over_the_cpus_and_the_one_too_many_stays_unpinned(
        tmp_path: Path) -> None:
    allowed = sorted(os.sched_getaffinity(0))
    children = []
    try:
        for expected in allowed:
            child, line = _start(tmp_path)
            children.append(child)
            assert line.split(" ", 1)[0] == str(expected)
        child, line = _start(tmp_path)
        children.append(child)
        assert line == f"None {allowed} {allowed} {allowed}"
    finally:
        for child in children:
            _stop(child)


def test_a_cpu_given_up_by_an_exited_process_is_taken_again(tmp_path: Path) -> None:
    allowed = sorted(os.sched_getaffinity(0))
    first, line = _start(tmp_path)
    assert line.split(" ", 1)[0] == str(allowed[0])
    _stop(first)
    second, line = _start(tmp_path)
    try:
        assert line.split(" ", 1)[0] == str(allowed[0])
    finally:
        _stop(second)


def test_with_nowhere_to_claim_a_cpu_the_process_stays_unpinned(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    child, line = _start(blocked / "cpus")
    allowed = sorted(os.sched_getaffinity(0))
    try:
        assert line == f"None {allowed} {allowed} {allowed}"
    finally:
        _stop(child)


# What an API process of `billfold serve --processes N` does at start (web.app.serving_app),
# with its CPU claims in a directory of the test's own.
SERVING = textwrap.dedent("""
    import os
    from billfold.web.app import serving_app
    serving_app()
    print(sorted(os.sched_getaffinity(0)))
""")


@pytest.mark.parametrize(("setting", "pinned"), [("true", True), ("false", False)])
def test_an_api_process_pins_itself_unless_the_setting_is_off(
        tmp_path: Path, setting: str, pinned: bool) -> None:
    (tmp_path / "tmp").mkdir()
    env = os.environ | {"BILLFOLD_PIN_CPUS": setting, "TMPDIR": str(tmp_path / "tmp"),
                        "BILLFOLD_DATA_DIR": str(tmp_path / "data"),
                        "BILLFOLD_DATABASE_URL": f"sqlite:///{tmp_path / 'b.db'}"}
    out = subprocess.run([sys.executable, "-c", SERVING], env=env, capture_output=True,
                         text=True, timeout=60, check=True).stdout.strip()
    allowed = sorted(os.sched_getaffinity(0))
    assert out == str([allowed[0]] if pinned else allowed)
    assert (tmp_path / "tmp" / "billfold-cpus").exists() is pinned
