"""What bit-exact replay depends on: recorded in the manifest when a run is created, checked on replay.

Replaying a block (``train --resume``, ``forget --method exact``/``retrain``, :func:`replay_block`)
reproduces the stored bits only under the conditions the run was trained under: the same torch build,
the same number of intra-op threads (a float reduction split over 2 threads sums in another order than
over 1), the same deterministic-algorithm settings, the same device, and the same CPU kernels (torch
picks AVX-512, AVX2 or the default kernels at start-up from the CPU, or from ``ATEN_CPU_CAPABILITY``).
:func:`check_conditions` compares the recorded conditions with the current ones and warns naming both,
or with ``strict=True`` refuses with a :class:`~obliviate.errors.ReproducibilityError`.

>>> now = current_conditions()
>>> differences(now, now)
[]
>>> differences({**now, "num_threads": 99}, now)[0].startswith("torch threads: recorded 99, now ")
True
"""

from __future__ import annotations

import logging
import os
import platform
from typing import Any

import torch

from ..errors import ReproducibilityError

log = logging.getLogger(__name__)

DEVICE = "cpu"  # the default training device (config ``training.device``)

# recorded key -> (label in messages, how to restore it; {r} is the recorded value)
_CHECKED = {
    "torch": ("torch version", "install torch=={r}"),
    "num_threads": ("torch threads", "run with OMP_NUM_THREADS={r} or torch.set_num_threads({r})"),
    "deterministic_algorithms": ("deterministic algorithms", "use the obliviate release that recorded the run"),
    "device": ("device", "run on {r}"),
    "cpu_capability": ("CPU kernels (torch.backends.cpu.get_cpu_capability())",
                       "run on a CPU with {r}, or set ATEN_CPU_CAPABILITY={r_lower} on a newer one"),
    "machine": ("CPU architecture", "run on {r}"),
}


def current_conditions(device: str = DEVICE) -> dict[str, Any]:
    """The conditions in force now for training on ``device``, as recorded under ``manifest["determinism"]``
    (for a GPU also its name, under ``device_name``)."""
    extra = {"device_name": torch.cuda.get_device_name(device)} if device != "cpu" and torch.cuda.is_available() \
        else {}
    return {
        "torch": torch.__version__,
        "num_threads": torch.get_num_threads(),
        # block training always runs under torch.use_deterministic_algorithms(True, warn_only=True)
        # (obliviate.training.block.deterministic), whatever the caller's global setting
        "deterministic_algorithms": "on, warn_only (set by obliviate.training.block for every block)",
        "device": device,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "aten_cpu_capability_env": os.environ.get("ATEN_CPU_CAPABILITY", ""),
        "machine": platform.machine(),
        **extra,
    }


def differences(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """One sentence per condition that differs, naming the recorded and the current value and the fix."""
    out = []
    for key, (label, fix) in _CHECKED.items():
        if key in recorded and recorded[key] != current.get(key):
            r = recorded[key]
            out.append(f"{label}: recorded {r}, now {current.get(key)} ({fix.format(r=r, r_lower=str(r).lower())})")
    return out


def check_conditions(manifest: dict[str, Any], action: str, *, strict: bool = False) -> list[str]:
    """Warn (or, ``strict``, refuse) when ``action`` replays a run under other conditions than it was
    trained under. Returns the differences (empty when none, or for runs recorded before this check)."""
    recorded = manifest.get("determinism")
    if not recorded:
        return []
    device = manifest.get("config", {}).get("training", {}).get("device", DEVICE)
    diffs = differences(recorded, current_conditions(device))
    if not diffs:
        return []
    msg = (f"{action} replays recorded blocks under other conditions than the run was trained under, so the "
           f"result may differ in the last bits from an uninterrupted run: {'; '.join(diffs)}")
    if strict:
        raise ReproducibilityError(msg + "; refused because of --strict (strict=True)")
    log.warning("%s", msg)
    return diffs
