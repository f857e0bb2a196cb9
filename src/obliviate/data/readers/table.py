"""Tables (CSV, or Parquet with pyarrow) with an id column: the ids deletion requests name.

``table`` reads a table with a header row: the id column (default ``id``, whole numbers, unique), the
label column (default ``label``, whole numbers >= 0) and feature columns (every other column,
numbers). The id is the sample's id in the run, so a row can be erased from the file after it was
forgotten and every other row keeps its id. Without ``test_path`` the test set is the seeded share
``test_fraction`` of the rows chosen per row from its id (:func:`~obliviate.data.ids.in_held_out`).

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
>>> _ = p.write_text("id,label,a,b\\n" + "".join(f"{100 + i},{i % 2},{i},{-i}\\n" for i in range(20)))
>>> s = load_table(path=p, test_fraction=0.25)
>>> len(s.train) + len(s.test), s.input_shape, s.num_classes, 100 in s.train.ids.tolist() + s.test.ids.tolist()
(20, (2,), 2, True)
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from ...errors import ConfigError, DataError, DataFileNotFoundError
from ..base import DatasetSplits, from_arrays
from ..ids import in_held_out
from ..registry import register_dataset
from ..textfile import read_user_text


def _read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    if path.suffix.lower() in (".parquet", ".pq"):
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise DataError(f"reading the Parquet file {path} needs pyarrow: pip install 'obliviate[parquet]' "
                            f"(or save the table as CSV)") from None
        if not path.is_file():
            raise DataFileNotFoundError(f"table {path} does not exist; check data.options.path")
        try:
            table = pq.read_table(path)
        except Exception as e:  # noqa: BLE001 - any failure to parse is a bad file (ArrowInvalid and friends)
            raise DataError(f"{path}: not a readable Parquet file ({type(e).__name__})") from None
        cols = table.column_names
        data = [table.column(c).to_pylist() for c in cols]
        return cols, [[str(v) for v in row] for row in zip(*data)]
    text = read_user_text(path, "table")
    rows = [r for r in csv.reader(io.StringIO(text)) if r]
    if not rows:
        raise DataError(f"table {path} is empty; it needs a header row and one row per sample")
    return [c.strip() for c in rows[0]], rows[1:]


def _numbers(rows: list[list[str]], col: int, what: str, path: Path, *, whole: bool) -> np.ndarray:
    out = np.empty(len(rows), dtype=np.float64)
    for i, row in enumerate(rows):
        try:
            v = float(row[col])
        except (ValueError, IndexError):
            raise DataError(f"{path}, data row {i + 1}: {what} is not a number (or the row is short)") from None
        if not math.isfinite(v) or (whole and v != int(v)):
            raise DataError(f"{path}, data row {i + 1}: {what} must be a finite {'whole ' if whole else ''}number")
        out[i] = v
    return out


def _load(path: Path, id_column: str, label_column: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    header, rows = _read_rows(path)
    for name, key in ((id_column, "id_column"), (label_column, "label_column")):
        if name not in header:
            raise DataError(f"{path} has no column {name!r} (its columns: {', '.join(header[:20])}); set "
                            f"data.options.{key}")
    ic, lc = header.index(id_column), header.index(label_column)
    feats = [j for j in range(len(header)) if j not in (ic, lc)]
    if not feats:
        raise DataError(f"{path} has no feature columns besides {id_column!r} and {label_column!r}")
    if not rows:
        raise DataError(f"table {path} has a header but no rows")
    ids = _numbers(rows, ic, f"column {id_column!r}", path, whole=True)
    if ids.min() < -2**63 or ids.max() >= 2**63:
        raise DataError(f"{path}: ids in column {id_column!r} must fit in 64 bits")
    ids = ids.astype(np.int64)
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        repeated = uniq[counts > 1][:10].tolist()
        raise DataError(f"{path}: ids in column {id_column!r} must be unique; repeated: {repeated}")
    y = _numbers(rows, lc, f"column {label_column!r}", path, whole=True).astype(np.int64)
    if y.min() < 0:
        raise DataError(f"{path}: labels in column {label_column!r} must be whole numbers >= 0")
    x = np.stack([_numbers(rows, j, f"column {header[j]!r}", path, whole=False) for j in feats], axis=1)
    return ids, x.astype(np.float32), y


@register_dataset("table")
def load_table(*, path: str | Path = "", test_path: str | Path | None = None, id_column: str = "id",
               label_column: str = "label", test_fraction: float = 0.2, seed: int = 0,
               num_classes: int | None = None) -> DatasetSplits:
    """A CSV (or, with pyarrow, Parquet) table with id, label and feature columns; see the module docstring.

    ``test_path``: a second table (same columns) as the test set; otherwise the per-id seeded split.
    ``num_classes`` defaults to the largest label + 1.
    """
    if not path:
        raise ConfigError("dataset 'table' needs data.options.path, the CSV (or Parquet) file to read")
    ids, x, y = _load(Path(path), id_column, label_column)
    if test_path is not None:
        te_ids, te_x, te_y = _load(Path(test_path), id_column, label_column)
        if te_x.shape[1] != x.shape[1]:
            raise DataError(f"{test_path} has {te_x.shape[1]} feature columns, {path} has {x.shape[1]}")
    else:
        if not 0.0 < test_fraction < 1.0:
            raise ConfigError(f"test_fraction must be in (0, 1), got {test_fraction}")
        held = np.array([in_held_out(str(i), test_fraction, seed) for i in ids.tolist()], dtype=bool)
        if held.all() or not held.any():
            raise DataError(f"{path}: the seeded split of its {len(ids)} rows leaves no "
                            f"{'training' if held.all() else 'test'} row; add rows or give test_path")
        te_ids, te_x, te_y = ids[held], x[held], y[held]
        ids, x, y = ids[~held], x[~held], y[~held]
    k = int(num_classes) if num_classes is not None else int(max(y.max(), te_y.max())) + 1
    if max(y.max(), te_y.max()) >= k:
        raise DataError(f"{path}: labels must lie in [0, {k}) (num_classes = {k})")
    return DatasetSplits(from_arrays(x, y, num_classes=k, name="table", ids=ids),
                         from_arrays(te_x, te_y, num_classes=k, name="table-test", ids=te_ids),
                         source=f"table {path}" + (f" with test table {test_path}" if test_path else
                                                   f", seeded per-id split test_fraction={test_fraction}, seed={seed}"))
