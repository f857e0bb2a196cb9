"""Bad input gets a clear error in one voice (and exit code 2 on the command line)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from obliviate.audit import FGSM, PGD, QueryBudgetExceeded, QueryFunction, build_attack, run_audit
from obliviate.errors import ConfigError, UnknownNameError, UsageError


def test_unknown_attack_lists_the_registry():
    with pytest.raises(UnknownNameError, match="choose one of: .*fgsm.*badnets"):
        build_attack("fgsmm")


def test_unknown_setting_lists_the_allowed():
    with pytest.raises(ConfigError, match="does not take setting.*it takes: .*eps"):
        build_attack("fgsm", epsilon=0.1)


@pytest.mark.parametrize("eps", [0.0, -0.1, 1.5, float("nan"), "big"])
def test_linf_epsilon_out_of_range(eps):
    with pytest.raises(ConfigError, match=r"Expected argument `eps` to be a float in \(0, 1\]"):
        FGSM(eps=eps)


def test_settings_validated_in_constructor():
    with pytest.raises(ConfigError, match="`steps`"):
        PGD(steps=0)
    with pytest.raises(ConfigError, match="`output`"):
        build_attack("knockoff", output="probabilities")
    with pytest.raises(ConfigError, match="needs scores"):
        build_attack("equation_solving", output="labels")


def test_model_output_shape_must_fit(digits):
    wrong = nn.Sequential(nn.Flatten(), nn.Linear(64, 5))
    wrong.train()
    with pytest.raises(ConfigError, match=r"model output shape \(2, 5\) does not fit .* 10 classes"):
        FGSM()(wrong, digits)
    assert wrong.training  # mode restored after the error


def test_model_must_take_the_inputs(digits):
    with pytest.raises(ConfigError, match="cannot take inputs"):
        FGSM()(nn.Linear(10, 10), digits)


def test_not_a_model(digits):
    with pytest.raises(ConfigError, match="torch.nn.Module"):
        FGSM()("model", digits)


def test_inputs_out_of_bounds(digits):
    bad = digits.test.with_data(digits.test.x * 16, digits.test.y)
    with pytest.raises(ConfigError, match=r"must lie in \[0, 1\]"):
        FGSM()(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), bad)


def test_query_budget_enforced():
    q = QueryFunction(nn.Linear(3, 2), budget=4)
    q(torch.zeros(4, 3))
    with pytest.raises(QueryBudgetExceeded, match="budget of 4 exceeded"):
        q(torch.zeros(1, 3))
    assert issubclass(QueryBudgetExceeded, UsageError)


def test_query_output_modes():
    torch.manual_seed(0)
    lin = nn.Linear(3, 4)
    x = torch.rand(5, 3)
    scores = QueryFunction(lin, output="scores")(x)
    assert torch.allclose(scores.sum(1), torch.ones(5))
    top = QueryFunction(lin, output="topk", k=2)(x)
    assert ((top > 0).sum(1) == 2).all()
    rounded = QueryFunction(lin, output="rounded", decimals=1)(x)
    assert torch.allclose(rounded * 10, (rounded * 10).round())
    assert QueryFunction(lin, output="labels")(x).dtype == torch.int64


def test_run_audit_rejects_no_models(digits):
    with pytest.raises(ConfigError, match="at least one model"):
        run_audit(["fgsm"], {}, digits)
