"""Render benchmarks/results/unlearning*.json as the Markdown tables of docs/benchmarks.md."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def pct(x: float) -> str:
    return f"{100 * x:.2f}"


def render(paths: list[Path]) -> str:
    lines = ["| dataset | B | deletion | n | median / worst speedup | median blocks retrained | stitched | "
             "acc exact | median (worst) acc gap, pts | floor acc gap, pts | median (worst) agreement, % | "
             "floor agreement, % | storage MB |", "|" + "---|" * 13]
    canary, sisa = [], []
    for path in paths:
        data = json.loads(path.read_text())
        for s in data["settings"]:
            floor = s["noise_floor"]
            for kind, summ in s["summary"].items():
                rows = [r for r in s["deletions"] if r["kind"] == kind]
                acc_exact = sum(r["acc_exact"] for r in rows) / len(rows)
                lines.append(
                    f"| {s['dataset']} | {s['blocks']} | {kind} | {len(rows)} | "
                    f"{summ['median_speedup']:.1f}x / {summ['worst_speedup']:.1f}x | {summ['median_blocks_retrained']:g} | "
                    f"{summ['stitched_share']:.0%} | {pct(acc_exact)} | {pct(summ['median_acc_gap'])} "
                    f"({pct(summ['worst_acc_gap'])}) | {pct(floor['acc_gap'])} | {pct(summ['median_agreement'])} "
                    f"({pct(summ['worst_agreement'])}) | {pct(floor['agreement'])} | {s['storage_bytes'] / 1e6:.1f} |")
            if s.get("canary"):
                c = s["canary"]
                canary.append(f"| {s['dataset']} | {s['blocks']} | {c['block']} | {pct(c['canary_asr_original'])} | "
                              f"{pct(c['canary_asr_unlearned'])} | {pct(c['canary_asr_exact'])} | {c['outcome']} | "
                              f"{c['blocks_retrained']} | {c['speedup']:.1f}x |")
        for name, r in (data.get("sisa") or {}).items():
            if r:
                sisa.append(f"| {name} | {r['shards']} x {r['slices']} | {pct(r['accuracy'])} | {r['speedup']:.1f}x | "
                            f"{1000 * r['latency_s']:.1f} ms | {1000 * r['latency_single_model_s']:.1f} ms | "
                            f"{r['latency_s'] / r['latency_single_model_s']:.1f}x |")
    out = "\n".join(lines)
    if canary:
        out += ("\n\nCanary user (10 samples with a trigger, relabelled to class 0, in a late block), attack success "
                "in %:\n\n| dataset | B | block | original | DeepObliviate | exact | outcome | blocks retrained | "
                "speedup |\n|---|---|---|---|---|---|---|---|---|\n" + "\n".join(canary))
    if sisa:
        out += ("\n\nSISA on the same data (single-sample deletions; latency of one batched prediction of 512 test "
                "inputs):\n\n| dataset | shards x slices | accuracy % | speedup vs its full training | latency | "
                "one model | latency ratio |\n|---|---|---|---|---|---|---|\n" + "\n".join(sisa))
    return out


if __name__ == "__main__":
    paths = [Path(p) for p in sys.argv[1:]] or sorted(Path("benchmarks/results").glob("unlearning*.json"))
    print(render(paths))
