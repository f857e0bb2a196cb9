"""Model extraction: copies built through a counting query function."""

from ._base import ExtractionAttack
from .equation_solving import EquationSolving
from .jacobian import JacobianAugmentation
from .knockoff import KnockoffNets
from .query import OUTPUTS, QueryBudgetExceeded, QueryFunction

__all__ = ["EquationSolving", "ExtractionAttack", "JacobianAugmentation", "KnockoffNets", "OUTPUTS",
           "QueryBudgetExceeded", "QueryFunction"]
