"""The figures the audit must show (issue 5, item 4). Each test prints its figure (pytest -s shows it)."""

from __future__ import annotations

import math

import pytest
import torch

from obliviate.audit import BadNets, EquationSolving, KnockoffNets, MIFace
from obliviate.audit.base import AuditData
from obliviate.data import load_dataset


def test_equation_solving_recovers_softmax_regression(digits, digits_softmax):
    r = EquationSolving()(digits_softmax, digits)
    d = math.prod(digits.input_shape)
    print(f"equation solving (softmax, d={d}): queries={r['queries']} rel_error={r['param_rel_error']:.2e} "
          f"fidelity={r['fidelity']:.4f}")
    assert r["queries"] == d + 1  # the minimum: (K-1)(d+1) unknowns, K-1 equations per query
    assert r["param_rel_error"] <= 1e-4
    assert r["fidelity"] == 1.0


def test_equation_solving_recovers_logistic_regression(digits):
    keep = digits.train.y < 2
    train = digits.train.take(keep.nonzero().squeeze(1))
    train = train.__class__(train.ids, train.x, train.y, 2, "digits-0-1")
    keep_t = (digits.test.y < 2).nonzero().squeeze(1)
    test = digits.test.take(keep_t)
    test = test.__class__(test.ids, test.x, test.y, 2, "digits-0-1-test")
    victim = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 1))  # one logit: logistic
    opt = torch.optim.Adam(victim.parameters(), lr=1e-2)
    for _ in range(100):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(victim(train.x).squeeze(1), train.y.float())
        opt.zero_grad()
        loss.backward()
        opt.step()
    r = EquationSolving()(victim, AuditData(train, test))
    print(f"equation solving (logistic): queries={r['queries']} rel_error={r['param_rel_error']:.2e}")
    assert r["queries"] == 65 and r["param_rel_error"] <= 1e-4 and r["fidelity"] == 1.0


@pytest.mark.slow
def test_knockoff_fidelity(digits, digits_cnn):
    pool = load_dataset("digits-60k", n_train=5000, n_test=10).train  # the attacker's own, unlabelled-use data
    data = AuditData(digits.train, digits.test, pool)
    r = KnockoffNets(strategy="random", queries=1000, epochs=20)(digits_cnn, data)
    a = KnockoffNets(strategy="adaptive", queries=1000, epochs=20)(digits_cnn, data)
    print(f"knockoff (budget 1000 score queries): random fidelity={r['fidelity']:.4f} "
          f"copy_acc={r['copy_accuracy']:.4f}; adaptive fidelity={a['fidelity']:.4f} "
          f"copy_acc={a['copy_accuracy']:.4f}; victim acc={r['victim_accuracy']:.4f}")
    assert r["queries"] == 1000 and r["fidelity"] >= 0.8
    assert a["queries"] == 1000 and a["fidelity"] >= 0.8


def test_badnets_five_percent(digits, digits_cnn):
    r = BadNets(poison_rate=0.05, epochs=15, batch_size=64, lr=1e-3)(digits_cnn, digits)
    print(f"badnets 5%: poison_rate={r['poison_rate']:.4f} success={r['attack_success']:.4f} "
          f"clean_drop={r['clean_accuracy_drop']:.4f} robust={r['robust_accuracy']:.4f}")
    assert abs(r["poison_rate"] - 0.05) < 0.001
    assert r["attack_success"] >= 0.9
    assert r["clean_accuracy_drop"] <= 0.02


@pytest.mark.slow
def test_mi_face_reconstructions_near_own_class_mean(digits, digits_cnn):
    r = MIFace()(digits_cnn, digits)
    print(f"mi-face: class_mean_hits={r['class_mean_hits']}/10 evaluator_acc={r['evaluator_accuracy']:.2f} "
          f"mse={r['mse']:.4f} ssim={r['ssim']:.4f} ssim_to_mean={r['ssim_to_mean']:.4f}")
    assert r["class_mean_hits"] >= 8
