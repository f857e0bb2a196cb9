"""MI-Face model inversion (Fredrikson, Jha and Ristenpart, "Model Inversion Attacks that Exploit
Confidence Information and Basic Countermeasures", CCS 2015, Algorithm 1)."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...models import build_model
from .._train import fit
from ..base import (Attack, AuditData, CountedModel, ThreatModel, check_choice, check_float, check_int,
                    model_device)
from ..metrics import ssim
from ..registry import register_attack

INITS = ("zeros", "half")
SPACES = ("lowres", "pixel")
DARK_START = -2.0  # sigmoid(-2) = 0.12 of the range: the low-resolution start for init="zeros"


@register_attack("mi_face")
class MIFace(Attack):
    """Reconstruct one representative input per class from the model's gradients.

    ``space="lowres"`` (the default) ascends the class's logit over a smooth image: a ``resolution`` x
    ``resolution`` grid (default a quarter of the input's side, at least 4) upsampled bilinearly and
    squashed into the bounds by a sigmoid, with Adam of rate ``lr`` for ``steps`` steps from a dark start
    (``init="zeros"``: every feature at 12% of the range; ``"half"``: mid-range). Optimising pixels
    directly finds adversarial noise the model is confident about but that looks like no digit (1 of 10
    reconstructions nearest their own class mean on an MLP and a CNN trained on MNIST); the smooth
    parametrisation, a prior in the spirit of the paper's PROCESS step, recovers class prototypes (10 of
    10 on both). ``space="pixel"`` is the paper's Algorithm 1 (and ART's ``MIFace``): gradient descent on
    ``1 - p_class(x)`` over pixels, clipped to the bounds, stopping a class when its cost falls to
    ``1 - threshold`` or has not improved over ``window`` steps; ``smooth`` > 0 mixes in a 3x3 blur with
    that weight after each step.

    Measured against the class's training samples: ``class_mean_hits`` (classes whose reconstruction is
    nearer its own class mean than any other's: the success measure), ``ssim_to_mean`` (SSIM of each
    reconstruction with its class mean), ``mse`` and ``ssim`` (to each training sample of the class,
    averaged), ``mse_to_mean`` and ``evaluator_accuracy`` (a separately trained ``evaluator`` model's
    accuracy on the reconstructions: reported, but adversarial noise scores 1.0 on it, so it is no proof
    of a recognisable reconstruction).

    >>> from obliviate.data import load_dataset
    >>> from obliviate.models import build_model
    >>> model = build_model("softmax_regression", (1, 8, 8), 10, seed=0)
    >>> r = MIFace(steps=5, evaluator_epochs=1)(model, load_dataset("digits"))
    >>> r.artifacts["reconstructions"].shape, r.threat.knowledge
    (torch.Size([10, 1, 8, 8]), 'white-box')
    """

    family = "inversion"
    knowledge = "white-box"
    exports = ("reconstructions", "class_means")

    def __init__(self, *, space: str = "lowres", resolution: int | None = None, steps: int = 200,
                 lr: float = 0.1, threshold: float = 0.99, window: int = 100,
                 init: str = "zeros", smooth: float = 0.0, evaluator: str = "mlp", evaluator_epochs: int = 30,
                 bounds: tuple[float, float] = (0.0, 1.0), seed: int = 0, max_samples: int | None = None) -> None:
        super().__init__(bounds=bounds, seed=seed, max_samples=max_samples)
        self.space = check_choice("space", space, SPACES)
        self.resolution = None if resolution is None else check_int("resolution", resolution, 1)
        self.steps = check_int("steps", steps, 1)
        self.lr = check_float("lr", lr, 0.0, None, lo_open=True)
        self.threshold = check_float("threshold", threshold, 0.0, 1.0)
        self.window = check_int("window", window, 1)
        self.init = check_choice("init", init, INITS)
        self.smooth = check_float("smooth", smooth, 0.0, 1.0)
        self.evaluator = evaluator
        self.evaluator_epochs = check_int("evaluator_epochs", evaluator_epochs, 1)

    def threat_model(self) -> ThreatModel:
        return ThreatModel("white-box", "confidentiality", {"space": self.space, "steps": self.steps, "lr": self.lr})

    def invert(self, model: CountedModel, classes: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        """Reconstructions for ``classes`` (one input each)."""
        if self.space == "lowres":
            return self._invert_lowres(model, classes, shape)
        return self._invert_pixels(model, classes, shape)

    def _invert_lowres(self, model: CountedModel, classes: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        lo, hi = self.bounds
        dev = classes.device
        spatial = tuple(shape[1:]) if len(shape) >= 2 else (1, shape[0])
        side = self.resolution or max(4, round(min(spatial) / 4))
        grid = tuple(min(side, s) for s in spatial)
        z = torch.zeros(len(classes), shape[0] if len(shape) >= 2 else 1, *grid[-2:], device=dev,
                        requires_grad=True)
        offset = DARK_START if self.init == "zeros" else 0.0
        opt = torch.optim.Adam([z], lr=self.lr)

        def image(z: torch.Tensor) -> torch.Tensor:
            up = F.interpolate(z, size=spatial[-2:], mode="bilinear", align_corners=False)
            return (lo + (hi - lo) * torch.sigmoid(up + offset)).reshape(len(classes), *shape)

        with torch.enable_grad():
            for _ in range(self.steps):
                logit = model(image(z)).gather(1, classes[:, None]).squeeze(1)
                opt.zero_grad(set_to_none=True)
                (-logit.sum()).backward()
                opt.step()
        with torch.no_grad():
            return image(z).detach()

    def _invert_pixels(self, model: CountedModel, classes: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        lo, hi = self.bounds
        dev = classes.device
        x = torch.full((len(classes), *shape), lo if self.init == "zeros" else (lo + hi) / 2, device=dev)
        best = torch.full((len(classes),), math.inf, device=dev)
        stall = torch.zeros(len(classes), dtype=torch.long, device=dev)
        active = torch.ones(len(classes), dtype=torch.bool, device=dev)
        blur = torch.ones(shape[0], 1, 3, 3, device=dev) / 9
        for _ in range(self.steps):
            idx = active.nonzero().squeeze(1)
            if idx.numel() == 0:
                break
            xa = x[idx].requires_grad_(True)
            cost = 1 - F.softmax(model(xa), 1).gather(1, classes[idx, None]).squeeze(1)
            (g,) = torch.autograd.grad(cost.sum(), xa)
            with torch.no_grad():
                new = (xa - self.lr * g).clamp(lo, hi)
                if self.smooth > 0 and new.dim() == 4:
                    smoothed = F.conv2d(F.pad(new, (1, 1, 1, 1), mode="replicate"), blur, groups=shape[0])
                    new = (1 - self.smooth) * new + self.smooth * smoothed
                x[idx] = new
                c = cost.detach()
                improved = c < best[idx]
                best[idx] = torch.where(improved, c, best[idx])
                stall[idx] = torch.where(improved, torch.zeros_like(stall[idx]), stall[idx] + 1)
                active[idx] = (c > 1 - self.threshold) & (stall[idx] < self.window)
        return x.detach()

    def _run(self, model: nn.Module, data: AuditData) -> tuple[dict[str, Any], dict[str, Any]]:
        dev = model_device(model)
        k = data.num_classes
        classes = torch.arange(k, device=dev)
        counted = CountedModel(model)
        recon = self.invert(counted, classes, data.input_shape)
        with torch.no_grad():
            conf = F.softmax(model(recon), 1).gather(1, classes[:, None]).squeeze(1)
        train = self._subset(data.train)
        xt, yt = train.x.to(dev), train.y.to(dev)
        means = torch.stack([xt[yt == c].mean(0) if bool((yt == c).any()) else torch.full_like(xt[0], math.nan)
                             for c in range(k)])
        mse, mse_mean, ssims, ssim_mean = [], [], [], []
        for c in range(k):
            own = xt[yt == c]
            if len(own) == 0:
                continue
            mse.append(float((own - recon[c]).pow(2).flatten(1).mean(1).mean()))
            mse_mean.append(float((means[c] - recon[c]).pow(2).mean()))
            if recon.dim() == 4:
                span = self.bounds[1] - self.bounds[0]
                ssims.append(float(ssim(recon[c:c + 1].expand_as(own).cpu(), own.cpu(), data_range=span).mean()))
                ssim_mean.append(float(ssim(recon[c:c + 1].cpu(), means[c:c + 1].cpu(), data_range=span)[0]))
        dist = torch.cdist(recon.flatten(1), means.flatten(1).nan_to_num(nan=1e6))
        nearest = dist.argmin(1)
        hits = int((nearest == classes).sum())
        evaluator = build_model(self.evaluator, data.input_shape, k, seed=self.seed + 1).to(dev)
        fit(evaluator, xt, yt, epochs=self.evaluator_epochs)
        with torch.no_grad():
            eval_acc = float((evaluator(recon).argmax(1) == classes).float().mean())
        n = max(len(classes), 1)
        metrics: dict[str, Any] = {"mse": sum(mse) / len(mse) if mse else math.nan,
                   "mse_to_mean": sum(mse_mean) / len(mse_mean) if mse_mean else math.nan,
                   "ssim": sum(ssims) / len(ssims) if ssims else math.nan,
                   "ssim_to_mean": sum(ssim_mean) / len(ssim_mean) if ssim_mean else math.nan,
                   "evaluator_accuracy": eval_acc, "class_mean_hits": hits, "classes": k,
                   "target_confidence": float(conf.mean()),
                   "forwards": counted.forward_samples / n, "backwards": counted.backward_samples / n}
        metrics["nearest_class_mean"] = [int(v) for v in nearest]
        metrics["ssim_to_mean_per_class"] = ssim_mean
        return metrics, {"reconstructions": recon, "class_means": means, "evaluator": evaluator}
