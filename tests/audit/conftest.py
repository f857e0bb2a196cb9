"""Fixtures for the audit tests: the digits data and small victims trained once per session."""

from __future__ import annotations

import pytest
import torch

from obliviate.audit._train import fit
from obliviate.data import load_dataset
from obliviate.models import build_model


def _trained(name: str, data, *, epochs: int, lr: float, seed: int = 0) -> torch.nn.Module:
    model = build_model(name, data.input_shape, data.num_classes, seed=seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fit(model, data.train.x, data.train.y, epochs=epochs, batch_size=64, lr=lr)
    return model.eval()


@pytest.fixture(scope="session")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="session")
def digits_cnn(digits):
    """small_cnn on digits: Adam 1e-3, batch 64, 15 epochs (about 97% test accuracy)."""
    return _trained("small_cnn", digits, epochs=15, lr=1e-3)


@pytest.fixture(scope="session")
def digits_softmax(digits):
    """Softmax regression on digits (about 97% test accuracy)."""
    return _trained("softmax_regression", digits, epochs=30, lr=1e-2)
