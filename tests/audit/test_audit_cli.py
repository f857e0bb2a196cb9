"""The `obliviate audit` command: tables, JSON, Markdown, and exit 2 on bad input."""

from __future__ import annotations

import json
import sys

import pytest
from safetensors.torch import save_file

from obliviate.cli import main
from obliviate.models import build_model


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, digits_cnn):
    path = tmp_path_factory.mktemp("ckpt") / "cnn.safetensors"
    save_file({k: v.contiguous() for k, v in digits_cnn.state_dict().items()}, str(path))
    return path


def test_json_output(checkpoint, capsys):
    rc = main(["audit", "--model", "small_cnn", "--checkpoint", str(checkpoint), "--attacks", "fgsm",
               "pgd:steps=3", "--max-samples", "32", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["attack"] for r in out["results"]] == ["fgsm", "pgd"]
    assert out["results"][1]["threat"]["budget"]["steps"] == 3


def test_text_and_markdown_tables(checkpoint, capsys):
    args = ["audit", "--model", "small_cnn", "--checkpoint", str(checkpoint), "--attacks", "fgsm",
            "equation_solving", "--max-samples", "32"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "Evasion (adversarial examples)" in text and "Model extraction" in text
    assert main([*args, "--markdown"]) == 0
    md = capsys.readouterr().out
    assert "### Evasion" in md and "| attack | model |" in md


def _err(capsys, argv):
    rc = main(argv)
    return rc, capsys.readouterr().err


def test_unknown_attack_exit_2(checkpoint, capsys):
    rc, err = _err(capsys, ["audit", "--model", "small_cnn", "--checkpoint", str(checkpoint),
                            "--attacks", "fgsmm"])
    assert rc == 2 and "unknown attack 'fgsmm'; choose one of:" in err


def test_epsilon_out_of_range_exit_2(checkpoint, capsys):
    rc, err = _err(capsys, ["audit", "--model", "small_cnn", "--checkpoint", str(checkpoint),
                            "--attacks", "fgsm", "--eps", "3"])
    assert rc == 2 and "Expected argument `eps` to be a float in (0, 1], but got 3.0" in err
    rc, err = _err(capsys, ["audit", "--model", "small_cnn", "--checkpoint", str(checkpoint),
                            "--attacks", "pgd:eps=-1"])
    assert rc == 2 and "`eps`" in err


def test_model_that_does_not_fit_exit_2(tmp_path, capsys):
    five = build_model("small_cnn", (1, 8, 8), 5, seed=0)
    path = tmp_path / "five.safetensors"
    save_file(five.state_dict(), str(path))
    rc, err = _err(capsys, ["audit", "--model", "small_cnn", "--checkpoint", str(path), "--attacks", "fgsm"])
    assert rc == 2 and "does not fit model 'small_cnn'" in err


def test_missing_checkpoint_and_bad_forms_exit_2(tmp_path, capsys):
    rc, err = _err(capsys, ["audit", "--model", "small_cnn", "--checkpoint", str(tmp_path / "no.safetensors")])
    assert rc == 2 and "does not exist" in err
    rc, err = _err(capsys, ["audit"])
    assert rc == 2 and "give a stored RUN" in err
    rc, err = _err(capsys, ["audit", "--model", "nope", "--checkpoint", str(tmp_path / "x")])
    assert rc == 2


def test_run_form_needs_the_run_api(tmp_path, capsys, monkeypatch):
    from obliviate.training import RunConfig, train_run

    rc, err = _err(capsys, ["audit", str(tmp_path), "--dataset", "digits", "--attacks", "fgsm"])
    assert rc == 2 and "is not an obliviate run" in err  # a folder that is no run is refused first
    run = train_run(RunConfig.from_dict({"data": {"name": "digits"}, "training": {"blocks": 2, "epochs_per_block": 1}}),
                    tmp_path / "run")
    monkeypatch.setitem(sys.modules, "obliviate.api", None)  # as if the run API were not installed
    rc, err = _err(capsys, ["audit", str(run.path), "--dataset", "digits", "--attacks", "fgsm"])
    assert rc == 2 and "auditing a run needs the run API" in err


def test_run_form_audits_the_runs_models_side_by_side(digits_cnn, digits_softmax, capsys, monkeypatch):
    import obliviate.api

    seen = []

    def fake_loader(path):
        seen.append(path)
        return {"current": digits_cnn, "exact": digits_softmax}

    monkeypatch.setattr(obliviate.api, "load_models_for_audit", fake_loader, raising=False)
    monkeypatch.setattr("obliviate.cli._common.require_complete", lambda *a, **k: None)
    rc = main(["audit", "some/run", "--dataset", "digits", "--attacks", "fgsm", "--max-samples", "16", "--json"])
    assert rc == 0 and seen == ["some/run"]
    out = json.loads(capsys.readouterr().out)
    assert [(r["attack"], r["model"]) for r in out["results"]] == [("fgsm", "current"), ("fgsm", "exact")]


def test_run_and_checkpoint_together_exit_2(checkpoint, capsys):
    rc, err = _err(capsys, ["audit", "some/run", "--model", "small_cnn", "--checkpoint", str(checkpoint),
                            "--dataset", "digits", "--attacks", "fgsm"])
    assert rc == 2 and "not both" in err
