"""Obliviate: fast, verifiable machine unlearning (DeepObliviate) and a threat audit for PyTorch models.

What a user holds, importable from here::

    from obliviate import RunConfig, train_run, open_run, forget, verify_request
    run = train_run(RunConfig.from_toml("configs/digits.toml"), "runs/digits")   # a Run
    result = forget(run, [17, 42])              # a ForgetResult; method="exact" | "retrain"
    report = verify_request(run, result.request_id)   # a VerificationReport

- runs: :class:`RunConfig`, :func:`train_run`, :func:`open_run`, :class:`Run` and its typed manifest
  (:class:`RunManifest`, ``run.record``); :func:`replay_block` to check a block reproduces bit for bit;
- your own training step and data: :class:`Trainer` (with :class:`Batch`, :class:`StepInfo`),
  :func:`from_torch_dataset`;
- deletion: :func:`forget`, :func:`forget_many`, :class:`ForgetOptions`, :class:`ForgetResult`; by data
  subject: :func:`attach_subjects`, :func:`forget_subject`;
- verification: :func:`verify_request`, :func:`verify_candidate`, :class:`VerificationReport`;
- the threat audit: :func:`run_audit`, :class:`AuditReport`;
- errors: :class:`ObliviateError` and its tree (:mod:`obliviate.errors`).

Everything else (the chain, the store, readers, attacks one by one) lives in the
subpackages, which follow the data flow: ``data`` -> ``training`` (recorded blocks, ``store``) ->
``unlearning`` -> ``verify`` and ``audit``. Verification and the audit pull in scipy and
scikit-learn, so they load on first use.

>>> import obliviate
>>> obliviate.ForgetResult.__module__, obliviate.VerificationReport.__module__
('obliviate.unlearning.result', 'obliviate.verify.report')
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .data.torch_dataset import from_torch_dataset
from .errors import ObliviateError
from .subjects import attach_subjects, forget_subject
from .training import Run, RunConfig, open_run, replay_block, train_run
from .training.manifest import RunManifest
from .training.trainer import Batch, StepInfo, Trainer
from .unlearning import ForgetOptions, ForgetResult, forget, forget_many

__version__ = "0.1.0"

# name -> module it is loaded from on first use (heavy dependencies)
_LAZY = {
    "verify_request": ".verify", "verify_candidate": ".verify", "VerificationReport": ".verify.report",
    "run_audit": ".audit", "AuditReport": ".audit",
}

__all__ = ["AuditReport", "Batch", "ForgetOptions", "ForgetResult", "ObliviateError", "Run", "RunConfig",
           "RunManifest", "StepInfo", "Trainer", "VerificationReport", "attach_subjects", "forget", "forget_many",
           "forget_subject", "from_torch_dataset", "open_run", "replay_block", "run_audit", "train_run",
           "verify_candidate", "verify_request"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'obliviate' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
