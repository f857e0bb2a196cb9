"""Reference models. Each builder takes the input shape and class count, so one name fits many datasets.

>>> import torch
>>> m = small_cnn((1, 8, 8), 10)
>>> m(torch.zeros(2, 1, 8, 8)).shape
torch.Size([2, 10])
"""

from __future__ import annotations

import math

import torch
from torch import nn


def mlp(input_shape: tuple[int, ...], num_classes: int, *, hidden: tuple[int, ...] = (256, 128)) -> nn.Module:
    """Tanh MLP, the Purchase-100 model of the membership-inference literature (Shokri et al.)."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(input_shape)
    for h in hidden:
        layers += [nn.Linear(width, h), nn.Tanh()]
        width = h
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


def small_cnn(input_shape: tuple[int, ...], num_classes: int, *, width: int = 16) -> nn.Module:
    """Two 3x3 conv layers and a linear head; made for 8x8 digits, works on any image size."""
    c, h, w = input_shape
    return nn.Sequential(
        nn.Conv2d(c, width, 3, padding=1), nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(2 * width * (h // 2) * (w // 2), 64), nn.ReLU(),
        nn.Linear(64, num_classes),
    )


def lenet5(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """LeNet-5 (LeCun et al. 1998) with ReLU and max pooling, for 28x28 (padded to 32) or 32x32 inputs."""
    c, h, w = input_shape
    pad = 2 if (h, w) == (28, 28) else 0
    feat = ((h + 2 * pad - 4) // 2 - 4) // 2
    return nn.Sequential(
        nn.Conv2d(c, 6, 5, padding=pad), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * feat * feat, 120), nn.ReLU(),
        nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, num_classes),
    )


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = nn.Sequential()
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.short(x))


class ResNet18(nn.Module):
    """CIFAR ResNet-18 (3x3 stem, no initial pooling; He et al. 2016), about 11.2M parameters."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, *, width: int = 64) -> None:
        super().__init__()
        c = input_shape[0]
        self.stem = nn.Sequential(nn.Conv2d(c, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        layers, cin = [], width
        for i, mult in enumerate((1, 2, 4, 8)):
            cout = width * mult
            layers += [_BasicBlock(cin, cout, 1 if i == 0 else 2), _BasicBlock(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.head = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(self.stem(x))
        logits: torch.Tensor = self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(out, 1), 1))
        return logits


def resnet18(input_shape: tuple[int, ...], num_classes: int, *, width: int = 64) -> nn.Module:
    return ResNet18(input_shape, num_classes, width=width)


def softmax_regression(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Multinomial logistic regression (one linear layer): the equation-solving extraction target."""
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), num_classes))
