"""Benchmark: our FGSM, PGD-10, C&W L2, APGD-CE and JSMA against torchattacks and IBM ART, in one run.

Real MNIST (the official 10,000 test images in ``../shared/data/mnist-t10k/``, split with seed 0 into
8,000 images to train a LeNet-5 on and 2,000 to attack), 1,000 images for FGSM and PGD-10, 200 for C&W
(50 steps, one search step), 500 for APGD-CE (vs torchattacks' APGD: same eps, steps, one restart; the
random starts differ, so success is compared, not images), 50 for JSMA (vs ART's SaliencyMapMethod:
same theta, gamma and target classes; torchattacks' JSMA is the exhaustive pair search, too slow to
interleave). Each implementation runs on the same model and inputs, interleaved, ``--repeats`` times
after one untimed warm-up; the JSON at ``--out`` records every time, the minimum and median, each
implementation's success rate, and the ratios ours/torchattacks and ours/ART (on the minimum, the
estimate least disturbed by other load on the machine, and on the median).

    python benchmarks/bench_attacks.py [--out benchmarks/results/attacks.json] [--repeats 9] [--threads 1]

Our times are of :meth:`obliviate.audit.EvasionAttack.generate`, which, like torchattacks'
``attack(images, labels)``, returns adversarial images (eval mode set and restored, budget clipped) but
computes no metrics.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any
from collections.abc import Callable

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from obliviate.audit import APGD, FGSM, JSMA, PGD, CarliniWagnerL2  # noqa: E402
from obliviate.audit._train import fit  # noqa: E402
from obliviate.models import build_model  # noqa: E402


def load_mnist_t10k(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, str]:
    """8,000 train and 2,000 test images; through the library's loader when it has one."""
    try:
        from obliviate.data import load_dataset

        splits = load_dataset("mnist-t10k", seed=seed)
        return splits.train.x, splits.train.y, splits.test.x, splits.test.y, splits.source
    except Exception as exc:  # loader missing: read the IDX files here
        folder = ROOT.parent / "shared" / "data" / "mnist-t10k"
        if not (folder / "t10k-images-idx3-ubyte.gz").is_file():
            raise SystemExit(f"MNIST t10k files not found in {folder} ({exc})") from exc
        with gzip.open(folder / "t10k-images-idx3-ubyte.gz") as f:
            raw = f.read()
        if int.from_bytes(raw[:4], "big") != 2051:
            raise SystemExit("bad magic number in t10k-images-idx3-ubyte.gz") from None
        n, h, w = (int.from_bytes(raw[i:i + 4], "big") for i in (4, 8, 12))
        x = np.frombuffer(raw, np.uint8, offset=16).reshape(n, 1, h, w).astype(np.float32) / 255.0
        with gzip.open(folder / "t10k-labels-idx1-ubyte.gz") as f:
            raw = f.read()
        if int.from_bytes(raw[:4], "big") != 2049:
            raise SystemExit("bad magic number in t10k-labels-idx1-ubyte.gz") from None
        y = np.frombuffer(raw, np.uint8, offset=8).astype(np.int64)
        perm = np.random.default_rng(seed).permutation(len(y))
        tr, te = np.sort(perm[2000:]), np.sort(perm[:2000])
        return (torch.from_numpy(x[tr]), torch.from_numpy(y[tr]), torch.from_numpy(x[te]),
                torch.from_numpy(y[te]), f"IDX files in {folder}, seeded split 8000/2000")


def success_rate(model: torch.nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        clean = model(x).argmax(1) == y
        fooled = model(x_adv).argmax(1) != y
    return float((clean & fooled).sum()) / max(int(clean.sum()), 1)


def targeted_success(model: torch.nn.Module, x_adv: torch.Tensor, target: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x_adv).argmax(1) == target).float().mean())


def timed(fns: dict[str, Callable[[], torch.Tensor]], repeats: dict[str, int],
          skip_warmup: set[str]) -> dict[str, dict[str, Any]]:
    """Warm each up once (but those in ``skip_warmup``, warmed elsewhere), then run them interleaved;
    returns times and the last output of each."""
    out: dict[str, dict[str, Any]] = {}
    for name, fn in fns.items():
        if name not in skip_warmup:
            fn()  # warm-up (lazy imports, allocator)
        out[name] = {"times_s": [], "adv": None}
    for r in range(max(repeats.values())):
        order = list(fns) if r % 2 == 0 else list(reversed(list(fns)))  # no implementation always first
        for name in order:
            fn = fns[name]
            if r >= repeats[name]:
                continue
            start = time.perf_counter()
            adv = fn()
            out[name]["times_s"].append(time.perf_counter() - start)
            out[name]["adv"] = adv
    for rec in out.values():
        rec["min_s"] = min(rec["times_s"])
        rec["median_s"] = statistics.median(rec["times_s"])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "attacks.json"))
    parser.add_argument("--n", type=int, default=1000, help="images for FGSM and PGD-10")
    parser.add_argument("--cw-n", type=int, default=200, help="images for C&W")
    parser.add_argument("--repeats", type=int, default=9, help="timed runs of ours and torchattacks")
    parser.add_argument("--fgsm-repeats", type=int, default=25,
                        help="timed runs of ours and torchattacks for FGSM (short: more runs steady the minimum)")
    parser.add_argument("--art-repeats", type=int, default=3, help="timed runs of ART's FGSM and PGD")
    parser.add_argument("--art-cw-repeats", type=int, default=1, help="timed runs of ART's C&W (slow)")
    parser.add_argument("--epochs", type=int, default=3, help="LeNet-5 training epochs")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: steadiest on a shared 2-core machine; 0 = torch's default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--apgd-n", type=int, default=500, help="images for APGD-CE")
    parser.add_argument("--jsma-n", type=int, default=50, help="images for JSMA")
    parser.add_argument("--only", nargs="+", default=None, help="run only these (fgsm pgd10 cw apgd jsma)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    import torchattacks
    from art.attacks.evasion import (CarliniL2Method, FastGradientMethod, ProjectedGradientDescentPyTorch,
                                     SaliencyMapMethod)
    from art.estimators.classification import PyTorchClassifier

    xtr, ytr, xte, yte, source = load_mnist_t10k(args.seed)
    torch.manual_seed(args.seed)
    model = build_model("lenet5", (1, 28, 28), 10, seed=args.seed)
    t0 = time.perf_counter()
    fit(model, xtr, ytr, epochs=args.epochs, batch_size=128, lr=1e-3)
    train_s = time.perf_counter() - t0
    model.eval()
    with torch.no_grad():
        test_acc = float((model(xte).argmax(1) == yte).float().mean())
    x, y = xte[: args.n].contiguous(), yte[: args.n].contiguous()
    xc, yc = xte[: args.cw_n].contiguous(), yte[: args.cw_n].contiguous()

    art_clf = PyTorchClassifier(model=model, loss=torch.nn.CrossEntropyLoss(), input_shape=(1, 28, 28),
                                nb_classes=10, clip_values=(0.0, 1.0), device_type="cpu")
    eps, steps = 0.1, 10
    alpha = eps / 4
    xn, xcn = x.numpy(), xc.numpy()

    ours_fgsm = FGSM(eps=eps, max_samples=None)
    ours_pgd = PGD(eps=eps, alpha=alpha, steps=steps, random_start=False, max_samples=None)
    ours_cw = CarliniWagnerL2(c=1.0, kappa=0.0, steps=50, lr=0.01, binary_search_steps=1, max_samples=None)
    ta_fgsm = torchattacks.FGSM(model, eps=eps)
    ta_pgd = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=False)
    ta_cw = torchattacks.CW(model, c=1.0, kappa=0.0, steps=50, lr=0.01)
    art_fgsm = FastGradientMethod(art_clf, eps=eps, batch_size=args.n)
    art_pgd = ProjectedGradientDescentPyTorch(art_clf, eps=eps, eps_step=alpha, max_iter=steps, num_random_init=0,
                                              batch_size=args.n, verbose=False)
    art_cw = CarliniL2Method(art_clf, confidence=0.0, learning_rate=0.01, binary_search_steps=1, max_iter=50,
                             initial_const=1.0, batch_size=args.cw_n, verbose=False)

    art_cw.generate(xcn[:4])  # warm ART's C&W up on a few images only: it is slow
    xa, ya = xte[: args.apgd_n].contiguous(), yte[: args.apgd_n].contiguous()
    ours_apgd = APGD(eps=eps, steps=steps, max_samples=None)
    ta_apgd = torchattacks.APGD(model, norm="Linf", eps=eps, steps=steps, n_restarts=1, loss="ce", seed=args.seed)
    xj, yj = xte[: args.jsma_n].contiguous(), yte[: args.jsma_n].contiguous()
    gen = torch.Generator().manual_seed(args.seed)
    tj = (yj + torch.randint(1, 10, yj.shape, generator=gen)) % 10
    theta, gamma = 1.0, 0.1
    ours_jsma = JSMA(theta=theta, gamma=gamma, max_samples=None)
    art_jsma = SaliencyMapMethod(art_clf, theta=theta, gamma=gamma, batch_size=args.jsma_n, verbose=False)
    tj_onehot = np.eye(10, dtype=np.float32)[tj.numpy()]

    def art_call(attack: Any, xs: np.ndarray) -> Callable[[], torch.Tensor]:
        return lambda: torch.from_numpy(attack.generate(xs))

    plans = {
        "fgsm": ({"ours": lambda: ours_fgsm.generate(model, x, y), "torchattacks": lambda: ta_fgsm(x, y),
                  "art": art_call(art_fgsm, xn)}, x, y,
                 {"eps": eps, "images": args.n}),
        "pgd10": ({"ours": lambda: ours_pgd.generate(model, x, y), "torchattacks": lambda: ta_pgd(x, y),
                   "art": art_call(art_pgd, xn)}, x, y,
                  {"eps": eps, "alpha": alpha, "steps": steps, "random_start": False, "images": args.n}),
        "cw": ({"ours": lambda: ours_cw.generate(model, xc, yc), "torchattacks": lambda: ta_cw(xc, yc),
                "art": art_call(art_cw, xcn)}, xc, yc,
               {"c": 1.0, "kappa": 0.0, "steps": 50, "lr": 0.01, "binary_search_steps": 1, "images": args.cw_n}),
        "apgd": ({"ours": lambda: ours_apgd.generate(model, xa, ya), "torchattacks": lambda: ta_apgd(xa, ya)}, xa, ya,
                 {"eps": eps, "steps": steps, "restarts": 1, "loss": "ce", "images": args.apgd_n}),
        "jsma": ({"ours": lambda: ours_jsma.generate(model, xj, yj, tj),
                  "art": lambda: torch.from_numpy(art_jsma.generate(xj.numpy(), y=tj_onehot))}, xj, yj,
                 {"theta": theta, "gamma": gamma, "targets": "seeded random, shared", "images": args.jsma_n,
                  "candidates": ours_jsma.candidates}),
    }
    if args.only:
        plans = {k: v for k, v in plans.items() if k in args.only}
    results: dict[str, Any] = {}
    for name, (fns, xs, ys, settings) in plans.items():
        mine = args.fgsm_repeats if name == "fgsm" else args.repeats
        reps = {"ours": mine, "torchattacks": mine,
                "art": args.art_cw_repeats if name == "cw" else args.art_repeats}
        if name == "jsma":
            reps = {"ours": args.art_repeats, "art": args.art_repeats}
        timing = timed(fns, {k: v for k, v in reps.items() if k in fns}, skip_warmup={"art"} if name == "cw" else set())
        entry: dict[str, Any] = {"settings": settings}
        for impl, rec in timing.items():
            rate = (targeted_success(model, rec["adv"], tj) if name == "jsma"
                    else success_rate(model, xs, rec["adv"], ys))
            entry[impl] = {"times_s": [round(t, 4) for t in rec["times_s"]], "min_s": round(rec["min_s"], 4),
                           "median_s": round(rec["median_s"], 4), "success_rate": round(rate, 4)}
            if name == "jsma":
                entry[impl]["l0_mean"] = round(float(((rec["adv"] - xs).abs() > 1e-6).flatten(1).sum(1).float().mean()), 2)
        o = timing["ours"]
        for peer, key in (("torchattacks", "torchattacks"), ("art", "art")):
            if peer not in timing:
                continue
            p = timing[peer]
            entry[f"ratio_vs_{key}"] = round(o["min_s"] / p["min_s"], 3)
            entry[f"ratio_vs_{key}_median"] = round(o["median_s"] / p["median_s"], 3)
            entry[f"success_diff_vs_{key}"] = round(entry["ours"]["success_rate"] - entry[peer]["success_rate"], 4)
        if "torchattacks" in timing:
            entry["no_slower_than_torchattacks"] = entry["ratio_vs_torchattacks"] <= 1.05
        if "art" in timing:
            entry["faster_than_art"] = entry["ratio_vs_art"] <= 1.0
        if name == "fgsm":
            entry["max_abs_diff_vs_torchattacks"] = float((o["adv"] - timing["torchattacks"]["adv"]).abs().max())
        results[name] = entry
        peers = "  ".join(f"{k} {timing[k]['min_s']:.3f}s (ours/{k} {entry['ratio_vs_' + k]:.3f}, success "
                          f"{entry[k]['success_rate']:.3f})" for k in ("torchattacks", "art") if k in timing)
        print(f"{name:6s} ours {o['min_s']:.3f}s success {entry['ours']['success_rate']:.3f}  {peers}",
              file=sys.stderr)

    import art as art_pkg

    report = {
        "benchmark": "evasion attacks: ours vs torchattacks vs ART",
        "data": source, "model": "lenet5", "train_epochs": args.epochs, "train_s": round(train_s, 2),
        "model_test_accuracy": round(test_acc, 4),
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpu_count": os.cpu_count(), "torch": torch.__version__,
                    "torch_threads": torch.get_num_threads(), "torchattacks": torchattacks.__version__,
                    "art": art_pkg.__version__},
        "timing": "min and median of interleaved repeats after one warm-up; ratios on the min (and median)",
        "results": results,
        "all_pass": all(r.get("no_slower_than_torchattacks", True) and r.get("faster_than_art", True)
                        for r in results.values()),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(report, indent=1) + "\n")
    tmp.replace(out)
    print(json.dumps({k: {m: v[m] for m in ("ratio_vs_torchattacks", "ratio_vs_art", "success_diff_vs_torchattacks",
                                          "success_diff_vs_art") if m in v}
                      for k, v in results.items()}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
