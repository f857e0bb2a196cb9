"""``obliviate verify``: JSON and table output, exit 0 on pass and 1 on fail, exit 2 on bad input; and the
run API the threat audit uses."""

import json
import shutil

import pytest
import torch

from tests._helpers import run_cli, store_files, tiny_config
from obliviate.api import load_models_for_audit
from obliviate.cli import main
from obliviate.training import Run, open_run, train_run
from obliviate.unlearning import forget


@pytest.fixture(scope="module")
def canary_run(tmp_path_factory):
    """A tiny run whose last block holds a 25-sample canary user the model remembers, then forgotten
    (exact mode); returns the unlearned run and the original model's state."""
    root = tmp_path_factory.mktemp("cli-verify")
    cfg = tiny_config(canary={"block": 5, "count": 25, "trigger_size": 3},
                      training={"min_lr_ratio": 0.3, "epochs_per_block": 4})
    original = train_run(cfg, root / "original")
    shutil.copytree(original.path, root / "run")
    run = open_run(root / "run")
    forget(run, run.canary_ids(), method="exact")
    return run, original.final_model().state_dict()


@pytest.mark.slow
def test_verify_json_then_table_from_the_cache(canary_run, capsys):
    run, _ = canary_run
    proc = run_cli("verify", run.path, "--request", "1", "--oracles", "4", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["verdict"] == "pass" and out["passed"] and out["request"]["request_id"] == 1
    assert out["forgotten"]["verdict"] == "yes" and out["faithful"]["verdict"] == "yes"
    assert out["canary"]["status"] == "pass" and out["canary"]["asr_original"] > 0.3
    assert out["oracles"]["n"] == 4 and out["oracles"]["trained_now"] + out["oracles"]["reused_from_cache"] == 5
    assert 0.0 <= out["roc"]["auc"] <= 1.0 and len(out["per_example"]) == 25

    assert main(["verify", str(run.path), "--oracles", "4"]) == 0  # the latest request by default, from the cache
    out = capsys.readouterr().out
    assert "VERDICT: PASS" in out and "trained now 0, from cache 5" in out
    assert "[forgotten] YES" in out and "[faithful] YES" in out
    assert "AUC threshold" not in out  # no figure a reader cannot read (it once printed an AUC above 1)

    models = load_models_for_audit(run.path)  # the audit's view: the current model and the cached exact one
    assert sorted(models) == ["current", "exact"]
    assert all(torch.equal(a, b) for a, b in zip(models["current"].state_dict().values(),
                                                 models["exact"].state_dict().values()))


def test_a_fake_forget_exits_1(canary_run, monkeypatch, capsys):
    run, original_state = canary_run

    def unchanged(self):  # a "forget" that kept the original model
        model = self.build_model()
        model.load_state_dict(original_state)
        return model.eval()

    monkeypatch.setattr(Run, "final_model", unchanged)
    assert main(["verify", str(run.path), "--request", "1", "--oracles", "4", "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["verdict"] == "fail" and "forgotten" in out["failed"] and out["forgotten"]["verdict"] == "no"
    assert out["canary"]["status"] == "fail" and out["canary"]["p_value"] < 0.01
    assert any(r.startswith("forgotten:") for r in out["reasons"])


@pytest.mark.slow
def test_bad_input_exits_2_and_changes_nothing(canary_run, tiny_run, capsys):
    run, _ = canary_run
    before = store_files(run.path)
    proc = run_cli("verify", run.path, "--request", "9")  # one real process; the others through main()
    assert proc.returncode == 2 and "no request 9; its requests are [1]" in proc.stderr
    assert main(["verify", str(run.path), "--oracles", "1"]) == 2
    err = capsys.readouterr().err
    assert "--oracles" in err and ">= 4 and <= 128" in err
    assert store_files(run.path) == before
    assert main(["verify", str(tiny_run.path), "--request", "1"]) == 2
    err = capsys.readouterr().err
    assert "no forget requests" in err and "obliviate forget" in err
    assert not (tiny_run.path / "verify").exists()
    assert main(["verify", str(tiny_run.path / "nope")]) == 2
    assert "is not an obliviate run" in capsys.readouterr().err


def test_audit_api_without_requests_gives_the_current_model(tiny_run):
    assert sorted(load_models_for_audit(tiny_run.path)) == ["current"]
