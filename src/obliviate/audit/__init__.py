"""The threat audit: the survey's four attack families, each reporting the same pivot metrics.

Attacks hold settings; the model and data come with the call, so one configured attack runs on the
original, the unlearned and the retrained model alike (see README.md beside this file).

>>> from obliviate.audit import attack_names, family_names
>>> family_names()
['evasion', 'extraction', 'inversion', 'poisoning']
>>> "badnets" in attack_names("poisoning")
True
"""

from .base import Attack, AttackResult, AuditData, CountedModel, ThreatModel
from .evasion import (APGD, APGDL2, BIM, FGSM, JSMA, PGD, PGDL2, CarliniWagnerL2, DeepFool, EvasionAttack, HopSkipJump,
                      Square)
from .extraction import (EquationSolving, ExtractionAttack, JacobianAugmentation, KnockoffNets,
                         QueryBudgetExceeded, QueryFunction)
from .inversion import MembershipLoss, MIFace
from .poisoning import BackdoorAttack, BadNets, Blended, FeatureCollision, LabelFlip, PoisoningAttack
from .registry import (Family, attack_class, attack_names, attack_settings, build_attack, family_metrics,
                       family_names, register_attack, register_family)
from .suite import AuditReport, parse_attack_spec, run_audit

__all__ = [
    "APGD", "APGDL2", "Attack", "AttackResult", "AuditData", "AuditReport", "BIM", "BackdoorAttack", "BadNets",
    "Blended", "CarliniWagnerL2", "CountedModel", "DeepFool", "EquationSolving", "EvasionAttack", "ExtractionAttack",
    "FGSM", "Family", "FeatureCollision", "HopSkipJump", "JSMA", "JacobianAugmentation", "KnockoffNets",
    "LabelFlip", "MIFace", "MembershipLoss", "PGD", "PGDL2", "PoisoningAttack", "QueryBudgetExceeded",
    "QueryFunction", "Square", "ThreatModel", "attack_class", "attack_names", "attack_settings",
    "build_attack", "family_metrics", "family_names", "parse_attack_spec", "register_attack",
    "register_family", "run_audit",
]
