"""The unlearning engine: DeepObliviate, exact and retrain modes; residual memory; guarded stitch."""

from .engine import ForgetOptions, forget, forget_many, methods, resolve_request
from .guard import GuardVerdict, StitchGuard
from .residual import BlockResidual, function_residual, parameter_residual
from .result import ForgetResult
from .sisa import (SisaConfig, SisaEnsemble, SisaForgetResult, aggregation_names, prediction_latency,
                   register_aggregation)
from .stopping import Bounds, Decision, StoppingRule, fit_power_decay, make_stopping_rule, stopping_rule_names

__all__ = ["BlockResidual", "Bounds", "Decision", "ForgetOptions", "ForgetResult", "GuardVerdict", "StitchGuard",
           "SisaConfig", "SisaEnsemble", "SisaForgetResult", "StoppingRule", "aggregation_names", "prediction_latency",
           "register_aggregation", "fit_power_decay", "forget", "forget_many", "function_residual",
           "make_stopping_rule", "methods", "parameter_residual", "resolve_request", "stopping_rule_names"]
