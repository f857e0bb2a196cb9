"""The one registry type behind models, datasets, attacks, families, stopping rules and aggregations:
double registration raises, ``force=True`` replaces, an unknown name lists the registered ones."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from obliviate._registry import Registry
from obliviate.audit.base import Attack
from obliviate.audit.registry import (
    _ATTACKS,
    _FAMILIES,
    Family,
    attack_class,
    get_family,
    register_attack,
    register_family,
)
from obliviate.data import load_dataset, register_dataset
from obliviate.data.registry import _LOADERS
from obliviate.errors import ConfigError, UnknownNameError
from obliviate.models import _MODELS, build_model, register_model
from obliviate.unlearning import register_aggregation, register_stopping_rule
from obliviate.unlearning.sisa.prediction import _AGGREGATIONS, aggregate
from obliviate.unlearning.stopping import (
    _RULES,
    Decision,
    Immediate,
    make_stopping_rule,
)
from obliviate.verify.membership import ATTACK_MODELS, ShadowModelAttack


def test_registry_refuses_a_silent_overwrite_and_force_replaces():
    reg: Registry[int] = Registry("widget")
    reg.register("a", 1)
    with pytest.raises(ConfigError, match="widget 'a' is already registered; pass force=True"):
        reg.register("a", 2)
    assert reg.get("a") == 1  # the refused registration changed nothing
    reg.register("a", 3, force=True)
    assert reg.get("a") == 3


def test_unknown_name_lists_the_choices_derived_from_the_registry():
    reg: Registry[int] = Registry("widget")
    for name in ("c", "a", "b"):
        reg.register(name, 0)
    with pytest.raises(UnknownNameError, match=r"^unknown widget 'z'; choose one of: a, b, c$"):
        reg.get("z")
    ordered: Registry[int] = Registry("step", ordered=True)
    for name in ("c", "a"):
        ordered.register(name, 0)
    assert ordered.names() == ["c", "a"]
    with pytest.raises(UnknownNameError, match="choose one of: c, a$"):
        ordered.get("b")
    with pytest.raises(ConfigError, match="non-empty string"):
        reg.register("", 1)


@pytest.fixture
def restore():
    """Put every registry back as it was after the test."""
    regs = [_MODELS, _LOADERS, _ATTACKS, _FAMILIES, _RULES, _AGGREGATIONS, ATTACK_MODELS]
    saved = [dict(r._items) for r in regs]
    yield
    for r, items in zip(regs, saved):
        r._items.clear()
        r._items.update(items)


def _tiny(input_shape, num_classes):
    return torch.nn.Linear(int(torch.tensor(input_shape).prod()), num_classes)


def test_register_model_refuses_a_builtin_name_unless_forced(restore):
    with pytest.raises(ConfigError, match="model 'mlp' is already registered"):
        register_model("mlp", _tiny)
    assert build_model("mlp", (4,), 2).__class__ is not torch.nn.Linear
    register_model("mlp", _tiny, force=True)
    assert isinstance(build_model("mlp", (4,), 2), torch.nn.Linear)
    with pytest.raises(UnknownNameError, match="unknown model 'nope'; choose one of: lenet5, mlp, resnet18"):
        build_model("nope", (4,), 2)


def test_register_dataset_refuses_a_builtin_name_unless_forced(restore):
    with pytest.raises(ConfigError, match="dataset 'digits' is already registered"):
        register_dataset("digits")(lambda: None)
    with pytest.raises(UnknownNameError, match="unknown dataset 'nope'; choose one of: .*digits"):
        load_dataset("nope")


def test_register_attack_and_family(restore):
    with pytest.raises(ConfigError, match="attack family 'evasion' is already registered"):
        register_family(Family("evasion", "again", ()))
    fgsm = attack_class("fgsm")

    class Other(Attack):
        family = "evasion"

    with pytest.raises(ConfigError, match="attack 'fgsm' is already registered"):
        register_attack("fgsm")(Other)
    assert attack_class("fgsm") is fgsm and Other.__dict__.get("name") is None  # the refused class is untouched
    register_attack("fgsm", force=True)(Other)
    assert attack_class("fgsm") is Other
    with pytest.raises(UnknownNameError, match="unknown attack family 'nope'; choose one of: evasion, extraction"):
        get_family("nope")
    with pytest.raises(ConfigError, match="attack 'x' has family 'nope'; choose one of: evasion, extraction"):
        register_attack("x")(type("X", (Attack,), {"family": "nope"}))


@dataclass(frozen=True)
class _Never:
    name: str = "never"

    def decide(self, series, *, affected):
        return Decision(False, "never")


def test_register_stopping_rule_and_aggregation(restore):
    with pytest.raises(ConfigError, match="stopping rule 'immediate' is already registered"):
        register_stopping_rule("immediate", _Never)
    register_stopping_rule("immediate", _Never, force=True)
    assert make_stopping_rule("immediate").decide([], affected=0).stop is False
    with pytest.raises(UnknownNameError, match="unknown stopping rule 'x'; choose one of: fitted-decay, immediate"):
        make_stopping_rule("x")
    with pytest.raises(ConfigError, match="stopping rule 'scale-free'.*unexpected keyword"):
        make_stopping_rule("scale-free", nope=1.0)
    assert isinstance(_RULES.get("immediate")(), _Never) and not isinstance(_RULES.get("immediate")(), Immediate)

    probs = torch.tensor([[[0.75, 0.25]], [[0.0, 1.0]]])
    with pytest.raises(ConfigError, match="aggregation 'vote' is already registered"):
        register_aggregation("vote", lambda p: (p[0], p[0]))
    register_aggregation("first", lambda p: (p[0], p[0]))
    assert aggregate(probs, "first")[0].tolist() == [[0.75, 0.25]]


def test_a_rule_raising_type_error_inside_is_not_reported_as_a_config_error(restore):
    class Broken:
        name = "broken"

        def __init__(self) -> None:
            raise TypeError("a bug inside the rule")

    register_stopping_rule("broken", Broken)
    with pytest.raises(TypeError, match="a bug inside the rule") as info:
        make_stopping_rule("broken")
    assert not isinstance(info.value, ConfigError)


def test_shadow_attack_models_come_from_a_registry():
    assert list(ATTACK_MODELS) == ["logistic", "gbdt", "random_forest"]
    with pytest.raises(ConfigError, match="one of logistic, gbdt, random_forest"):
        ShadowModelAttack(attack_model="nope")
