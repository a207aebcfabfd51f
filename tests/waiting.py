"""Waiting in tests: on files and processes, never against the clock.

A test waits for what it needs (a file written, a status set, a child exited).
:data:`HANG_GUARD_S` bounds each wait only so that a hung child cannot hold the
suite forever: a busy 2-core machine may take many times the usual time, so it is
30 minutes, and no test asserts on how long something took.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

#: the most a test waits for one event: a guard against hangs, not a measure of speed
HANG_GUARD_S = 1800.0


def wait_for(predicate: Callable[[], bool], what: str, *, proc: subprocess.Popen | None = None,
             poll_s: float = 0.05) -> None:
    """Return once ``predicate()`` is true; fail if ``proc`` ends first or after :data:`HANG_GUARD_S`."""
    guard = time.monotonic() + HANG_GUARD_S
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the process ended before {what}: {proc.communicate()}")
        if time.monotonic() > guard:
            raise AssertionError(f"hang guard: {what} did not happen in {HANG_GUARD_S:g} s")
        time.sleep(poll_s)
