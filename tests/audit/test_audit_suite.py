"""The suite: the same attacks on several models side by side, tables per family, Markdown, JSON."""

from __future__ import annotations

import json

import pytest
import torch

from obliviate.audit import AuditReport, FGSM, parse_attack_spec, run_audit
from obliviate.errors import ConfigError, UnknownNameError


def test_side_by_side(digits, digits_cnn, digits_softmax):
    models = {"original": digits_cnn, "unlearned": digits_softmax, "retrained": digits_cnn}
    report = run_audit(["fgsm:max_samples=32", FGSM(eps=0.2, max_samples=32), "equation_solving"], models, digits)
    assert [(r.attack, r.model) for r in report.results][:3] == [
        ("fgsm", "original"), ("fgsm", "unlearned"), ("fgsm", "retrained")]
    assert report.families() == ["evasion", "extraction"]
    headers, rows = report.table("evasion")
    assert headers[:5] == ["attack", "model", "knowledge", "goal", "budget"] and len(rows) == 6
    md = report.to_markdown()
    assert md.count("### ") == 2 and "| fgsm | unlearned |" in md
    json.dumps(report.to_dict())
    assert "Evasion" in report.to_text()


def test_keep_going_records_errors(digits, digits_cnn):
    bad = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    report = run_audit(["fgsm:max_samples=8"], {"good": digits_cnn, "bad": bad}, digits, keep_going=True)
    assert [r.model for r in report.results] == ["good"]
    assert report.errors[0]["model"] == "bad" and "does not fit" in report.errors[0]["error"]
    assert "error: fgsm on bad" in report.to_text()
    with pytest.raises(ConfigError):
        run_audit(["fgsm:max_samples=8"], {"bad": bad}, digits)


def test_spec_parsing_errors():
    with pytest.raises(UnknownNameError):
        parse_attack_spec("nope:eps=0.1")
    with pytest.raises(ConfigError, match="NAME:key=value"):
        parse_attack_spec("pgd:eps")
    assert parse_attack_spec("knockoff:strategy=adaptive").settings()["strategy"] == "adaptive"


def test_empty_report_renders():
    assert AuditReport().to_markdown() == ""
