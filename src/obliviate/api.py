"""Small entry points over the library for other commands and notebooks.

>>> import tempfile
>>> load_models_for_audit(tempfile.mkdtemp())  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
obliviate.errors.StoreError: ... is not an obliviate run (no manifest.json); create one with `obliviate train`
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

__all__ = ["load_models_for_audit"]


def load_models_for_audit(run_path: str | Path) -> dict[str, nn.Module]:
    """The models of a stored run worth auditing side by side, in eval mode.

    ``"current"``: the run's current model (the original, or the unlearned one after forget requests);
    ``"exact"``: the exact retrain of the latest request, when ``obliviate verify`` has cached it (nothing is
    trained here). The original model of an unlearned run is not available: the forget request purged it.
    """
    from .training import open_run
    from .training.chain import load_state
    from .verify.oracles import cached_exact_state

    run = open_run(run_path)
    models: dict[str, nn.Module] = {"current": run.final_model()}
    if run.requests:
        state = cached_exact_state(run)
        if state is not None:
            exact = run.build_model()
            load_state(exact, state)
            exact.eval()
            models["exact"] = exact
    return models
