"""Table-driven tests over every registered attack: adding an attack adds one line to CASES."""

from __future__ import annotations

import json
import math

import pytest
import torch

from obliviate.audit import AttackResult, ThreatModel, attack_names, build_attack, family_metrics
from obliviate.audit.base import KNOWLEDGE, GOALS

# one line per registered attack: fast settings for digits (8x8) and a small CNN
CASES: dict[str, dict] = {
    "fgsm": dict(eps=0.1, max_samples=64),
    "bim": dict(eps=0.1, steps=5, max_samples=64),
    "pgd": dict(eps=0.1, steps=5, max_samples=64),
    "pgd_l2": dict(eps=1.0, steps=5, max_samples=64),
    "apgd": dict(eps=0.1, steps=5, max_samples=64),
    "apgd_l2": dict(eps=1.0, steps=5, max_samples=64),
    "cw": dict(steps=20, max_samples=32),
    "deepfool": dict(steps=10, max_samples=32),
    "jsma": dict(gamma=0.1, max_samples=16),
    "square": dict(eps=0.15, queries=100, max_samples=32),
    "hopskipjump": dict(steps=3, init_evals=20, max_evals=50, max_samples=8),
    "equation_solving": dict(),
    "jacobian": dict(seed_size=50, queries=200, epochs=3),
    "knockoff": dict(queries=150, epochs=3),
    "mi_face": dict(steps=30, evaluator_epochs=3),
    "membership_loss": dict(max_samples=100),
    "label_flip": dict(poison_rate=0.1, epochs=2),
    "badnets": dict(poison_rate=0.05, epochs=2),
    "blended": dict(poison_rate=0.05, epochs=2),
    "feature_collision": dict(n_targets=2, poisons_per_target=3, steps=20, epochs=2),
}

def test_every_registered_attack_has_a_case():
    assert sorted(CASES) == sorted(attack_names())


def _attack(name):
    return build_attack(name, **CASES[name])


@pytest.mark.parametrize("name", sorted(CASES))
def test_attack_result_shape_and_invariants(name, digits, digits_cnn):
    attack = _attack(name)
    model = digits_cnn
    model.train()  # the attack must run in eval mode and give the caller's mode back
    flags = [p.requires_grad for p in model.parameters()]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    try:
        result = attack(model, digits)
    finally:
        was_training = model.training
        model.eval()
    assert was_training, "the model's train mode was not restored"
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), "the model was changed"

    assert isinstance(result, AttackResult)
    assert result.attack == name and result.family == attack.family
    assert isinstance(result.threat, ThreatModel)
    assert result.threat.knowledge in KNOWLEDGE and result.threat.goal in GOALS
    assert result.metrics["wall_time_s"] > 0
    pivots = family_metrics(result.family)
    present = [m for m in pivots if m in result.metrics]
    if result.family == "inversion":  # reconstruction metrics or membership metrics
        assert present, f"{name} reports none of {pivots}"
    else:
        assert set(pivots) <= set(result.metrics), f"{name} lacks {set(pivots) - set(result.metrics)}"
    json.dumps(result.to_dict())  # the result serialises


@pytest.mark.parametrize("name", [n for n in sorted(CASES) if build_attack(n).family == "evasion"])
def test_evasion_respects_budget_and_bounds(name, digits, digits_cnn):
    attack = build_attack(name, **CASES[name])
    r = attack(digits_cnn, digits)
    x, x_adv = r.artifacts["x"], r.artifacts["x_adv"]
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    delta = (x_adv - x).flatten(1)
    eps = attack.eps
    if eps is not None and attack.norm == "linf":
        assert float(delta.abs().max()) <= eps + 1e-6
    if eps is not None and attack.norm == "l2":
        assert float(delta.norm(dim=1).max()) <= eps + 1e-5
    if name == "jsma":
        assert float((delta.abs() > 1e-6).sum(1).max()) <= math.floor(64 * attack.gamma / 2) * 2
    assert 0.0 <= r.metrics["success_rate"] <= 1.0
    assert r.metrics["forwards"] > 0


@pytest.mark.parametrize("name", ["fgsm", "pgd", "square", "knockoff", "badnets"])
def test_same_seed_same_result(name, digits, digits_cnn):
    a = build_attack(name, **CASES[name])
    r1, r2 = a(digits_cnn, digits), a(digits_cnn, digits)
    drop = {"wall_time_s"}
    assert {k: v for k, v in r1.metrics.items() if k not in drop} == \
           {k: v for k, v in r2.metrics.items() if k not in drop}


def test_global_random_state_untouched(digits, digits_cnn):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_attack("pgd", **CASES["pgd"])(digits_cnn, digits)
    assert torch.equal(torch.rand(3), expected)
