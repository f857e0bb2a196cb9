"""``obliviate verify RUN [--request ID] [--oracles N] [--json]``: prove a forget request's data is gone.

Trains (once, cached in ``RUN/verify/``) the exact retrain and ``N`` independent retrains without the
deleted samples, then runs the canary test, the per-example membership test (U-LiRA) and the distance to
the exact retrain against the retraining noise floor. Exit 0 when the verdict is pass, 1 when it is
fail, 2 on bad input (unknown request, a run without requests, ``--oracles`` below 2).
"""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import ConfigError
from ._common import emit_json, format_table, int_in, require_complete, wait_seconds

MAX_ORACLES = 256
MIN_CONCLUSIVE = 4


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("verify", help="verify that a forget request's data is gone (canary, U-LiRA, distance)",
                       description="Prove that a forget request's data is gone: trains (once, cached in "
                                   "RUN/verify/) the exact retrain and N independent retrains without the deleted "
                                   "samples, then runs the canary test, the per-example membership test (U-LiRA) "
                                   "and the distance to the exact retrain against the retraining noise floor. "
                                   "Exit 0 pass, 1 fail, 2 bad input.")
    p.add_argument("run", help="run store folder")
    p.add_argument("--request", type=int, default=None, metavar="ID",
                   help="request id to verify (default: the latest; `obliviate inspect RUN` lists them)")
    p.add_argument("--oracles", type=int_in(2, MAX_ORACLES, "each oracle is a full retrain of the affected "
                                                             "blocks; 16 is the recommended number"),
                   default=16, metavar="N",
                   help="independent retrains beside the exact one (default 16; at least 2, 4 for a conclusive "
                        "membership test); cached and reused")
    p.add_argument("--wait", type=wait_seconds, default=0.0, metavar="SECONDS",
                   help="seconds to wait for another obliviate process using the run (default: fail at once)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(func=run)


def _f(v: Any, digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}g}" if (v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e4)) else f"{v:.{digits}f}"
    return str(v)


def _print_report(d: dict[str, Any]) -> None:
    r, o = d["request"], d["oracles"]
    print(f"request {d['request_id']} of {d['run']}: {r['method']} ({r['outcome']}), {r['n_deleted']} sample(s) "
          f"deleted from blocks {r['d']}..{r['m']}, model verified: {d['model']}")
    print(f"oracles: exact retrain (seed {o['exact_seed']}) + {o['n']} retrains with other data orders; shared "
          f"blocks {o['shared_blocks']}, retrained {o['retrained_blocks']}; trained now {o['trained_now']}, "
          f"from cache {o['reused_from_cache']} ({o['train_time_s']:.1f} s)")
    checks = d["checks"]
    c = checks["canary"]
    print(f"\n[canary] {c['status'].upper()}: {'; '.join(c['reasons'])}")
    if c["status"] != "skipped":
        n = c["numbers"]
        print(format_table(["model", "attack success"],
                           [["original (recorded)", n["asr_original"]], ["verified model", n["asr_unlearned"]],
                            ["exact retrain", n["asr_exact"]],
                            ["oracles mean / max", f"{n['asr_oracles_mean']:.3f} / {n['asr_oracles_max']:.3f}"],
                            ["never trained", n["asr_never_trained"]]]))
        print(f"H0 deleted (rate {_f(n['p_deleted'])}) vs kept ({_f(n['p_kept'])}): p-value {_f(n['p_value'])}, "
              f"deletion confidence {_f(n['deletion_confidence'])}, power {_f(n['power'])}")
    m = checks["membership"]
    n = m["numbers"]
    print(f"\n[membership] {m['status'].upper()}: {'; '.join(m['reasons'])}")
    print(format_table(["U-LiRA", "value"],
                       [["forgotten samples / oracles", f"{n['n_forgotten']} / {n['n_oracles']}"],
                        ["AUC (one-sided; two-sided)", f"{_f(n.get('auc'))}; {_f(n.get('auc_two_sided'))}"],
                        ["AUC oracles vs oracles (mean, sd)",
                         f"{_f(n.get('auc_null_mean'))}, {_f(n.get('auc_null_sd'))}"],
                        ["AUC threshold", _f(n.get("auc_threshold"))],
                        ["TPR at 1% / 0.1% FPR", f"{_f(n.get('tpr_at_1pct_fpr'))} / {_f(n.get('tpr_at_0_1pct_fpr'))}"],
                        ["advantage", _f(n.get("advantage"))],
                        ["smallest Holm-adjusted p", _f(n["min_p_holm"])],
                        ["samples rejected", n["n_rejected"]]]))
    dist = checks["distance"]
    print(f"\n[distance] {dist['status'].upper()}: {'; '.join(dist['reasons'])}")
    rows = []
    for name, s in dist["numbers"]["per_dataset"].items():
        rows.append([name, s["accuracy"]["unlearned"], s["accuracy"]["exact"],
                     f"{s['accuracy']['oracles_min']:.3f}..{s['accuracy']['oracles_max']:.3f}",
                     s["agreement_with_exact"]["unlearned"], s["agreement_with_exact"]["oracles_min"],
                     _f(s["js_divergence_to_exact"]["unlearned"]), _f(s["js_divergence_to_exact"]["oracles_max"])])
    print(format_table(["set", "acc", "acc exact", "acc oracles", "agree", "agree floor", "JS", "JS floor"], rows))
    for note in dist["numbers"]["outside_floor_not_gating"]:
        print(f"note (does not decide the verdict): {note}")
    p = dist["numbers"]["parameter_l2"]
    print(f"parameter L2 to exact {_f(p['unlearned'])} (oracles' largest {_f(p['oracles_max'])})")
    e = d["epsilon"]
    if e.get("available"):
        print(f"\nper-example epsilon (NeurIPS 2023, delta {e['delta']}, {e['replicas']} replicas vs {e['retrained']} "
              f"retrains): mean {e['mean_epsilon']:.3f}, forgetting quality {e['forgetting_quality']:.3f}; "
              f"oracle floor: mean {e['mean_epsilon_floor']:.3f}, quality {e['forgetting_quality_floor']:.3f}")
    else:
        print(f"\nper-example epsilon: not computed ({e.get('reason')})")
    print(f"\nVERDICT: {d['verdict'].upper()} ({d['wall_time_s']:.1f} s)")
    if d["verdict"] != "pass":
        for reason in d["reasons"]:
            print(f"  - {reason}")


def run(args: argparse.Namespace) -> int:
    from ..verify.verdict import verify_request

    if args.oracles < 2:
        raise ConfigError(f"Expected `--oracles` to be an int >= 2 (16 recommended; 4 or more for a conclusive "
                          f"membership test), but got {args.oracles}")
    if args.oracles < MIN_CONCLUSIVE:
        raise ConfigError(f"Expected `--oracles` to be >= {MIN_CONCLUSIVE}, but got {args.oracles}: with fewer oracles "
                          f"the membership test cannot be conclusive, so the verdict would always be FAIL "
                          f"(16 recommended)")
    require_complete(args.run, "verify", args.wait)
    report = verify_request(args.run, args.request, oracles=args.oracles, wait=args.wait)
    out = report.to_dict()
    if args.json:
        emit_json(out)
    else:
        _print_report(out)
    return 0 if report.passed else 1
