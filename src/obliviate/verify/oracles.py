"""The oracle bank: models retrained without a request's deleted samples, trained once and cached.

An *oracle* for request ``R`` is the run retrained without every sample deleted so far (``R``'s ``U``
and every other deletion the run has honoured). Oracles are what verification compares an unlearned
model with: the exact retrain is the reference, and independent retrains differing only in their
data-order seed measure the noise floor and the distribution of a forgotten sample's output in a model
that never saw it (U-LiRA).

What is shared, and why the test stays honest
    Blocks ``1..d-1`` of the recorded chain (``d``: the first block that held a sample of ``U``) never
    saw ``U``, so every oracle starts from the stored state and optimizer state after block ``d-1`` and
    retrains blocks ``d..B`` on the current membership (which no longer holds ``U``). The unlearned
    model shares that same prefix, so the oracles measure exactly the spread that everything after
    ``d`` (where ``U`` acted) can produce. Oracle ``i`` draws its minibatch orders from training seed
    ``run seed + 1000 + i``; the oracle with the run's own seed is the exact retrain, bit for bit on CPU
    (the engine's exact mode), and is kept apart as ``exact``.

Cache
    ``RUN/verify/request-<id>/oracle-<seed>.safetensors`` (the final state dict) and, for a request that
    stitched after block ``t < B``, ``oracle-<seed>-after<t>.safetensors`` (the oracle's state after block
    ``t``, used to replay the same stitch under another seed), with ``index.json`` naming each file's
    content hash. The index is keyed by the request id and a hash of everything the oracles depend on:
    the stored chain of blocks ``1..d-1`` (the request record's ``chain_sha256`` prefix while no later
    request changed it), the optimizer state after ``d-1``, the membership of blocks ``d..B`` and the
    training configuration. A later request that changes any of these makes the cache stale; stale
    folders are deleted when found. Only models trained *without* ``U`` are ever written: nothing here
    stores the deleted data's influence. Payloads are safetensors, written atomically; never pickles.

>>> oracle_seed(0, 3), oracle_seeds(7, 2)
(1003, [1007, 1008])
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import json
import logging
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .._logging import progress
from ..errors import ConfigError, RequestError
from ..store import atomic_write_bytes, file_lock, sha256_bytes, tensors_from_bytes, tensors_to_bytes
from ..training.chain import State, advance, load_state, optimizer_state_after, state_after
from ..training.run import Run

__all__ = ["ORACLE_SEED_OFFSET", "OracleBank", "Oracles", "cached_exact_state", "find_request", "oracle_seed",
           "oracle_seeds", "prune_stale", "request_key", "verify_folder"]

log = logging.getLogger(__name__)

ORACLE_SEED_OFFSET = 1000
INDEX_FORMAT = "obliviate-oracle-bank"
INDEX_VERSION = 1
VERIFY_DIR = "verify"


def oracle_seed(run_seed: int, i: int) -> int:
    """Training seed of noise-floor oracle ``i`` (its minibatch orders): ``run seed + 1000 + i``."""
    return int(run_seed) + ORACLE_SEED_OFFSET + int(i)


def oracle_seeds(run_seed: int, n: int) -> list[int]:
    return [oracle_seed(run_seed, i) for i in range(n)]


def verify_folder(run: Run, request_id: int) -> Path:
    return run.path / VERIFY_DIR / f"request-{int(request_id)}"


def find_request(run: Run, request_id: int | None) -> dict[str, Any]:
    """The request record ``request_id`` (``None``: the latest), or a :class:`RequestError` naming the fix."""
    requests = run.requests
    if not requests:
        raise RequestError(f"{run.path} has no forget requests to verify; delete something first with "
                           f"`obliviate forget {run.path} --ids FILE`")
    if request_id is None:
        return requests[-1]
    if isinstance(request_id, bool) or not isinstance(request_id, (int, np.integer)):
        raise RequestError(f"Expected a request id (an int), but got {request_id!r}")
    for r in requests:
        if int(r["request_id"]) == int(request_id):
            return r
    ids = [int(r["request_id"]) for r in requests]
    raise RequestError(f"{run.path} has no request {request_id}; its requests are {ids} "
                       f"(see `obliviate inspect {run.path}`)")


def _check_request(run: Run, request: dict[str, Any]) -> int:
    if request.get("d") is None or not request.get("ids_deleted"):
        raise RequestError(f"request {request['request_id']} of {run.path} deleted nothing (every id was already "
                           f"deleted); verify the request that deleted them")
    if run.status != "complete":
        raise RequestError(f"{run.path} is not fully trained; finish it before verifying")
    return int(request["d"])


def request_key(run: Run, request: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Hash of everything the oracles of ``request`` depend on, and its parts (kept in the index)."""
    d = _check_request(run, request)
    m = run.manifest
    blocks = m["blocks"]
    prefix = [[b["update"]["sha256"], (b.get("snapshot") or {}).get("sha256")] for b in blocks[:d - 1]]
    opt = m["init"]["optimizer"] if d == 1 else blocks[d - 2]["optimizer"]
    members = hashlib.sha256()
    for k in range(d, run.num_blocks + 1):
        ids = np.ascontiguousarray(run.block_ids(k), dtype=np.int64)
        members.update(len(ids).to_bytes(8, "little") + ids.tobytes())
    parts = {"request_id": int(request["request_id"]), "d": d, "blocks_total": run.num_blocks,
             "init": m["init"]["model"]["sha256"], "chain_prefix": prefix, "optimizer_before_d": opt["sha256"],
             "members_d_to_B": members.hexdigest(),
             "training": dataclasses.asdict(dataclasses.replace(run.config.training, seed=0)),
             "run_seed": run.config.training.seed, "model": run.config.model.name,
             "format": INDEX_VERSION}
    return sha256_bytes(json.dumps(parts, sort_keys=True).encode()), parts


def _read_index(folder: Path) -> dict[str, Any] | None:
    try:
        index = json.loads((folder / "index.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(index, dict) or index.get("format") != INDEX_FORMAT or index.get("version") != INDEX_VERSION:
        return None
    return index


def prune_stale(run: Run) -> list[str]:
    """Delete the cached oracle folders that no longer match the run (a later request changed the chain
    before their ``d`` or their membership, or the request is gone). Returns the removed folder names."""
    root = run.path / VERIFY_DIR
    if not root.is_dir():
        return []
    live = {}
    for r in run.requests:
        if r.get("d") is not None and r.get("ids_deleted"):
            live[f"request-{int(r['request_id'])}"] = r
    removed = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("request-")):
        index = _read_index(folder)
        request = live.get(folder.name)
        if request is not None and index is not None and index.get("key") == request_key(run, request)[0]:
            continue
        if request is not None and index is None and not any(folder.glob("*.safetensors")):
            continue  # nothing cached yet (a bank being started)
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder.name)
    if removed:
        log.info("dropped stale oracle caches of %s: %s", run.path, ", ".join(removed))
    return removed


@dataclass
class Oracles:
    """The oracles of one request: the exact retrain and ``n`` noise-floor retrains (final states), and,
    for a request stitched after block ``t < B``, each noise-floor oracle's state after ``t``.

    ``trained`` and ``reused`` count what this call trained and what came from the cache.
    """

    request_id: int
    d: int
    t: int | None
    run_seed: int
    exact_seed: int
    seeds: list[int]
    exact: State
    states: list[State]
    after_t: list[State] | None
    trained: int = 0
    reused: int = 0
    train_time_s: float = 0.0
    folder: str = ""
    key: str = ""
    shared_blocks: int = 0
    retrained_blocks: int = 0

    def models(self, run: Run) -> list[nn.Module]:
        """The noise-floor oracles as models of the run's architecture (eval mode)."""
        return [_as_model(run, s) for s in self.states]

    def exact_model(self, run: Run) -> nn.Module:
        return _as_model(run, self.exact)

    def summary(self) -> dict[str, Any]:
        return {"n": len(self.seeds), "seeds": list(self.seeds), "exact_seed": self.exact_seed,
                "seed_rule": f"run seed + {ORACLE_SEED_OFFSET} + i (data order only; the exact retrain uses the "
                             f"run seed)",
                "shared_blocks": f"1..{self.d - 1}" if self.d > 1 else "none",
                "retrained_blocks": f"{self.d}..{self.d + self.retrained_blocks - 1}",
                "trained_now": self.trained, "reused_from_cache": self.reused,
                "train_time_s": self.train_time_s, "cache": self.folder, "key": self.key}


@contextlib.contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    was = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(was)


def _as_model(run: Run, state: State) -> nn.Module:
    model = run.build_model()
    load_state(model, state)
    model.eval()
    return model


class OracleBank:
    """Trains and caches the oracles of one request of ``run``. Settings in the constructor, the number of
    oracles at call time: ``OracleBank(run, request_id).get(16)``.

    ``wait`` is how long to wait for another process building the same bank (or writing the run).
    ``threads``: torch intra-op threads while training oracles (restored afterwards; ``None`` leaves the
    setting alone). One by default: blocks of small models train fastest that way (two threads on a busy
    2-core machine were several times slower), and a cached oracle then does not depend on the core
    count. The exact oracle equals the engine's exact mode bit for bit when both ran with the same thread
    count; otherwise they agree to float rounding.
    """

    def __init__(self, run: Run, request_id: int | None = None, *, wait: float = 0.0,
                 threads: int | None = 1) -> None:
        self.run = run
        self.request = find_request(run, request_id)
        self.request_id = int(self.request["request_id"])
        self.d = _check_request(run, self.request)
        t = self.request.get("t")
        self.t = int(t) if t is not None and self.request.get("outcome") == "stitched" else None
        self.wait = float(wait)
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ConfigError(f"Expected argument `threads` to be an int >= 1 or None, but got {threads!r}")
        self.threads = threads
        self.folder = verify_folder(run, self.request_id)
        self.trained_total = 0  # oracles trained by this object (tests read it)

    # -- training --------------------------------------------------------------------------------------
    def _start(self) -> tuple[State, dict[str, Any]]:
        store = self.run.store
        return state_after(store, self.d - 1), optimizer_state_after(store, self.d - 1)

    def train_oracle(self, seed: int, start: tuple[State, dict[str, Any]] | None = None) -> tuple[State, State | None]:
        """Retrain blocks ``d..B`` on the current membership from the stored state after ``d-1`` with
        training seed ``seed``, continuing from the chain's reconstruction after every block exactly as
        the engine does. Returns the final state and, for a stitched request, the state after ``t``."""
        run = self.run
        cfg = dataclasses.replace(run.config.training, seed=int(seed))
        state0, opt0 = start if start is not None else self._start()
        model = run.build_model()
        prev = {k: v.clone() for k, v in state0.items()}
        load_state(model, prev)
        optimizer = run.trainer.make_optimizer(model, cfg)
        optimizer.load_state_dict(copy.deepcopy(opt0))  # load_state_dict keeps tensors: never share them
        B = run.num_blocks
        after_t = None
        for k in range(self.d, B + 1):
            data = run.block_data(k)  # the engine's minibatch rule: recorded slots, deleted ones left out
            _, prev, _ = advance(model, optimizer, prev, run.rows(data.positions), block=k, num_blocks=B, cfg=cfg,
                                 trainer=run.trainer, slots=data.slots, num_slots=data.num_slots)
            if self.t is not None and k == self.t:
                after_t = {n: v.clone() for n, v in prev.items()}
        self.trained_total += 1
        return prev, after_t

    # -- cache -----------------------------------------------------------------------------------------
    def _file(self, seed: int, after: bool = False) -> str:
        return f"oracle-{seed}-after{self.t}.safetensors" if after else f"oracle-{seed}.safetensors"

    def _load(self, index: dict[str, Any], seed: int, after: bool = False) -> State | None:
        return _read_cached(self.folder, index.get("files", {}).get(self._file(seed, after)))

    def _put(self, index: dict[str, Any], seed: int, state: State, after: bool = False) -> None:
        name = self._file(seed, after)
        blob = tensors_to_bytes(state, {"request_id": str(self.request_id), "seed": str(seed),
                                        "key": index["key"], "kind": f"after_block_{self.t}" if after else "final"})
        atomic_write_bytes(self.folder / name, blob, durable=self.run.store.durable)
        index["files"][name] = {"file": name, "sha256": sha256_bytes(blob), "bytes": len(blob), "seed": seed}

    def _write_index(self, index: dict[str, Any]) -> None:
        atomic_write_bytes(self.folder / "index.json", json.dumps(index, indent=1).encode(),
                           durable=self.run.store.durable)

    def get(self, n: int) -> Oracles:
        """The exact retrain and ``n`` noise-floor oracles, trained where the cache lacks them."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ConfigError(f"Expected the number of oracles to be an int >= 1, but got {n!r}")
        run = self.run
        key, parts = request_key(run, self.request)
        run_seed = run.config.training.seed
        seeds = oracle_seeds(run_seed, int(n))
        wanted = [run_seed, *seeds]
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        prune_stale(run)
        self.folder.mkdir(parents=True, exist_ok=True)
        bank_lock = file_lock(self.folder.parent / f".request-{self.request_id}.lock", exclusive=True,
                              timeout=self.wait)
        with run.store.lock(exclusive=False, timeout=self.wait), bank_lock:
            index = _read_index(self.folder)
            if index is None or index.get("key") != key:
                if index is not None or any(self.folder.glob("*.safetensors")):
                    log.info("oracle cache %s is stale (the run changed since it was built); rebuilding", self.folder)
                for p in self.folder.glob("*.safetensors"):
                    p.unlink()
                index = {"format": INDEX_FORMAT, "version": INDEX_VERSION, "key": key, "key_parts": parts,
                         "request_id": self.request_id, "d": self.d, "t": self.t, "exact_seed": run_seed,
                         "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "files": {},
                         "train_time_s": {}}
                self._write_index(index)
            finals: dict[int, State] = {}
            afters: dict[int, State] = {}
            missing = []
            for s in wanted:
                final = self._load(index, s)
                after = self._load(index, s, after=True) if (self.t is not None and s != run_seed) else None
                if final is None or (self.t is not None and s != run_seed and after is None):
                    missing.append(s)
                else:
                    finals[s] = final
                    if after is not None:
                        afters[s] = after
            reused = len(wanted) - len(missing)
            t0 = time.perf_counter()
            if missing:
                start = self._start()
                with _torch_threads(self.threads):
                    for s in progress(missing, desc=f"oracles for request {self.request_id}", total=len(missing)):
                        t1 = time.perf_counter()
                        final, after = self.train_oracle(s, start)
                        finals[s] = final
                        self._put(index, s, final)
                        if after is not None and s != run_seed:
                            afters[s] = after
                            self._put(index, s, after, after=True)
                        index["train_time_s"][str(s)] = time.perf_counter() - t1
                        self._write_index(index)  # after every oracle: an interrupted build keeps what it did
            train_s = time.perf_counter() - t0
        return Oracles(
            request_id=self.request_id, d=self.d, t=self.t, run_seed=run_seed, exact_seed=run_seed, seeds=seeds,
            exact=finals[run_seed], states=[finals[s] for s in seeds],
            after_t=[afters[s] for s in seeds] if self.t is not None else None,
            trained=len(missing), reused=reused, train_time_s=train_s, folder=str(self.folder), key=key,
            shared_blocks=self.d - 1, retrained_blocks=run.num_blocks - self.d + 1)


def cached_exact_state(run: Run, request_id: int | None = None) -> State | None:
    """The cached exact retrain of ``request_id`` (``None``: the latest request), or ``None`` when it is
    not cached or the cache is stale. Trains nothing."""
    try:
        request = find_request(run, request_id)
        key = request_key(run, request)[0]
    except RequestError:
        return None
    folder = verify_folder(run, int(request["request_id"]))
    index = _read_index(folder)
    if index is None or index.get("key") != key:
        return None
    return _read_cached(folder, index.get("files", {}).get(f"oracle-{run.config.training.seed}.safetensors"))


def _read_cached(folder: Path, entry: dict[str, Any] | None) -> State | None:
    """A cached oracle's state, or ``None`` when it is not indexed, missing or fails its hash."""
    if entry is None:
        return None
    try:
        blob = (folder / entry["file"]).read_bytes()
    except OSError:
        return None
    if len(blob) != entry["bytes"] or sha256_bytes(blob) != entry["sha256"]:
        log.warning("cached oracle %s does not match its hash; it will be retrained", folder / entry["file"])
        return None
    return tensors_from_bytes(blob)[0]

