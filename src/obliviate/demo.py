"""The main job on the embedded default, end to end (``obliviate demo``).

Train on digits with recorded blocks, with a backdoor canary planted in one simulated user's samples;
forget that user with DeepObliviate and, beside it, with the exact mode and a retrain from scratch
(each on its own copy of the run, timed in this process); compare speed, accuracy, agreement with the
exact retrain, and canary attack success.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from .training import RunConfig, open_run, predict_logits, train_run
from .training.run import Run
from .unlearning import forget
from .verify.settings import ORACLES_DEFAULT


def demo_config() -> RunConfig:
    """The packaged demo configuration (``obliviate/configs/demo.toml``)."""
    with resources.as_file(resources.files("obliviate") / "configs" / "demo.toml") as path:
        return RunConfig.from_toml(path)


def canary_asr(run: Run, model: torch.nn.Module) -> float:
    """Share of triggered test inputs (true label not the target) the model sends to the canary target."""
    hits, trials = run.canary_success(model)
    return hits / trials


def run_demo(workdir: str | Path | None = None, *, config: RunConfig | None = None,
             oracles: int = ORACLES_DEFAULT) -> dict[str, Any]:
    """Run the demo; returns the comparison as a dict (the ``--json`` output).

    The canary user is deleted three ways, each on its own copy of the run and timed as the caller
    of ``forget()`` waits: DeepObliviate (the default), the exact mode, a retrain from scratch. Then
    the stitched model is verified, and so is a fake (the original submitted as the unlearned
    model), against the same oracles (replays of blocks d..B without the user under other seeds).
    """
    from .training.chain import state_after
    from .verify import VerifySettings, train_oracle_set, verify_candidate

    config = config or demo_config()
    own_tmp = workdir is None
    root = Path(tempfile.mkdtemp(prefix="obliviate-demo-")) if workdir is None else Path(workdir)
    try:
        t0 = time.perf_counter()
        original = train_run(config, root / "original")
        train_s = time.perf_counter() - t0
        user = original.canary_ids()
        orig_model = original.final_model()
        orig_state = state_after(original.store, original.num_blocks)
        out: dict[str, Any] = {"blocks_total": original.num_blocks, "canary_block": config.canary.block,
                               "canary_samples": len(user), "train_time_s": train_s}
        results, models, runs = {}, {}, {}
        for method in ("deepobliviate", "exact", "retrain"):
            copy = root / method
            shutil.copytree(original.path, copy)
            runs[method] = run = open_run(copy)
            t1 = time.perf_counter()
            results[method] = forget(run, user, method=method)
            results[method].wall_time_s = time.perf_counter() - t1  # as the caller waits
            models[method] = run.final_model()
        do, ex, rt = results["deepobliviate"], results["exact"], results["retrain"]
        pred = {k: predict_logits(m, original.test.x).argmax(1) for k, m in models.items()}
        acc = {k: float((p == original.test.y).float().mean()) for k, p in pred.items()}
        t2 = time.perf_counter()
        settings = VerifySettings(oracles=oracles)
        oracle_set = train_oracle_set(runs["deepobliviate"], user, settings)
        assert do.model_state is not None, "forget() returns the state it produced"
        stitched = verify_candidate(runs["deepobliviate"], user, do.model_state, oracle_set=oracle_set,
                                    oracles=oracles, label="DeepObliviate")
        fake = verify_candidate(runs["deepobliviate"], user, orig_state, oracle_set=oracle_set, oracles=oracles,
                                label="fake: the original submitted as unlearned")
        verify_s = time.perf_counter() - t2
        out.update({
            "outcome": do.outcome, "summary": do.summary, "d": do.d, "t": do.t,
            "blocks_retrained": do.blocks_retrained,
            "speedup_vs_retrain": rt.wall_time_s / do.wall_time_s,
            "speedup_vs_exact": ex.wall_time_s / do.wall_time_s,
            "speedup": rt.wall_time_s / do.wall_time_s,
            "time_unlearn_s": do.wall_time_s, "time_exact_s": ex.wall_time_s, "time_retrain_s": rt.wall_time_s,
            "acc_original": original.evaluate(orig_model)[0],
            "acc_unlearned": acc["deepobliviate"], "acc_exact": acc["exact"], "acc_retrain": acc["retrain"],
            "agreement_unlearned_exact": float((pred["deepobliviate"] == pred["exact"]).float().mean()),
            "agreement_original_exact": float((predict_logits(orig_model, original.test.x).argmax(1)
                                               == pred["exact"]).float().mean()),
            "canary_asr_original": canary_asr(original, orig_model),
            "canary_asr_unlearned": canary_asr(original, models["deepobliviate"]),
            "canary_asr_exact": canary_asr(original, models["exact"]),
            "memorised": do.memorised, "guard": do.guard, "plan": do.plan,
            "verify_stitched": _verdicts(stitched), "verify_fake": _verdicts(fake), "verify_time_s": verify_s,
        })
        out["exact_equals_retrain"] = all(torch.equal(a, b) for a, b in zip(
            models["exact"].state_dict().values(), models["retrain"].state_dict().values()))
        out["demo_time_s"] = time.perf_counter() - t0
        return out
    finally:
        if own_tmp:
            shutil.rmtree(root, ignore_errors=True)


def _verdicts(report: Any) -> dict[str, Any]:
    return {"verdict": report.verdict, "passed": report.passed, "failed": report.failed,
            "forgotten": report.forgotten.get("verdict"), "faithful": report.faithful.get("verdict"),
            "faithful_p_value": report.faithful.get("p_value"), "reasons": report.reasons}
