"""A background writer: persists payloads while training goes on, so recording does not stall it.

Jobs run in order on one thread behind a bounded queue (memory stays bounded). A failed job stops
the writer; the error is raised in the training thread at its next ``submit`` or at ``close``, so a
write failure stops the run and is never silently lost.

>>> w = BackgroundWriter(maxsize=2)
>>> out = []
>>> w.submit(lambda: out.append(1)); w.close(); out
[1]
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from ..errors import StoreError

_STOP = object()


class BackgroundWriter:
    def __init__(self, *, maxsize: int = 2) -> None:
        self._queue: queue.Queue[object] = queue.Queue(maxsize=maxsize)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="obliviate-writer", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is _STOP:
                return
            if self._error is None:
                try:
                    job()  # type: ignore[operator]
                except BaseException as exc:  # noqa: BLE001 - surfaced in the training thread
                    self._error = exc

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            if isinstance(self._error, OSError):  # full disk, read-only store: the CLI names the cause and fix
                raise self._error
            raise StoreError(f"writing the run store failed: {self._error}") from self._error

    def submit(self, job: Callable[[], None]) -> None:
        """Queue ``job``; blocks while the queue is full. Raises if an earlier job failed."""
        self._raise_if_failed()
        while True:
            try:
                self._queue.put(job, timeout=0.1)
                return
            except queue.Full:
                self._raise_if_failed()
                if not self._thread.is_alive():
                    raise StoreError("the run store writer stopped unexpectedly") from None

    def close(self) -> None:
        """Wait for every queued job; raise the first failure."""
        self._queue.put(_STOP)
        self._thread.join()
        self._raise_if_failed()
