"""The user's own CNN, with options. Obliviate calls ``build(input_shape, num_classes, **options)``.

Obliviate calls the factory with torch's generator seeded by ``training.seed`` (and restores the caller's
generator afterwards), so the initial weights, and so the whole recorded run, are reproducible. The
factory needs no seed argument; it must not draw from other random sources (NumPy, ``random``).
"""

from __future__ import annotations

from torch import nn


class DigitsCNN(nn.Module):
    """``blocks`` conv-ReLU layers (``channels`` wide, the last one max-pooled) and a two-layer head."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, *, channels: int = 8, blocks: int = 2,
                 hidden: int = 32, kernel_size: int = 3) -> None:
        super().__init__()
        c, h, w = input_shape
        layers: list[nn.Module] = []
        for i in range(blocks):
            layers += [nn.Conv2d(c if i == 0 else channels, channels, kernel_size, padding=kernel_size // 2),
                       nn.ReLU()]
        layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(channels * (h // 2) * (w // 2), hidden), nn.ReLU(),
                                  nn.Linear(hidden, num_classes))

    def forward(self, x):  # type: ignore[no-untyped-def]
        return self.head(self.features(x))


def build(input_shape: tuple[int, ...], num_classes: int, *, channels: int = 8, blocks: int = 2, hidden: int = 32,
          kernel_size: int = 3) -> nn.Module:
    """The model factory named ``mypkg.models:build`` in the config and on the command line."""
    return DigitsCNN(input_shape, num_classes, channels=channels, blocks=blocks, hidden=hidden,
                     kernel_size=kernel_size)
