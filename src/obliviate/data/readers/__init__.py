"""Readers for real dataset formats from a local folder. Each module registers its loaders.

Registered names: ``mnist``, ``mnist-t10k`` (IDX files), ``cifar10`` (python batches, read with a
restricted unpickler), ``svhn`` (.mat), ``purchase100`` (npz / csv), ``table`` (CSV, or Parquet with
pyarrow, with an id column), ``purchase-synthetic`` (generated, no files) and ``imagefolder`` (class
sub-folders of images, via Pillow). Nothing is downloaded: a
missing file raises :class:`~obliviate.errors.DataFileNotFoundError` naming the file expected and where
it comes from.

>>> from obliviate.data import dataset_names
>>> {"mnist", "mnist-t10k", "cifar10", "svhn", "purchase100", "purchase-synthetic",
...  "imagefolder"} <= set(dataset_names())
True
"""

from . import cifar, imagefolder, mnist, purchase, svhn, table  # noqa: F401  (importing registers the loaders)
from .cifar import SafeUnpickler, load_cifar10, safe_loads
from .imagefolder import load_imagefolder
from .mnist import load_mnist, load_mnist_t10k, read_idx, write_idx
from .purchase import load_purchase100, make_purchase_synthetic
from .svhn import load_svhn, read_svhn_mat
from .table import load_table

__all__ = ["SafeUnpickler", "load_cifar10", "load_imagefolder", "load_mnist", "load_mnist_t10k",
           "load_purchase100", "load_svhn", "load_table", "make_purchase_synthetic", "read_idx", "read_svhn_mat",
           "safe_loads", "write_idx"]
