"""Poisoning: label flipping, backdoors (patch and blended triggers) and clean-label feature collision."""

from ._base import BackdoorAttack, PoisoningAttack
from .badnets import BadNets
from .blended import Blended
from .feature_collision import FeatureCollision
from .label_flip import LabelFlip

__all__ = ["BackdoorAttack", "BadNets", "Blended", "FeatureCollision", "LabelFlip", "PoisoningAttack"]
