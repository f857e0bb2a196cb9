"""Obliviate: fast, verifiable machine unlearning (DeepObliviate) and a threat audit for PyTorch models.

The main entry points::

    from obliviate import RunConfig, train_run, open_run, forget, verify_request
    run = train_run(RunConfig.from_toml("configs/digits.toml"), "runs/digits")
    result = forget(run, [17, 42])              # DeepObliviate; method="exact" | "retrain"
    report = verify_request(run, result.request_id)

Subpackages follow the data flow: ``data`` -> ``training`` (recorded blocks, ``store``) -> ``unlearning``
-> ``verify`` and ``audit``.
"""

from __future__ import annotations

from typing import Any

from .data.torch_dataset import from_torch_dataset
from .training import RunConfig, open_run, replay_block, train_run
from .training.trainer import Batch, StepInfo, Trainer
from .unlearning import ForgetOptions, forget, forget_many

__version__ = "0.1.0"
__all__ = ["Batch", "ForgetOptions", "RunConfig", "StepInfo", "Trainer", "forget", "forget_many", "from_torch_dataset",
           "open_run", "replay_block", "train_run", "verify_request"]


def __getattr__(name: str) -> Any:  # verification pulls in scipy and scikit-learn: load it on first use
    if name == "verify_request":
        from .verify import verify_request

        return verify_request
    raise AttributeError(f"module 'obliviate' has no attribute {name!r}")
