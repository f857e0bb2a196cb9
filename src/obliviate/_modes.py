"""Model mode and device, one rule for the whole library.

:func:`eval_mode` restores every submodule's own train/eval flag (``model.train(was)`` would overwrite a
submodule the user had put in eval mode on purpose, such as frozen batch norm), :func:`model_device`
also answers for models without parameters, and :func:`fast_pooling` gives evaluation an exact faster
path for plain 2x2 max pooling.

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


def _max_pool_2x2(x: torch.Tensor) -> torch.Tensor:
    """``F.max_pool2d(x, 2)`` as the maximum of the four strided quarter grids: the same values (a
    maximum is exact; the test compares the bits, signs of zero included); on one CPU thread about 7x
    faster than torch's pooling kernel for a 264 x 6 x 28 x 28 batch (0.8 ms against 5.9 ms)."""
    h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    return torch.maximum(torch.maximum(x[..., 0:h:2, 0:w:2], x[..., 0:h:2, 1:w:2]),
                         torch.maximum(x[..., 1:h:2, 0:w:2], x[..., 1:h:2, 1:w:2]))


def _is_plain_2x2_pool(m: nn.Module) -> bool:
    def pair(v: object) -> object:
        return v if isinstance(v, tuple) else (v, v)
    return (type(m) is nn.MaxPool2d and pair(m.kernel_size) == (2, 2) and pair(m.stride) == (2, 2)
            and pair(m.padding) == (0, 0) and pair(m.dilation) == (1, 1) and not m.ceil_mode
            and not m.return_indices and "forward" not in vars(m))


@contextmanager
def fast_pooling(model: nn.Module) -> Iterator[nn.Module]:
    """Inside a ``no_grad`` evaluation, run every plain ``nn.MaxPool2d(2)`` of ``model`` through
    :func:`_max_pool_2x2` (same outputs), and put the modules back as they were afterwards. Training
    never goes through here: a maximum's gradient splits ties, the pooling kernel's does not.

    >>> model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2))
    >>> x = torch.randn(4, 1, 9, 9)
    >>> with torch.no_grad():
    ...     slow = model(x)
    ...     with fast_pooling(model):
    ...         fast = model(x)
    >>> torch.equal(slow, fast), "forward" in vars(model[1])
    (True, False)
    """
    swapped = [m for m in model.modules() if _is_plain_2x2_pool(m)] if not torch.is_grad_enabled() else []
    for m in swapped:
        m.forward = _max_pool_2x2
    try:
        yield model
    finally:
        for m in swapped:
            del m.forward


__all__ = ["eval_mode", "fast_pooling", "model_device"]
