"""Checking a store's payloads against their manifest hashes before anything is committed onto it.

A payload's hash is computed once per file version: files the library wrote, or hashed once, are
known by their (device, inode, size, mtime, ctime) in :mod:`~obliviate.store.hash_cache`, in the
process and in a small cache file outside the store, so checking an unchanged store (the first request
after training, a second request, the service) only stats the files. Payload files are
content-addressed and never rewritten in place by obliviate, so a new version of a file always has a
new key.

>>> import tempfile, torch
>>> from obliviate.store import RunStore
>>> store = RunStore.create(tempfile.mkdtemp() + "/run", {})
>>> store.commit({**store.manifest, "w": store.put("w", {"w": torch.ones(2)})})
>>> damaged_payloads(store)
[]
>>> _ = (store.root / store.manifest["w"]["file"]).write_bytes(b"rot")
>>> damaged_payloads(store)[0].endswith("has 3 bytes, the manifest says 72")
True
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from typing import Any

from ..errors import IntegrityError
from . import hash_cache
from .run_store import RunStore, iter_refs

def file_sha256(path: os.PathLike[str] | str, st: os.stat_result | None = None) -> str:
    """sha256 of a file; not re-read while the file is unchanged (:mod:`~obliviate.store.hash_cache`)."""
    st = st or os.stat(path)
    hit = hash_cache.known(path, st)
    if hit is not None:
        return hit
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    digest = h.hexdigest()
    hash_cache.remember(path, digest, st)
    return digest


def damaged_payloads(store: RunStore, refs: Iterable[dict[str, Any]] | None = None) -> list[str]:
    """One sentence per damaged payload (missing, wrong size, wrong hash) among ``refs`` (default: every
    payload the manifest names), in manifest order."""
    out: list[str] = []
    seen: set[str] = set()
    persisted = hash_cache.load(store.root)
    hashed_now = False
    for ref in (iter_refs(store.manifest) if refs is None else refs):
        if ref["file"] in seen:
            continue
        seen.add(ref["file"])
        path = store.root / ref["file"]
        try:
            st = os.stat(path)
            if st.st_size != ref["bytes"]:
                out.append(f"{ref['file']} has {st.st_size} bytes, the manifest says {ref['bytes']}")
                continue
            hashed_now = hashed_now or hash_cache.known(path, st) is None
            if file_sha256(path, st) != ref["sha256"]:
                out.append(f"{ref['file']} does not match its content hash (sha256) in the manifest")
        except FileNotFoundError:
            out.append(f"{ref['file']} is missing")
        except OSError as exc:
            out.append(f"{ref['file']} cannot be read ({exc.strerror})")
    if refs is None and (hashed_now or set(persisted) != seen):
        hash_cache.save(store.root, sorted(seen))
    return out


def require_intact(store: RunStore, action: str) -> None:
    """Raise :class:`IntegrityError` listing the damaged payloads, if any; ``action`` says what is refused,
    e.g. ``"forget will not commit onto it"``."""
    damaged = damaged_payloads(store)
    if damaged:
        shown = "; ".join(damaged[:10]) + (f"; and {len(damaged) - 10} more" if len(damaged) > 10 else "")
        raise IntegrityError(f"{store.root} is damaged, so {action}: {len(damaged)} "
                             f"payload(s) do not match the manifest: {shown}. Nothing was changed; restore the "
                             f"run from a backup (`obliviate inspect {store.root}` lists the problems)")
