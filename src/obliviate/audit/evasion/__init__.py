"""Evasion attacks: adversarial examples within a perturbation budget."""

from ._base import EvasionAttack
from .cw import CarliniWagnerL2
from .deepfool import DeepFool
from .fgsm import FGSM
from .hopskipjump import HopSkipJump
from .jsma import JSMA
from .pgd import BIM, PGD, PGDL2
from .square import Square

__all__ = ["BIM", "CarliniWagnerL2", "DeepFool", "EvasionAttack", "FGSM", "HopSkipJump", "JSMA", "PGD",
           "PGDL2", "Square"]
