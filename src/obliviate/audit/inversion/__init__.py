"""Model inversion and membership inference."""

from .membership import MembershipLoss
from .mi_face import MIFace

__all__ = ["MIFace", "MembershipLoss"]
