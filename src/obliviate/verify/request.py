"""Verify one recorded forget request: :func:`verify_request`, the CLI's ``obliviate verify``.

The request's deleted ids ``U`` and the candidate (the run's current model unless ``model=`` is given)
go to :func:`obliviate.verify.candidate.judge`. The oracles come from the request's cached oracle bank
(:class:`~obliviate.verify.oracles.OracleBank`, ``RUN/verify/``: trained once, reused), for seed set 0;
the original model, purged by the forget, is rebuilt in memory for the power measurement only.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import ConfigError
from ..training.run import Run, open_run
from .candidate import gather_evidence, judge
from .oracles import OracleBank, _torch_threads, find_request
from .replays import OracleSet, replay_original, train_oracle_set, u_blocks
from .report import VerificationReport
from .settings import ORACLES_DEFAULT, VerifySettings

__all__ = ["verify_request"]


def _oracle_set(run: Run, request: dict[str, Any], settings: VerifySettings, wait: float) -> OracleSet:
    ids = [int(i) for i in request["ids_deleted"]]
    if settings.seed != 0:
        return train_oracle_set(run, ids, settings)
    bank = OracleBank(run, int(request["request_id"]), wait=wait, threads=settings.threads).get(settings.oracles)
    t0 = time.perf_counter()
    single = request.get("d") if request.get("d") == request.get("m") else None
    where, committed = u_blocks(run, ids, block=single)
    with _torch_threads(settings.threads):  # the original, with U, in memory only: for the test's power
        original = replay_original(run, where)
    return OracleSet(sorted(ids), bank.d, list(bank.seeds), bank.states, bank.exact, original, "replayed", committed,
                     bank.train_time_s + time.perf_counter() - t0,
                     {"cache": bank.folder, "trained_now": bank.trained, "reused_from_cache": bank.reused})


def verify_request(run: Run | str | Path, request_id: int | None = None, *, model: nn.Module | None = None,
                   oracles: int = ORACLES_DEFAULT, seed: int = 0, alpha: float = 0.01, fidelity_alpha: float = 0.01,
                   wait: float = 0.0, threads: int | None = 1) -> VerificationReport:
    """Verify forget request ``request_id`` (``None``: the latest) of ``run`` (a :class:`Run` or a path).

    ``model``: the model to verify (default: the run's current, unlearned one). Settings are validated
    by :class:`~obliviate.verify.settings.VerifySettings` (``oracles`` in [4, 128]).

    >>> import tempfile
    >>> from obliviate.training import RunConfig, train_run
    >>> from obliviate.unlearning import forget
    >>> run = train_run(RunConfig.from_dict({"training": {"blocks": 2, "epochs_per_block": 1}}),
    ...                 tempfile.mkdtemp() + "/r")
    >>> _ = forget(run, [int(run.block_ids(2)[0])], method="exact")
    >>> report = verify_request(run, 1, oracles=4)
    >>> report.faithful["verdict"], report.oracles["retrained_blocks"]
    ('yes', '2..2')
    """
    t0 = time.perf_counter()
    settings = VerifySettings(oracles=oracles, seed=seed, threads=threads, alpha=alpha, fidelity_alpha=fidelity_alpha)
    if model is not None and not isinstance(model, nn.Module):
        raise ConfigError(f"Expected `model` to be an nn.Module (or None for the run's current model), but got "
                          f"{type(model).__name__}")
    if not isinstance(run, Run):
        run = open_run(run)
    with run.store.lock(exclusive=False, timeout=wait):
        run.store.reload()
        request = find_request(run, request_id)
        oracle_set = _oracle_set(run, request, settings, wait)
        candidate = model if model is not None else run.final_model()
        report = judge(run, gather_evidence(run, oracle_set, settings), candidate, settings,
                       label="current" if model is None else "given")
    report.request = {k: request.get(k) for k in ("request_id", "method", "outcome", "d", "m", "t",
                                                   "blocks_retrained", "n_deleted", "created")}
    report.request["blocks_total"] = run.num_blocks
    report.oracles.update(oracle_set.extra)
    report.wall_time_s = time.perf_counter() - t0
    return report
