"""MNIST (and Fashion-MNIST) from the original IDX files.

IDX layout (LeCun et al.): two zero bytes, a dtype code (0x08 unsigned byte, 0x09 signed byte,
0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64), the number of dimensions, then one big-endian
uint32 per dimension, then the values in C order, big-endian. Files may be gzip-compressed.

>>> import tempfile, numpy as np
>>> from pathlib import Path
>>> with tempfile.TemporaryDirectory() as d:
...     write_idx(Path(d) / "x-idx3-ubyte.gz", np.arange(24, dtype=np.uint8).reshape(2, 3, 4))
...     a = read_idx(Path(d) / "x-idx3-ubyte.gz")
>>> a.shape, a.dtype.name, int(a[1, 2, 3])
((2, 3, 4), 'uint8', 23)

Loaders: ``mnist`` (the four official files: 60,000 train and 10,000 test images; Fashion-MNIST's
files have the same names and load the same way) and ``mnist-t10k`` (only the 10,000 official test
images, md5-checked, split with a fixed seed into 8,000 train and 2,000 test images).
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from ...errors import DataError
from ..base import DatasetSplits, from_arrays
from ..registry import register_dataset
from ._common import check_labels, md5_file, missing, resolve_root, split_counts

_IDX_DTYPES: dict[int, str] = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

_ORIGIN = "the official MNIST files from LeCun et al.'s MNIST page"
_ORIGIN_FASHION = (_ORIGIN + " (Fashion-MNIST's files from Zalando Research have the same names and load "
                   "the same way)")

# md5 of the official MNIST files, compressed (as published, and as torchvision checks) and raw
# (the decompressed content of those same files).
MNIST_MD5: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when it starts with the gzip magic (whatever its suffix)."""
    if not path.is_file():
        raise missing(path.name, path.parent, "an IDX file")
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: not a readable gzip file ({e}); the download is probably truncated or "
                        f"corrupt") from None


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (gzip-compressed or not) into a numpy array in native byte order.

    A bad magic number, an unknown dtype code, a truncated body or trailing bytes raise
    :class:`~obliviate.errors.DataError` naming the file; a missing file raises
    :class:`~obliviate.errors.DataFileNotFoundError`.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DataError(f"{path}: not an IDX file (bad magic number {data[:4].hex() or 'empty'}; an IDX "
                        f"file starts with two zero bytes, a dtype code and the number of dimensions)")
    code, ndim = data[2], data[3]
    if code not in _IDX_DTYPES:
        raise DataError(f"{path}: unknown IDX dtype code 0x{code:02X} (known: "
                        f"{', '.join(f'0x{c:02X}' for c in _IDX_DTYPES)})")
    if ndim < 1:
        raise DataError(f"{path}: IDX header declares {ndim} dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header ({len(data)} bytes, {header} needed for {ndim} dims)")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(_IDX_DTYPES[code])
    want = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    got = len(data) - header
    if got != want:
        kind = "truncated" if got < want else "has trailing bytes"
        raise DataError(f"{path}: IDX body {kind}: dims {tuple(dims)} need {want} bytes of data, found {got}")
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file (gzip-compressed when ``path`` ends in ``.gz``)."""
    array = np.asarray(array)
    codes = {np.dtype(v).newbyteorder("=").str: k for k, v in _IDX_DTYPES.items()}
    key = array.dtype.newbyteorder("=").str
    if key not in codes or array.ndim < 1:
        raise DataError(f"cannot write {array.dtype} arrays of {array.ndim} dims as IDX")
    code = codes[key]
    body = struct.pack(f">BBBB{array.ndim}I", 0, 0, code, array.ndim, *array.shape)
    body += np.ascontiguousarray(array, dtype=np.dtype(_IDX_DTYPES[code])).tobytes()
    path = Path(path)
    path.write_bytes(gzip.compress(body, mtime=0) if path.suffix == ".gz" else body)


def _locate(root: Path, stem: str) -> Path | None:
    """``stem.gz`` or ``stem`` in ``root`` (the compressed file first: it is the one with a published md5)."""
    for name in (stem + ".gz", stem):
        if (root / name).is_file():
            return root / name
    return None


def _check_md5(path: Path) -> None:
    want = MNIST_MD5.get(path.name)
    if want is None:
        return
    got = md5_file(path)
    if got != want:
        raise DataError(
            f"{path}: md5 {got} does not match the official file's {want}. Copies of MNIST with altered "
            f"labels circulate: get {path.name} from LeCun et al.'s MNIST page (or pass check_md5=False "
            f"if you mean to use this copy)")


def _read_pair(root: Path, prefix: str, origin: str, defaulted: bool,
               check_md5: bool) -> tuple[np.ndarray, np.ndarray, Path]:
    """Images (n, 1, H, W) float32 in [0, 1] and labels (n,) int64 from ``<prefix>-images/labels`` files."""
    paths = []
    for stem in (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"):
        p = _locate(root, stem)
        if p is None:
            raise missing(f"{stem}(.gz)", root, origin, defaulted=defaulted)
        if check_md5:
            _check_md5(p)
        paths.append(p)
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    if images.dtype != np.uint8 or images.ndim != 3:
        raise DataError(f"{paths[0]}: expected unsigned-byte images of 3 dims (n, rows, cols), got "
                        f"{images.dtype} of shape {images.shape}")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DataError(f"{paths[1]}: expected unsigned-byte labels of 1 dim, got {labels.dtype} of "
                        f"shape {labels.shape}")
    if len(images) != len(labels):
        raise DataError(f"{paths[0]} holds {len(images)} images but {paths[1]} holds {len(labels)} labels")
    check_labels(labels, 10, paths[1])
    x = (images.astype(np.float32) / 255.0)[:, None, :, :]
    return x, labels.astype(np.int64), paths[0].parent


def _mnist_root(root: str | Path | None, name: str) -> tuple[Path, bool]:
    base = resolve_root(root, name)
    # also accept torchvision's layout (root/MNIST/raw, root/FashionMNIST/raw) and a bare raw/ folder
    for cand in (base, base / "raw", base / "MNIST" / "raw", base / "FashionMNIST" / "raw"):
        if _locate(cand, "t10k-labels-idx1-ubyte") is not None:
            return cand, root is None
    return base, root is None


@register_dataset("mnist")
def load_mnist(*, root: str | Path | None = None, check_md5: bool = False) -> DatasetSplits:
    """The four MNIST IDX files in ``root`` (default ``dataset_dir("mnist")``): 60,000 train, 10,000 test.

    Files: ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
    ``t10k-labels-idx1-ubyte``, each optionally ``.gz``. Fashion-MNIST's files have the same names and
    load the same way (leave ``check_md5`` off for them: the md5 sums checked are MNIST's).
    Train ids are the index in the train file, test ids the index in the t10k file.
    ``x`` is float32 in [0, 1] of shape (n, 1, 28, 28).
    """
    base, defaulted = _mnist_root(root, "mnist")
    xtr, ytr, folder = _read_pair(base, "train", _ORIGIN_FASHION, defaulted, check_md5)
    xte, yte, _ = _read_pair(base, "t10k", _ORIGIN_FASHION, defaulted, check_md5)
    return DatasetSplits(
        from_arrays(xtr, ytr, num_classes=10, name="mnist"),
        from_arrays(xte, yte, num_classes=10, name="mnist-test"),
        source=f"MNIST IDX files in {folder}" + (" (md5 checked)" if check_md5 else ""),
    )


@register_dataset("mnist-t10k")
def load_mnist_t10k(*, root: str | Path | None = None, seed: int = 0, n_train: int = 8000,
                    check_md5: bool = True) -> DatasetSplits:
    """The 10,000 official MNIST test images only, split with a fixed seed into ``n_train`` train images
    and the rest (2,000 by default) test images.

    ``root`` defaults to ``obliviate.data.paths.dataset_dir("mnist-t10k")``. With ``check_md5`` (the
    default) the files must be the official ones: copies of MNIST with altered labels circulate.
    Ids are the image's index in the t10k file (train and test ids are disjoint). The split is
    ``split_counts(10000, n_train, seed)``: the test positions are the first ``10000 - n_train`` of
    ``numpy.random.default_rng(seed).permutation(10000)`` (the same as
    ``seeded_split(10000, 0.2, seed)`` for the default ``n_train``).
    """
    base, defaulted = _mnist_root(root, "mnist-t10k")
    x, y, folder = _read_pair(base, "t10k", _ORIGIN, defaulted, check_md5)
    tr, te = split_counts(len(y), n_train, seed)
    return DatasetSplits(
        from_arrays(x[tr], y[tr], num_classes=10, name="mnist-t10k", ids=tr),
        from_arrays(x[te], y[te], num_classes=10, name="mnist-t10k-test", ids=te),
        source=(f"official MNIST test files (t10k) in {folder}{', md5 checked' if check_md5 else ''}; "
                f"seeded split {len(tr)} train / {len(te)} test (seed {seed})"),
    )
