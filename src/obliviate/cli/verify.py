"""``obliviate verify RUN [--request ID] [--oracles N] [--json]``: was a forget request's data really forgotten,
and is the model still a faithful one?

Trains (once, cached in ``RUN/verify/``) the exact replay and ``N`` replays of blocks ``d..B`` without the
deleted samples under other data-order seeds, then gives two verdicts, each with its power: *forgotten*
(is the deleted data's influence detectable, in either direction; canaries) and *faithful* (is the model a
plausible member of the cloud of retrained models; a calibrated test with a p-value). Exit 0 when forgotten
and fidelity is not rejected, 1 when either verdict fails (the output says which), 3 when there was nothing
measurable to forget (the original itself is indistinguishable from the oracles), 2 on bad input.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..verify.settings import ORACLES_DEFAULT, ORACLES_MAX, ORACLES_MIN
from ._common import emit_json, format_table, int_in, require_complete, wait_seconds


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("verify", help="verify that a forget request's data is gone and the model still faithful",
                       description=__doc__.split("\n\n")[0].replace("``", "") if __doc__ else None)
    p.add_argument("run", help="run store folder")
    p.add_argument("--request", type=int, default=None, metavar="ID",
                   help="request id to verify (default: the latest; `obliviate inspect RUN` lists them)")
    p.add_argument("--oracles", type=int_in(ORACLES_MIN, ORACLES_MAX, f"fewer than {ORACLES_MIN} oracles cannot show "
                                              f"anything (the verdict would always be FAIL or inconclusive), more "
                                              f"than {ORACLES_MAX} cost without sharpening the test"),
                   default=ORACLES_DEFAULT, metavar="N",
                   help=f"replays without the deleted samples under other data orders (default {ORACLES_DEFAULT}, "
                        f"{ORACLES_MIN}..{ORACLES_MAX}; 16 gives a sharper test); cached and reused")
    p.add_argument("--alpha", type=float, default=0.01, help="level of the forgotten test (default 0.01)")
    p.add_argument("--fidelity-alpha", type=float, default=0.01, help="level of the faithful test (default 0.01)")
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
    print(f"request {r.get('request_id')} of {d['run']}: {r.get('method')} ({r.get('outcome')}), {len(d['ids'])} "
          f"sample(s) deleted, model verified: {d['model']}")
    print(f"oracles: {o['n']} replays of blocks {o['retrained_blocks']} without U "
          f"(shared blocks {o['shared_blocks']}); "
          f"trained now {o.get('trained_now', '-')}, from cache {o.get('reused_from_cache', '-')} "
          f"({o['train_time_s']:.1f} s)")
    f = d["forgotten"]
    print(f"\n[forgotten] {f['verdict'].upper()}: {'; '.join(f['reasons'])}")
    print(format_table(["", "value"], [
        ["p-value (candidate vs oracles, two-sided)", _f(f["p_value"])],
        ["power: p-value of the original", _f(f["power_p_value"])],
        ["mean loss on U: candidate / oracles", f"{_f(f['loss_u']['candidate'])} / {_f(f['loss_u']['oracles'])}"],
        ["examples member-like / over-forgotten", f"{f['n_member']} / {f['n_over_forgotten']} of {len(d['ids'])}"],
        ["ROC AUC, U vs held-out (0.5: typical)", _f(d["roc"]["auc"])],
        ["canary", f["canary_status"]]]))
    c = d.get("canary") or {}
    if c.get("status") not in (None, "skipped"):
        print(f"canary attack success: original {_f(c['asr_original'])}, candidate {_f(c['asr_candidate'])}, oracles "
              f"max {_f(c['asr_oracles_max'])}; p-value {_f(c['p_value'])}, power {_f(c['power'])}")
    fa = d["faithful"]
    print(f"\n[faithful] {fa['verdict'].upper()}: {'; '.join(fa['reasons'])}")
    cloud = d["oracle_cloud"]
    accs = [x["accuracy"] for x in cloud["oracles"]]
    agrs = [x["agreement"] for x in cloud["oracles"]]
    print(format_table(["test set", "candidate", "oracles min..max", "p-value"], [
        ["accuracy", _f(cloud["candidate"]["accuracy"], 4), f"{min(accs):.4f}..{max(accs):.4f}", _f(fa["p_accuracy"])],
        ["agreement with oracles", _f(cloud["candidate"]["agreement"], 4), f"{min(agrs):.4f}..{max(agrs):.4f}",
         _f(fa["p_agreement"])]]))
    print(f"\nVERDICT: {d['verdict'].upper()} ({d['wall_time_s']:.1f} s)"
          + (f": failed {', '.join(d['failed'])}" if d["failed"] else ""))


def run(args: argparse.Namespace) -> int:
    from ..verify.request import verify_request

    require_complete(args.run, "verify", args.wait)
    report = verify_request(args.run, args.request, oracles=args.oracles, alpha=args.alpha,
                            fidelity_alpha=args.fidelity_alpha, wait=args.wait)
    out = report.to_dict()
    if args.json:
        emit_json(out)
    else:
        _print_report(out)
    return report.exit_code
