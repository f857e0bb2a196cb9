"""Obliviate: fast, verifiable machine unlearning (DeepObliviate) and a threat audit for PyTorch models."""

from __future__ import annotations

__version__ = "0.1.0"
