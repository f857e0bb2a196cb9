"""Filesystem primitives of the run store: atomic writes, content hashes, an advisory lock.

All filesystem access of the store goes through here, the seam where an fsspec backend can slot in.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> atomic_write_bytes(d / "a.txt", b"hello")
>>> (d / "a.txt").read_bytes(), sha256_bytes(b"hello")[:8]
(b'hello', '2cf24dba')
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..errors import StoreError, StoreLockedError, file_error


def sha256_bytes(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_chunks(chunks: Sequence[bytes | memoryview]) -> str:
    """The sha256 of the chunks joined, without joining them (hashlib releases the GIL on large chunks)."""
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(chunk)
    return h.hexdigest()


def fsync_dir(path: Path) -> None:
    _fsync_path(path)


def atomic_write_bytes(path: Path, data: bytes | memoryview, *, durable: bool = True, sync_dir: bool = True) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a mix:
    temp file in the same folder, fsync, rename, fsync of the folder (``sync_dir=False`` leaves that
    last step to the caller, who batches it: see ``RunStore.commit``)."""
    atomic_write_chunks(path, [data], durable=durable, sync_dir=sync_dir)


def atomic_write_chunks(path: Path, chunks: Sequence[bytes | memoryview], *, durable: bool = True,
                        sync_dir: bool = True) -> None:
    """:func:`atomic_write_bytes` of the chunks joined, written one after another (unbuffered: no copy)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        # os-level calls, no file object: each system call lets a training thread and a background
        # writer trade the interpreter lock, and a file object adds an fstat and more to every write
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o666)
        try:
            for chunk in chunks:
                view = memoryview(chunk).cast("B")
                while view.nbytes:  # a write may be partial
                    view = view[os.write(fd, view):]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:  # full disk, permissions, interrupt: no temp file is left behind
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if durable and sync_dir:
        fsync_dir(path.parent)


def sync_files(paths: list[Path], dirs: Sequence[Path] = ()) -> None:
    """Make files written with ``durable=False`` durable, and the folders ``dirs`` (their new names),
    as one barrier: everything is fsynced in parallel threads (the kernel batches them into one journal
    commit, and unlike ``syncfs`` this never waits for other processes' dirty data on a shared disk);
    past ``_SYNCFS_ABOVE`` files, one ``syncfs`` of their filesystem where the platform has it (Linux)."""
    targets = [*paths, *dirs]
    if not targets:
        return
    if len(paths) > _SYNCFS_ABOVE and _syncfs(paths[0].parent):
        return
    if len(targets) == 1:
        _fsync_path(targets[0])
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(8, len(targets)), thread_name_prefix="obliviate-fsync") as pool:
        list(pool.map(_fsync_path, targets))


_SYNCFS_ABOVE = 32


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _syncfs(folder: Path) -> bool:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(folder, os.O_RDONLY)
        try:
            return bool(libc.syncfs(fd) == 0)
        finally:
            os.close(fd)
    except (OSError, AttributeError):
        return False


def remove_files(paths: list[Path]) -> None:
    """Delete files (missing ones are fine) and make the deletions durable."""
    parents = set()
    for p in paths:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            parents.add(p.parent)
    for parent in parents:
        fsync_dir(parent)


@contextlib.contextmanager
def file_lock(path: Path, *, exclusive: bool, timeout: float) -> Iterator[None]:
    """Advisory ``flock`` on ``path``; waits up to ``timeout`` seconds, then raises StoreLockedError.

    The kernel releases the lock when the holder dies, so a killed process never leaves a stale lock.
    A reader (``exclusive=False``) of a store it cannot write (read-only folder or file system) locks an
    existing lock file opened read-only, or reads without a lock when there is none: no one can write
    such a store through this path either. A writer gets a :class:`StoreError` saying the store is read-only.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise file_error(exc, "lock file", path) from None
        if exclusive:
            raise StoreError(f"{path.parent} is read-only for this user (cannot open {path.name} for writing); "
                             f"make it writable (e.g. chmod -R u+w {path.parent}) or work on a copy") from None
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            yield  # nothing can write a store we may not even create a lock file in
            return
    mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    raise StoreLockedError(
                        f"{path.parent} is in use by another obliviate process (lock {path.name}); "
                        f"wait for it to finish or pass a longer --wait") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
