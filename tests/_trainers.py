"""Trainers and a torch Dataset the trainer-seam tests share (importable by path: ``tests._trainers:SMOOTH``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from obliviate.training.trainer import Batch, StepInfo, Trainer


def smoothed_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, y, reduction="none", label_smoothing=0.1)


def adamw(params):
    return torch.optim.AdamW(params, lr=1e-3, weight_decay=0.05, foreach=False)


#: The user trainer of issue 12: label-smoothing loss, AdamW with weight decay.
SMOOTH = Trainer(loss=smoothed_loss, optimizer=adamw, name="smoothed-adamw")


def clipped_step(model, optimizer, batch: Batch, info: StepInfo):
    """A whole step written by the user: smoothed loss through ``batch.reduce``, gradient clipping."""
    optimizer.zero_grad(set_to_none=True)
    loss = batch.reduce(smoothed_loss(model(batch.x), batch.y))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    return loss.detach()


CLIPPED = Trainer(step=clipped_step, optimizer=adamw, name="clipped")


class NoisyDigits(torch.utils.data.Dataset):
    """A user's map-style Dataset over digit images with a random transform (noise and a random flip of
    one pixel row), drawn from torch's generator at fetch time."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        img = self.x[i] + 0.05 * torch.randn_like(self.x[i])
        if torch.rand(()) < 0.5:
            img = img.flip(-1)
        return img, int(self.y[i])
