"""The run store: a folder holding a JSON manifest and content-addressed safetensors payloads.

Layout::

    RUN/manifest.json             the truth: written last, atomically (temp file, fsync, rename)
    RUN/payloads/<kind>-<sha>.safetensors
    RUN/.lock                     advisory lock: one writer at a time

A payload is referenced from the manifest by a small dict ``{"file", "sha256", "bytes"}`` (a *ref*),
wherever it sits in the manifest; the store knows nothing else of the manifest's shape. Payloads are
written before the manifest that names them, so a crash leaves either the old manifest (and some
unreferenced files, removed by :meth:`RunStore.collect_garbage`) or the new one. Nothing here
knows about training.

>>> import tempfile, torch
>>> store = RunStore.create(tempfile.mkdtemp() + "/run", {"hello": "world"})
>>> ref = store.put("init", {"w": torch.zeros(3)})
>>> store.commit({**store.manifest, "init": ref})
>>> store.get(RunStore.open(store.root).manifest["init"])["w"].tolist()
[0.0, 0.0, 0.0]
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from collections.abc import Mapping

import torch

from ..errors import IntegrityError, StoreError, StoreFormatError
from .files import (atomic_write_bytes, atomic_write_chunks, file_lock, fsync_dir, remove_files, sha256_bytes,
                    sha256_chunks, sync_files)
from . import hash_cache
from .payloads import encode_tensors, tensors_from_bytes

FORMAT = "obliviate-run"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
PAYLOADS = "payloads"


def is_ref(obj: Any) -> bool:
    return isinstance(obj, dict) and "file" in obj and "sha256" in obj and "bytes" in obj


def iter_refs(obj: Any) -> Iterator[dict[str, Any]]:
    """Every payload ref anywhere inside a manifest (nested dicts and lists)."""
    if is_ref(obj):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from iter_refs(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from iter_refs(v)


class RunStore:
    """A run store folder. Create with :meth:`create`, reopen with :meth:`open`."""

    def __init__(self, root: Path, manifest: dict[str, Any], *, durable: bool = True) -> None:
        self.root = Path(root)
        self.manifest = manifest
        self.durable = durable
        self._unsynced: list[Path] = []  # payloads written but not yet made durable
        self._wrote = False  # payloads written since the last commit (their hashes go to the cache)

    # -- opening ---------------------------------------------------------------------------------
    @classmethod
    def create(cls, root: str | Path, manifest: dict[str, Any], *, durable: bool = True,
               fill: Callable[[RunStore], dict[str, Any]] | None = None) -> RunStore:
        """Make a new store at ``root`` (which must not hold a store already) with ``manifest``.

        ``fill(store)`` may write the first payloads and return the manifest entries naming them: they
        are committed together with the store's creation, in one atomic manifest write.
        """
        root = Path(root)
        if (root / MANIFEST).exists():
            raise StoreError(f"{root} already holds a run; choose another --out, or pass --resume to finish it")
        if root.exists() and any(p for p in root.iterdir() if p.name != ".lock"):
            raise StoreError(f"{root} exists and is not empty; choose an empty or new folder")
        (root / PAYLOADS).mkdir(parents=True, exist_ok=True)
        store = cls(root, {"format": FORMAT, "format_version": FORMAT_VERSION, **manifest}, durable=durable)
        try:
            if fill is not None:
                store.manifest = {**store.manifest, **fill(store)}
            store.commit(store.manifest)
        except BaseException:
            if not (root / MANIFEST).exists():  # no store came to be: leave the folder as it was found
                shutil.rmtree(root / PAYLOADS, ignore_errors=True)
            raise
        return store

    @classmethod
    def open(cls, root: str | Path, *, durable: bool = True) -> RunStore:
        """Open an existing store; refuses folders without a manifest and unknown format versions."""
        root = Path(root)
        path = root / MANIFEST
        if not path.is_file():
            raise StoreError(f"{root} is not an obliviate run (no {MANIFEST}); create one with `obliviate train`")
        try:
            manifest = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise IntegrityError(f"{path} is not valid JSON ({exc}); the store is damaged") from exc
        if manifest.get("format") != FORMAT:
            raise StoreFormatError(f"{path} is not an obliviate run manifest (format {manifest.get('format')!r})")
        version = manifest.get("format_version")
        if version != FORMAT_VERSION:
            raise StoreFormatError(
                f"{root} uses run format version {version}, this obliviate reads version {FORMAT_VERSION}; "
                f"open it with the obliviate release that wrote it")
        return cls(root, manifest, durable=durable)

    # -- locking ---------------------------------------------------------------------------------
    def lock(self, *, exclusive: bool = True, timeout: float = 0.0) -> contextlib.AbstractContextManager[None]:
        """Hold the store's lock: exclusive for writers, shared for readers."""
        return file_lock(self.root / ".lock", exclusive=exclusive, timeout=timeout)

    def reload(self) -> None:
        """Re-read the manifest from disk (after taking the lock)."""
        self.manifest = RunStore.open(self.root, durable=self.durable).manifest

    # -- payloads --------------------------------------------------------------------------------
    def put(self, kind: str, tensors: dict[str, torch.Tensor],
            metadata: dict[str, str] | None = None) -> dict[str, Any]:
        """Write a payload (content-addressed, atomically) and return its ref. Does not touch the manifest."""
        return self.put_chunks(kind, encode_tensors(tensors, metadata))

    def put_chunks(self, kind: str, chunks: list[bytes | memoryview]) -> dict[str, Any]:
        """Write the payload file made of ``chunks`` (as :func:`encode_tensors` lays it out)."""
        digest = sha256_chunks(chunks)
        size = sum(memoryview(c).nbytes for c in chunks)
        name = f"{kind}-{digest[:20]}.safetensors"
        path = self.root / PAYLOADS / name
        try:
            present = os.stat(path).st_size == size
        except FileNotFoundError:
            present = False
        if not present:
            atomic_write_chunks(path, chunks, durable=False)  # made durable in one go by the next commit
            self._unsynced.append(path)
            self._wrote = True
            hash_cache.remember(path, digest)  # what was just written: a later check need not re-read it
        return {"file": f"{PAYLOADS}/{name}", "sha256": digest, "bytes": size}

    def get_with_metadata(self, ref: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        """Read a payload, checking its size and content hash first."""
        path = self.root / ref["file"]
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            raise IntegrityError(f"payload {path} is missing; the store is damaged "
                                 f"(run `obliviate inspect {self.root}` to see what is affected)") from None
        if len(blob) != ref["bytes"] or sha256_bytes(blob) != ref["sha256"]:
            raise IntegrityError(f"payload {path} does not match its content hash in the manifest; "
                                 f"it was altered or corrupted and will not be used")
        return tensors_from_bytes(blob)

    def get(self, ref: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        return self.get_with_metadata(ref)[0]

    def check_ref(self, ref: Mapping[str, Any]) -> str | None:
        """None when the payload is intact, else a sentence saying what is wrong."""
        try:
            self.get_with_metadata(ref)
        except IntegrityError as exc:
            return str(exc)
        return None

    def sync_payloads(self) -> None:
        """Make the payloads written so far (and their names) durable now, so that the next commit's
        barrier has only the manifest left: a writer thread calls it while the caller does other work."""
        if self.durable and self._unsynced:
            sync_files(self._unsynced, dirs=[self.root / PAYLOADS])
        self._unsynced = []

    # -- manifest --------------------------------------------------------------------------------
    def commit(self, manifest: dict[str, Any]) -> None:
        """Atomically replace the manifest. Every payload it names must already be written."""
        data = json.dumps(manifest, separators=(",", ":")).encode()  # compact: rewritten often
        wrote = self._wrote
        if not self.durable:
            atomic_write_bytes(self.root / MANIFEST, data, durable=False)
            self.manifest = manifest
            self._unsynced, self._wrote = [], False
            self._save_hashes(wrote)
            return
        # one barrier makes the payloads (content and names) and the new manifest's content durable
        # before the rename publishes it; then the rename itself is made durable
        tmp = self.root / f".{MANIFEST}.tmp-{os.getpid()}"
        with open(tmp, "wb") as fh:  # a leftover of a crash here is removed by collect_garbage
            fh.write(data)
        sync_files([*self._unsynced, tmp], dirs=[self.root / PAYLOADS] if self._unsynced else [])
        self._unsynced = []
        os.replace(tmp, self.root / MANIFEST)
        fsync_dir(self.root)
        self.manifest = manifest
        self._wrote = False
        self._save_hashes(wrote)

    def _save_hashes(self, wrote: bool) -> None:
        """Persist the known hashes of the new manifest's payloads (``hash_cache``) when it named new ones."""
        if wrote:
            hash_cache.save(self.root, sorted(self.referenced_files()))

    @contextlib.contextmanager
    def discard_on_failure(self) -> Iterator[None]:
        """Hold the exclusive lock around this: if the body fails, the payloads it wrote that no manifest
        names are removed, so a failed change (full disk, bad input found late) leaves the store as it was."""
        try:
            yield
        except BaseException:
            with contextlib.suppress(Exception):
                self.collect_garbage()
            raise

    def referenced_files(self) -> set[str]:
        return {ref["file"] for ref in iter_refs(self.manifest)}

    def collect_garbage(self) -> list[str]:
        """Delete every payload the manifest does not name (left by a crash, or purged by a forget).

        Call it holding the exclusive lock. Returns the removed file names.
        """
        keep = self.referenced_files()
        folder = self.root / PAYLOADS
        doomed = [p for p in folder.iterdir() if f"{PAYLOADS}/{p.name}" not in keep]
        doomed += list(self.root.glob(f".{MANIFEST}.tmp-*"))  # a manifest write a crash interrupted
        remove_files(doomed)
        return sorted(p.name for p in doomed)

    def storage_bytes(self) -> int:
        return sum(ref["bytes"] for ref in {r["file"]: r for r in iter_refs(self.manifest)}.values())
