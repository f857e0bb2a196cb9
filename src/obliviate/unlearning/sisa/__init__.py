"""SISA: Sharded, Isolated, Sliced, Aggregated training (Bourtoule et al., "Machine Unlearning", S&P 2021).

The baseline DeepObliviate is compared against. The training ids are dealt at random (seeded) into ``S``
shards, and each shard's ids into ``R`` slices. Every shard trains its own model incrementally over its
slices with the paper's epoch budget (``e' = 2R/(R+1) e`` epochs spread over the slices, so slicing costs
what unsliced training costs; :mod:`.config`), keeping a checkpoint after every slice (:mod:`.training`,
:mod:`.persistence`). Unlearning is exact: an affected shard is restored to its checkpoint before the
earliest slice holding a deleted id and the rest is retrained without it (:mod:`.forgetting`); the result
equals, bit for bit on CPU (one machine, one thread count), an ensemble trained from scratch on the same
assignment without those ids. Predictions aggregate the ``S`` models (:mod:`.prediction`).

Modules follow the data flow: ``config`` (settings, epoch budget, analytical speedups), ``training``
(assignment, slice-by-slice training), ``persistence`` (checkpoints, manifest), ``forgetting`` (what to
retrain, the request's result), ``prediction`` (aggregation, latency), ``ensemble`` (the class tying them).

>>> import numpy as np
>>> from obliviate.data import from_arrays
>>> from obliviate.models import build_model
>>> x = np.random.default_rng(0).random((40, 1, 4, 4), dtype=np.float32)
>>> train = from_arrays(x, (x.mean(axis=(1, 2, 3)) > 0.5).astype(int), num_classes=2, name="toy")
>>> config = SisaConfig(shards=2, slices=2, epochs=2)
>>> config.slice_epochs()
(1, 1)
>>> ensemble = SisaEnsemble.train(config, train, lambda: build_model("mlp", (1, 4, 4), 2))
>>> ensemble.predict(train.x[:3]).shape
torch.Size([3])
>>> result = ensemble.forget([5])
>>> result.outcome, len(result.shards_affected), result.ids_deleted
('retrained', 1, [5])
>>> ensemble.forget([5]).outcome
'no-op'
"""

from .config import SisaConfig
from .ensemble import SisaEnsemble
from .forgetting import SisaForgetResult
from .prediction import aggregation_names, prediction_latency, register_aggregation

__all__ = ["SisaConfig", "SisaEnsemble", "SisaForgetResult", "aggregation_names", "prediction_latency",
           "register_aggregation"]
