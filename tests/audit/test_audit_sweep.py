"""Epsilon sweeps: parsing, curves, the worst case per input, per-sample CSV and JSON, CLI errors."""

from __future__ import annotations

import csv
import json

import pytest
from safetensors.torch import save_file

from obliviate.audit import APGD, FGSM, PGD, PGDL2
from obliviate.audit.base import AuditData
from obliviate.audit.sweep import PER_SAMPLE_FIELDS, parse_eps, run_sweep
from obliviate.cli import main
from obliviate.errors import ConfigError


@pytest.mark.parametrize("spec,expected", [
    ("0.05:0.3:6", [0.05, 0.1, 0.15, 0.2, 0.25, 0.3]), ("0.1", [0.1]), (["0.2", "0.1"], [0.1, 0.2]),
    ("0.1,0.2,0.1", [0.1, 0.2]), (["0.1:0.2:2", "0.05"], [0.05, 0.1, 0.2]),
])
def test_parse_eps(spec, expected):
    assert parse_eps(spec) == pytest.approx(expected)


@pytest.mark.parametrize("spec", ["0.3:0.05:3", "0.1:0.2:0", "a:b:c", "x", "0", "-0.1", "nan", ","])
def test_parse_eps_refuses(spec):
    with pytest.raises(ConfigError):
        parse_eps(spec)


@pytest.fixture(scope="module")
def sweep(digits, digits_cnn):
    attacks = [FGSM(max_samples=40), PGD(steps=5, max_samples=40), APGD(steps=10, max_samples=40),
               PGDL2(steps=5, max_samples=40)]
    return run_sweep(attacks, {"cnn": digits_cnn}, AuditData.coerce(digits), [0.05, 0.1, 0.2])


def test_curves_and_worst_case(sweep):
    assert [c["attack"] for c in sweep.curves] == ["fgsm", "pgd", "apgd", "pgd_l2"]
    linf = [c for c in sweep.curves if c["norm"] == "linf"]
    (worst,) = [w for w in sweep.worst_case if w["norm"] == "linf"]
    assert worst["attacks"] == ["apgd", "fgsm", "pgd"]
    for i in range(3):
        assert worst["robust_accuracy"][i] <= min(c["robust_accuracy"][i] for c in linf)
    # the per-input records agree with the worst-case curve
    per = [p for p in sweep.per_input if p["norm"] == "linf"]
    for i, e in enumerate(worst["eps"]):
        robust = sum(1 for p in per if p["clean_correct"] and (p["min_eps_fooled"] is None or p["min_eps_fooled"] > e))
        assert robust / len(per) == pytest.approx(worst["robust_accuracy"][i])
    # the l2 attack is its own group (its eps are L2 radii)
    assert [w["norm"] for w in sweep.worst_case] == ["linf", "l2"]


def test_per_sample_export(sweep, tmp_path):
    rows = sweep.write_per_sample(tmp_path / "s.csv")
    with open(rows) as f:
        got = list(csv.DictReader(f))
    assert len(got) == 4 * 3 * 40 and list(got[0]) == list(PER_SAMPLE_FIELDS)
    js = json.loads(sweep.write_per_sample(tmp_path / "s.json").read_text())
    assert len(js) == len(got) and js[0]["id"] == int(got[0]["id"])
    for r in js:
        if r["fooled"] and r["norm"] == "linf":
            assert r["linf"] <= r["eps"] + 1e-5
    assert not list(tmp_path.glob("*.tmp"))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, digits_cnn):
    path = tmp_path_factory.mktemp("ckpt") / "cnn.safetensors"
    save_file({k: v.contiguous() for k, v in digits_cnn.state_dict().items()}, str(path))
    return path


def test_cli_sweep_text(checkpoint, capsys, tmp_path):
    out = tmp_path / "a.json"
    rc = main(["audit", "--model", "small_cnn", "--checkpoint", str(checkpoint), "--attacks", "fgsm",
               "pgd:steps=3", "--eps", "0.05", "0.2", "--max-samples", "20", "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "Robust accuracy against epsilon (linf), model small_cnn" in text and "worst case" in text
    payload = json.loads(out.read_text())
    assert payload["sweep"]["eps"] == [0.05, 0.2] and len(payload["results"]) == 4


@pytest.mark.parametrize("extra,needle", [
    (["--eps", "0.3:0.05:3"], "START <= STOP"),
    (["--eps", "zero"], "cannot read epsilon"),
    (["--queries", "0"], "`--queries`"),
    (["--per-sample", "/no/such/dir/x.csv"], "does not exist"),
    (["--bounds", "1", "0"], "`bounds`"),
    (["--eps", "0.5:2:4"], "Expected argument `eps` to be a float in (0, 1]"),
])
def test_cli_sweep_bad_input_exit_2(checkpoint, capsys, extra, needle):
    rc = main(["audit", "--model", "small_cnn", "--checkpoint", str(checkpoint), "--attacks", "fgsm", *extra])
    err = capsys.readouterr().err
    assert rc == 2 and needle in err and "Traceback" not in err
