"""The user's own torch ``Dataset``: digits with a random transform (a one-pixel shift and a little noise).

Obliviate fetches every sample afresh for each minibatch under a seed of its own (derived from the run's
seed, the block, the epoch and the sample's id), so a replay draws the same transform for every sample
and leaving a deleted sample out changes nobody else's. The transform must draw from torch's generator
(or Python's ``random`` / NumPy's global one, which are seeded too), not from a private generator.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from obliviate import from_torch_dataset
from obliviate.data import DatasetSplits, load_digits


class ShiftedDigits(Dataset[tuple[torch.Tensor, int]]):
    """8x8 digit images, each fetched shifted by up to one pixel, with Gaussian noise of ``noise``."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, *, noise: float = 0.03) -> None:
        self.x, self.y, self.noise = x, y, noise

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        dy, dx = (int(v) for v in torch.randint(-1, 2, (2,)))
        image = torch.roll(self.x[i], shifts=(dy, dx), dims=(-2, -1))
        return image + self.noise * torch.randn_like(image), int(self.y[i])


def digits_splits() -> DatasetSplits:
    """The training set as the user's Dataset (the digits' original indices as stable ids); the test set
    is the plain digits test set, without the transform."""
    digits = load_digits()
    train = digits.train
    return DatasetSplits(from_torch_dataset(ShiftedDigits(train.x, train.y), ids=train.ids.tolist(), name="digits"),
                         digits.test)
