"""Known content hashes of payload files, so that checking a store does not re-read what is unchanged.

A payload's sha256 is known once it was written by this library (the writer hashes what it writes) or
read and hashed by a check. It stays valid while the file's identity and change stamps are the same:
``(device, inode, size, mtime_ns, ctime_ns)``. The kernel sets ``ctime`` on every change of a file's
content or metadata and no ordinary tool can set it back, so a file rewritten, truncated, restored
from a backup or copied elsewhere gets a new key and is hashed again. What a key cannot show is decay
below the file system (bit rot on the medium): every payload read for use is still hashed at the read
(``RunStore.get``), and ``obliviate inspect`` re-reads every file.

Two layers: a dict for the life of the process, and one small JSON file per store under
``$OBLIVIATE_CACHE_DIR`` (default ``~/.cache/obliviate``), ``integrity/<hash of the store's path>.json``.
The file is outside the store (a refused command leaves the store byte for byte as it was) and is only
a cache: unreadable, stale or missing, it is ignored and rebuilt; a failed write is logged and ignored.

>>> import tempfile, os, pathlib
>>> was = os.environ.get("OBLIVIATE_CACHE_DIR"); os.environ["OBLIVIATE_CACHE_DIR"] = tempfile.mkdtemp()
>>> p = pathlib.Path(tempfile.mkdtemp()) / "payload.bin"
>>> _ = p.write_bytes(b"abc")
>>> remember(p, "ba7816bf")
>>> known(p, os.stat(p))
'ba7816bf'
>>> save(p.parent, [p.name]); _HASHES.clear(); load(p.parent)[p.name][-1]
'ba7816bf'
>>> _ = os.environ.pop("OBLIVIATE_CACHE_DIR") if was is None else os.environ.update(OBLIVIATE_CACHE_DIR=was)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
from pathlib import Path
from collections.abc import Iterable

log = logging.getLogger(__name__)

Key = tuple[int, int, int, int, int]
_HASHES: dict[str, tuple[Key, str]] = {}  # absolute path -> (stat key, sha256)
_LOCK = threading.Lock()


def stat_key(st: os.stat_result) -> Key:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def remember(path: os.PathLike[str] | str, digest: str, st: os.stat_result | None = None) -> None:
    """Record that ``path``, as it is now, has content hash ``digest``."""
    st = st or os.stat(path)
    with _LOCK:
        _HASHES[os.fspath(path)] = (stat_key(st), digest)


def known(path: os.PathLike[str] | str, st: os.stat_result) -> str | None:
    """The remembered hash of ``path`` if the file is unchanged since, else None."""
    with _LOCK:
        hit = _HASHES.get(os.fspath(path))
    return hit[1] if hit is not None and hit[0] == stat_key(st) else None


def _cache_file(root: Path) -> Path:
    base = Path(os.environ.get("OBLIVIATE_CACHE_DIR") or Path.home() / ".cache" / "obliviate")
    name = hashlib.sha256(os.fsencode(os.path.realpath(root))).hexdigest()[:24]
    return base / "integrity" / f"{name}.json"


def load(root: Path) -> dict[str, list[object]]:
    """The persisted entries of the store at ``root`` (``name -> [*key, sha256]``), merged into the
    process's dict; {} when there is no usable cache file."""
    try:
        raw = json.loads(_cache_file(root).read_text())
        files = raw["files"] if raw.get("root") == os.path.realpath(root) else {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}
    out: dict[str, list[object]] = {}
    base = os.fspath(root)
    with _LOCK:
        for rel, entry in files.items() if isinstance(files, dict) else ():
            if isinstance(entry, list) and len(entry) == 6 and all(isinstance(v, int) for v in entry[:5]) \
                    and isinstance(entry[5], str):
                out[rel] = entry
                key = (entry[0], entry[1], entry[2], entry[3], entry[4])
                _HASHES.setdefault(os.path.join(base, rel), (key, entry[5]))
    return out


def save(root: Path, names: Iterable[str]) -> None:
    """Persist the known hashes of the files ``names`` (relative to ``root``), and nothing else: what the
    process knows, and for files it does not know, what the cache file already held."""
    root = Path(root)
    base = os.fspath(root)
    names = list(names)
    with _LOCK:
        unknown = any(os.path.join(base, rel) not in _HASHES for rel in names)
    if unknown:
        load(root)
    files: dict[str, list[object]] = {}
    with _LOCK:
        for rel in names:
            hit = _HASHES.get(os.path.join(base, rel))
            if hit is not None:
                files[rel] = [*hit[0], hit[1]]
    path = _cache_file(root)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps({"root": os.path.realpath(root), "files": files}, separators=(",", ":")))
        os.replace(tmp, path)
    except OSError as exc:  # a cache: the next check hashes again
        log.debug("integrity cache %s not written: %s", path, exc)
        with contextlib.suppress(OSError):
            tmp.unlink()


def clear(root: Path | None = None) -> None:
    """Forget every known hash of this process, and the cache file of the store at ``root`` if given
    (benchmarks use it to time a cold check; nothing else needs it)."""
    with _LOCK:
        _HASHES.clear()
    if root is not None:
        with contextlib.suppress(OSError):
            _cache_file(Path(root)).unlink()
