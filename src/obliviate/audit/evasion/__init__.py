"""Evasion attacks: adversarial examples within a perturbation budget."""

from ._base import EvasionAttack
from .apgd import APGD, APGDL2
from .cw import CarliniWagnerL2
from .deepfool import DeepFool
from .fgsm import FGSM
from .hopskipjump import HopSkipJump
from .jsma import JSMA
from .pgd import BIM, PGD, PGDL2
from .square import Square

__all__ = ["APGD", "APGDL2", "BIM", "CarliniWagnerL2", "DeepFool", "EvasionAttack", "FGSM", "HopSkipJump", "JSMA",
           "PGD", "PGDL2", "Square"]
