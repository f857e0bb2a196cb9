"""Model mode and device, one rule for the whole library.

:func:`eval_mode` restores every submodule's own train/eval flag (``model.train(was)`` would overwrite a
submodule the user had put in eval mode on purpose, such as frozen batch norm), and :func:`model_device`
also answers for models without parameters.

>>> from torch import nn
>>> model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
>>> _ = model[1].eval()  # the user's choice: frozen statistics
>>> with eval_mode(model):
...     model.training, model[1].training
(False, False)
>>> model.training, model[1].training
(True, False)
>>> model_device(nn.ReLU()).type
'cpu'
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode and restore every submodule's own train/eval flag afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, was_training in modes:
            m.training = was_training


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (or buffer); the CPU for a model holding neither."""
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


__all__ = ["eval_mode", "model_device"]
