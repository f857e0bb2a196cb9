"""Crash injection for the crash-consistency tests.

When the environment variable ``OBLIVIATE_CRASH_AT`` equals a point's name, the process kills itself
with SIGKILL right there: a real, unclean death at a precise moment of a commit. Unset (always, in
normal use), a point costs one dictionary lookup. ``OBLIVIATE_PAUSE_AT=name`` (with
``OBLIVIATE_PAUSE_S`` seconds, default 5) sleeps there instead, to hold a lock while a test races it.
"""

from __future__ import annotations

import os
import signal
import time

CRASH_ENV = "OBLIVIATE_CRASH_AT"


def crash_point(name: str) -> None:
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get("OBLIVIATE_PAUSE_AT") == name:
        time.sleep(float(os.environ.get("OBLIVIATE_PAUSE_S", "5")))
