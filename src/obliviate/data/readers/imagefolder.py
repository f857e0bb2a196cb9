"""Image folders, one sub-folder per class: ``root/train/<class>/*`` and ``root/val/<class>/*``, or
``root/<class>/*`` split with a fixed seed. Images are read with Pillow and held in memory.

>>> import tempfile
>>> from pathlib import Path
>>> from PIL import Image
>>> with tempfile.TemporaryDirectory() as d:
...     for c in ("cat", "dog"):
...         (Path(d) / c).mkdir()
...         for i in range(5):
...             Image.new("RGB", (8, 6), (40 * i, 0, 0)).save(Path(d) / c / f"{i}.png")
...     s = load_imagefolder(root=d, size=4)
>>> len(s.train), len(s.test), s.input_shape, s.num_classes
(9, 1, (3, 4, 4), 2)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ConfigError, DataError
from ..base import DatasetSplits, from_arrays
from ..ids import in_held_out, stable_id
from ..registry import register_dataset
from ._common import missing, resolve_root

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
_TRAIN_DIRS = ("train",)
_HELD_OUT_DIRS = ("val", "test")
_ORIGIN = ("an image folder: root/train/<class>/*.png|jpg with root/val/<class>/* (or root/test/<class>/*), "
           "or root/<class>/*.png|jpg (then split with a fixed seed)")


def _pil() -> Any:
    try:
        from PIL import Image
    except ImportError:
        raise DataError("reading image folders needs Pillow: pip install pillow") from None
    return Image


def _class_dirs(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
                  key=lambda p: p.name)


def _files(class_dir: Path) -> list[Path]:
    """Image files under ``class_dir`` (recursively), sorted by their path; hidden files skipped."""
    out = [p for p in class_dir.rglob("*")
           if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
           and not any(part.startswith(".") for part in p.relative_to(class_dir).parts)]
    return sorted(out, key=lambda p: p.relative_to(class_dir).as_posix())


def _scan(folder: Path, classes: list[str]) -> tuple[list[Path], np.ndarray]:
    """All images of ``folder/<class>/`` in sorted file-path order (class name, then path), and labels."""
    paths: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        d = folder / name
        if d.is_dir():
            f = _files(d)
            paths += f
            labels += [label] * len(f)
    return paths, np.asarray(labels, dtype=np.int64)


def _load_images(paths: list[Path], mode: str, size: tuple[int, int]) -> np.ndarray:
    Image = _pil()
    channels = 3 if mode == "RGB" else 1
    out = np.empty((len(paths), channels, size[0], size[1]), dtype=np.float32)
    resample = getattr(Image, "Resampling", Image).BILINEAR
    for i, p in enumerate(paths):
        try:
            with Image.open(p) as im:
                arr = np.asarray(im.convert(mode).resize((size[1], size[0]), resample), dtype=np.uint8)
        except Exception as e:  # noqa: BLE001 - any decoder failure is a bad file: UnidentifiedImageError, truncated files, decoder errors
            raise DataError(f"{p}: not a readable image ({type(e).__name__}: {e})") from None
        out[i] = (arr.reshape(size[0], size[1], channels).transpose(2, 0, 1)).astype(np.float32) / 255.0
    return out


@register_dataset("imagefolder")
def load_imagefolder(*, root: str | Path | None = None, size: int | tuple[int, int] = 32, mode: str = "RGB",
                     test_fraction: float = 0.2, seed: int = 0, max_images: int = 200_000) -> DatasetSplits:
    """Images from class sub-folders, resized to ``size`` (int: square; or (height, width)).

    Layouts: ``root/train/<class>/*`` with ``root/val/<class>/*`` (or ``root/test/<class>/*``): the given
    split; or ``root/<class>/*``: one set split with :func:`~obliviate.data.base.seeded_split`
    (``test_fraction``, ``seed``). Classes are the training folder's sub-folders sorted by name
    (label = position); a held-out class missing from training is an error. Files with suffixes
    ``.png .jpg .jpeg .bmp .gif .webp .tif .tiff`` (any case) are read, recursively inside each class
    folder; hidden files are skipped. ``mode`` is ``"RGB"`` (3 channels) or ``"L"`` (grey, 1 channel).
    Ids come from the files themselves: :func:`~obliviate.data.ids.stable_id` of the image's path
    relative to ``root`` (e.g. ``train/cat/0001.png``), so adding or removing a file never changes another
    image's id; the single-folder split is decided per file by :func:`~obliviate.data.ids.in_held_out`
    (a seeded hash of the path), for the same reason. Samples are in sorted path order. x is float32 in
    [0, 1] of shape (n, C, H, W). Everything is held in memory, so more than ``max_images`` images in
    total are refused. ``root`` defaults to ``dataset_dir("imagefolder")``.
    """
    if mode not in ("RGB", "L"):
        raise ConfigError(f"mode must be 'RGB' or 'L', got {mode!r}")
    hw = (size, size) if isinstance(size, int) else tuple(int(v) for v in size)
    if len(hw) != 2 or min(hw) < 1:
        raise ConfigError(f"size must be a positive int or (height, width), got {size!r}")
    base = resolve_root(root, "imagefolder")
    if not base.is_dir():
        raise missing("class sub-folders", base, _ORIGIN, defaulted=root is None)
    train_dir = next((base / n for n in _TRAIN_DIRS if (base / n).is_dir()), None)
    held_dir = next((base / n for n in _HELD_OUT_DIRS if (base / n).is_dir()), None)
    if held_dir is not None and train_dir is None:
        raise missing(f"train/ beside {held_dir.name}/", base, _ORIGIN, defaulted=root is None)
    if train_dir is not None and held_dir is None:
        raise missing(f"{'/ or '.join(_HELD_OUT_DIRS)}/ beside {train_dir.name}/", base, _ORIGIN,
                      defaulted=root is None)
    class_root = train_dir if train_dir is not None else base
    classes = [p.name for p in _class_dirs(class_root)]
    if not classes:
        raise missing("class sub-folders", class_root, _ORIGIN, defaulted=root is None)
    if held_dir is not None:
        extra = sorted({p.name for p in _class_dirs(held_dir)} - set(classes))
        if extra:
            raise DataError(f"{held_dir}: classes {extra[:10]} have no folder in {train_dir}; the classes "
                            f"are the training folder's sub-folders")
    tr_paths, tr_y = _scan(class_root, classes)
    te_paths, te_y = _scan(held_dir, classes) if held_dir is not None else ([], np.zeros(0, np.int64))
    total = len(tr_paths) + len(te_paths)
    if total > max_images:
        gib = total * (3 if mode == "RGB" else 1) * hw[0] * hw[1] * 4 / 2**30
        raise DataError(f"{base}: {total} images exceed max_images={max_images}; they are all held in memory "
                        f"(float32, about {gib:.1f} GiB at size {hw}); pass a larger max_images, a smaller "
                        f"size, or use a subset")
    if not tr_paths:
        raise missing(f"images ({', '.join(IMAGE_SUFFIXES)}) in the class folders", class_root, _ORIGIN,
                      defaulted=root is None)
    names = ", ".join(classes[:10]) + (" ..." if len(classes) > 10 else "")
    tr_names = [p.relative_to(base).as_posix() for p in tr_paths]
    tr_ids = np.array([stable_id(n) for n in tr_names], dtype=np.int64)
    if held_dir is not None:
        assert train_dir is not None  # a held-out folder without train/ was refused above
        if not te_paths:
            raise missing("images in the class folders", held_dir, _ORIGIN, defaulted=root is None)
        te_names = [p.relative_to(base).as_posix() for p in te_paths]
        te_ids = np.array([stable_id(n) for n in te_names], dtype=np.int64)
        return DatasetSplits(
            from_arrays(_load_images(tr_paths, mode, hw), tr_y, num_classes=len(classes), name="imagefolder",
                        ids=tr_ids),
            from_arrays(_load_images(te_paths, mode, hw), te_y, num_classes=len(classes),
                        name="imagefolder-test", ids=te_ids),
            source=f"image folder {base} ({train_dir.name}/ and {held_dir.name}/; classes: {names})",
            train_names=dict(zip(tr_ids.tolist(), tr_names)), test_names=dict(zip(te_ids.tolist(), te_names)),
        )
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"test_fraction must be in (0, 1), got {test_fraction}")
    held = np.array([in_held_out(n, test_fraction, seed) for n in tr_names], dtype=bool)
    if held.all() or not held.any():
        raise DataError(f"{base}: the seeded split (test_fraction={test_fraction}, seed={seed}) of its "
                        f"{len(tr_names)} images leaves no {'training' if held.all() else 'test'} image; add "
                        f"images, or use the train/ and val/ layout")
    x = _load_images(tr_paths, mode, hw)
    tr, te = np.flatnonzero(~held), np.flatnonzero(held)
    return DatasetSplits(
        from_arrays(x[tr], tr_y[tr], num_classes=len(classes), name="imagefolder", ids=tr_ids[tr]),
        from_arrays(x[te], tr_y[te], num_classes=len(classes), name="imagefolder-test", ids=tr_ids[te]),
        source=(f"image folder {base} (classes: {names}), seeded split test_fraction={test_fraction}, "
                f"seed={seed}"),
        train_names={int(tr_ids[i]): tr_names[i] for i in tr}, test_names={int(tr_ids[i]): tr_names[i] for i in te},
    )
