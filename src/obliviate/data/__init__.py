"""Data with stable sample ids: the embedded digits, readers for real dataset formats, a registry."""

from .base import DatasetSplits, IndexedDataset, from_arrays, seeded_split
from .digits import load_digits, load_digits_60k
from .registry import dataset_names, load_dataset, register_dataset
from .torch_dataset import from_torch_dataset

register_dataset("digits")(load_digits)
register_dataset("digits-60k")(load_digits_60k)

from . import readers as _readers  # noqa: E402,F401  (registers the file-format readers)

__all__ = ["DatasetSplits", "IndexedDataset", "dataset_names", "from_arrays", "from_torch_dataset", "load_dataset",
           "load_digits", "load_digits_60k", "register_dataset", "seeded_split"]
