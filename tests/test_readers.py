"""Readers for real dataset formats: tiny files written in each real format, read back; error cases;
the real MNIST test files when present."""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import struct
import sys
import tarfile

import numpy as np
import pytest
import scipy.io
import torch

from obliviate.data import dataset_names, load_dataset, seeded_split
from obliviate.data.paths import DATA_DIR_ENV
from obliviate.data.readers import (
    load_cifar10, load_imagefolder, load_mnist, load_mnist_t10k, load_purchase100, load_svhn,
    make_purchase_synthetic, read_idx, safe_loads,
)
from obliviate.errors import ConfigError, DataError, DataFileNotFoundError


def test_all_readers_registered():
    names = set(dataset_names())
    assert {"mnist", "mnist-t10k", "cifar10", "svhn", "purchase100", "purchase-synthetic",
            "imagefolder"} <= names


# ---------------------------------------------------------------------------------------------- MNIST

def idx_bytes(arr: np.ndarray) -> bytes:
    """An IDX file written by hand: magic 0x0000 0x08 ndim, big-endian uint32 dims, uint8 body."""
    arr = np.asarray(arr, dtype=np.uint8)
    return struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def write_mnist_pair(folder, prefix, images, labels, gz=True):
    suffix = ".gz" if gz else ""
    for stem, arr in ((f"{prefix}-images-idx3-ubyte", images), (f"{prefix}-labels-idx1-ubyte", labels)):
        data = idx_bytes(arr)
        (folder / (stem + suffix)).write_bytes(gzip.compress(data) if gz else data)


def tiny_images(n, seed, h=28, w=28):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, h, w), dtype=np.uint8), rng.integers(0, 10, size=n).astype(np.uint8)


def test_read_idx_gz_raw_and_misnamed_gz(tmp_path):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a-idx3-ubyte").write_bytes(idx_bytes(arr))
    (tmp_path / "a-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(arr)))
    (tmp_path / "b-idx3-ubyte").write_bytes(gzip.compress(idx_bytes(arr)))  # gzip without .gz suffix
    for name in ("a-idx3-ubyte", "a-idx3-ubyte.gz", "b-idx3-ubyte"):
        got = read_idx(tmp_path / name)
        assert got.shape == (2, 3, 4) and got.dtype == np.uint8
        np.testing.assert_array_equal(got, arr)
    labels = np.array([7, 0, 9], np.uint8)
    (tmp_path / "l-idx1-ubyte").write_bytes(idx_bytes(labels))
    np.testing.assert_array_equal(read_idx(tmp_path / "l-idx1-ubyte"), labels)


def test_read_idx_big_endian_int32(tmp_path):
    body = struct.pack(">HBB", 0, 0x0C, 1) + struct.pack(">I", 3) + struct.pack(">3i", 1, -2, 70000)
    (tmp_path / "i").write_bytes(body)
    assert read_idx(tmp_path / "i").tolist() == [1, -2, 70000]


@pytest.mark.parametrize("case", ["bad_magic", "bad_code", "truncated", "trailing", "short_header",
                                  "empty", "truncated_gz"])
def test_read_idx_malformed_names_file(tmp_path, case):
    good = idx_bytes(np.zeros((4, 5, 5), np.uint8))
    data = {
        "bad_magic": b"\x01\x02" + good[2:],
        "bad_code": good[:2] + b"\x07" + good[3:],
        "truncated": good[:-10],
        "trailing": good + b"\x00",
        "short_header": good[:9],
        "empty": b"",
        "truncated_gz": gzip.compress(good)[:30],
    }[case]
    why = {"bad_magic": "magic", "bad_code": "dtype code 0x07", "truncated": "body truncated",
           "trailing": "trailing bytes", "short_header": "truncated IDX header", "empty": "magic",
           "truncated_gz": "gzip"}[case]
    path = tmp_path / f"{case}-idx3-ubyte"
    path.write_bytes(data)
    with pytest.raises(DataError, match=f"{case}-idx3-ubyte.*{why}"):
        read_idx(path)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(DataFileNotFoundError, match="nope-idx1-ubyte"):
        read_idx(tmp_path / "nope-idx1-ubyte")


def test_load_mnist_four_files_gz_and_raw(tmp_path):
    xtr, ytr = tiny_images(6, 1)
    xte, yte = tiny_images(4, 2)
    write_mnist_pair(tmp_path, "train", xtr, ytr, gz=True)
    write_mnist_pair(tmp_path, "t10k", xte, yte, gz=False)
    s = load_dataset("mnist", root=str(tmp_path))
    assert s.input_shape == (1, 28, 28) and s.num_classes == 10
    assert s.train.x.dtype == torch.float32 and float(s.train.x.min()) >= 0 and float(s.train.x.max()) <= 1
    assert s.train.ids.tolist() == list(range(6)) and s.test.ids.tolist() == list(range(4))
    assert s.train.y.tolist() == ytr.tolist() and s.test.y.tolist() == yte.tolist()
    np.testing.assert_allclose(s.train.x[:, 0].numpy(), xtr / 255.0, rtol=0, atol=1e-7)
    np.testing.assert_allclose(s.test.x[:, 0].numpy(), xte / 255.0, rtol=0, atol=1e-7)


def test_load_mnist_torchvision_layout(tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, seed in (("train", 3), ("t10k", 4)):
        write_mnist_pair(raw, prefix, *tiny_images(3, seed))
    assert len(load_mnist(root=tmp_path).train) == 3


def test_load_mnist_missing_file_names_it(tmp_path):
    write_mnist_pair(tmp_path, "train", *tiny_images(3, 1))
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(tiny_images(3, 2)[0])))
    with pytest.raises(DataFileNotFoundError, match=r"t10k-labels-idx1-ubyte\(\.gz\).*LeCun"):
        load_mnist(root=tmp_path)
    with pytest.raises(FileNotFoundError):  # the builtin still catches it
        load_mnist(root=tmp_path / "absent")


def test_load_mnist_count_mismatch_and_bad_labels(tmp_path):
    x, y = tiny_images(5, 1)
    write_mnist_pair(tmp_path, "train", x, y[:4])
    write_mnist_pair(tmp_path, "t10k", x, y)
    with pytest.raises(DataError, match="5 images but .* 4 labels"):
        load_mnist(root=tmp_path)
    write_mnist_pair(tmp_path, "train", x, np.array([0, 1, 2, 3, 12], np.uint8))
    with pytest.raises(DataError, match=r"labels must lie in \[0, 10\)"):
        load_mnist(root=tmp_path)


def test_mnist_t10k_md5_mismatch_and_split(tmp_path):
    x, y = tiny_images(10, 5)
    write_mnist_pair(tmp_path, "t10k", x, y)
    with pytest.raises(DataError, match="altered labels"):
        load_mnist_t10k(root=tmp_path, n_train=8)
    s = load_mnist_t10k(root=tmp_path, n_train=8, check_md5=False, seed=3)
    assert len(s.train) == 8 and len(s.test) == 2
    ids = sorted(s.train.ids.tolist() + s.test.ids.tolist())
    assert ids == list(range(10))
    tr, te = seeded_split(10, 0.2, 3)
    assert s.train.ids.tolist() == tr.tolist() and s.test.ids.tolist() == te.tolist()
    for part in (s.train, s.test):  # each id is the index in the t10k file
        np.testing.assert_allclose(part.x[:, 0].numpy(), x[part.ids.numpy()] / 255.0, atol=1e-7)
        assert part.y.tolist() == y[part.ids.numpy()].tolist()
    with pytest.raises(ConfigError, match="n_train"):
        load_mnist_t10k(root=tmp_path, n_train=10, check_md5=False)


def test_mnist_t10k_default_root_names_variable(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    with pytest.raises(DataFileNotFoundError) as e:
        load_dataset("mnist-t10k")
    msg = str(e.value)
    assert "t10k-images-idx3-ubyte(.gz)" in msg and str(tmp_path / "mnist-t10k") in msg
    assert DATA_DIR_ENV in msg and "LeCun" in msg


def test_mnist_t10k_real_files(mnist_t10k_dir):
    md5 = {"t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
           "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"}
    for name, want in md5.items():
        assert hashlib.md5((mnist_t10k_dir / name).read_bytes()).hexdigest() == want
    s = load_mnist_t10k(root=mnist_t10k_dir)
    assert len(s.train) == 8000 and len(s.test) == 2000 and s.input_shape == (1, 28, 28)
    y = torch.cat([s.train.y, s.test.y])
    assert torch.bincount(y, minlength=10).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    tr, te = seeded_split(10_000, 0.2, 0)
    assert s.train.ids.tolist() == tr.tolist() and s.test.ids.tolist() == te.tolist()
    labels = read_idx(mnist_t10k_dir / "t10k-labels-idx1-ubyte.gz")
    assert s.test.y.tolist() == labels[te].tolist()
    assert float(s.train.x.min()) == 0.0 and float(s.train.x.max()) == 1.0


# ---------------------------------------------------------------------------------------------- CIFAR

def cifar_batch(n, seed, protocol=2, as_bytes=False):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n).tolist()
    obj = {b"batch_label": b"batch", b"labels": labels, b"data": data.tobytes() if as_bytes else data,
           b"filenames": [f"img{i}.png".encode() for i in range(n)]}
    return pickle.dumps(obj, protocol=protocol), data, labels


def write_cifar(folder, n=3, **kw):
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for i, name in enumerate([f"data_batch_{b}" for b in range(1, 6)] + ["test_batch"]):
        blob, data, labels = cifar_batch(n, i, **kw)
        (folder / name).write_bytes(blob)
        out[name] = (data, labels)
    return out


@pytest.mark.parametrize("layout", ["folder", "parent", "tar"])
def test_cifar10_layouts(tmp_path, layout):
    src = tmp_path / "src" / "cifar-10-batches-py"
    parts = write_cifar(src)
    if layout == "folder":
        root = src
    elif layout == "parent":
        root = src.parent
    else:
        root = tmp_path / "arch"
        root.mkdir()
        with tarfile.open(root / "cifar-10-python.tar.gz", "w:gz") as tar:
            tar.add(src, arcname="cifar-10-batches-py")
    s = load_dataset("cifar10", root=str(root))
    assert len(s.train) == 15 and len(s.test) == 3 and s.input_shape == (3, 32, 32)
    assert s.train.ids.tolist() == list(range(15)) and s.test.ids.tolist() == [0, 1, 2]
    data = np.concatenate([parts[f"data_batch_{b}"][0] for b in range(1, 6)])
    labels = [v for b in range(1, 6) for v in parts[f"data_batch_{b}"][1]]
    assert s.train.y.tolist() == labels and s.test.y.tolist() == parts["test_batch"][1]
    # channel-major rows: data[i, c*1024 + h*32 + w] is x[i, c, h, w]
    i, c, h, w = 7, 2, 5, 30
    assert s.train.x[i, c, h, w].item() == pytest.approx(data[i, c * 1024 + h * 32 + w] / 255.0)
    assert s.train.x.dtype == torch.float32 and float(s.train.x.min()) >= 0 and float(s.train.x.max()) <= 1


@pytest.mark.parametrize("protocol,as_bytes", [(0, False), (4, False), (5, False), (2, True)])
def test_cifar10_pickle_variants(tmp_path, protocol, as_bytes):
    parts = write_cifar(tmp_path, n=2, protocol=protocol, as_bytes=as_bytes)
    s = load_cifar10(root=tmp_path)
    assert len(s.train) == 10
    np.testing.assert_allclose(s.test.x.reshape(2, -1).numpy(), parts["test_batch"][0] / 255.0, atol=1e-7)


def test_cifar10_missing_batch_names_it(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar(folder)
    (folder / "test_batch").unlink()
    with pytest.raises(DataFileNotFoundError, match="test_batch.*CIFAR"):
        load_cifar10(root=tmp_path)
    with pytest.raises(DataFileNotFoundError, match="cifar-10-batches-py"):
        load_cifar10(root=tmp_path / "elsewhere")


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _EvilEval:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (eval, (f"open({str(self.marker)!r}, 'w')",))


@pytest.mark.parametrize("evil_cls", [_Evil, _EvilEval])
def test_cifar10_refuses_code_executing_pickle(tmp_path, evil_cls):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar(folder)
    marker = tmp_path / "pwned"
    payload = {b"data": evil_cls(marker), b"labels": [0]}  # hidden inside an otherwise normal batch
    (folder / "data_batch_3").write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(DataError, match=r"data_batch_3.*refused"):
        load_cifar10(root=folder)
    with pytest.raises(DataError, match="refused"):
        safe_loads(pickle.dumps(evil_cls(marker)))
    assert not marker.exists()


def test_cifar10_malformed_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar(folder)
    (folder / "data_batch_1").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="data_batch_1"):
        load_cifar10(root=folder)
    (folder / "data_batch_1").write_bytes(pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}))
    with pytest.raises(DataError, match=r"\(n, 3072\)"):
        load_cifar10(root=folder)
    (folder / "data_batch_1").write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}))
    with pytest.raises(DataError, match="2 images but 1 labels"):
        load_cifar10(root=folder)


# ----------------------------------------------------------------------------------------------- SVHN

def svhn_mat(path, n, seed):
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)
    y = rng.integers(1, 11, size=(n, 1)).astype(np.uint8)
    y[0, 0] = 10
    scipy.io.savemat(path, {"X": X, "y": y})
    return X, y[:, 0]


def test_svhn_train_and_test(tmp_path):
    X, y = svhn_mat(tmp_path / "train_32x32.mat", 6, 0)
    _, yt = svhn_mat(tmp_path / "test_32x32.mat", 4, 1)
    s = load_dataset("svhn", root=str(tmp_path))
    assert len(s.train) == 6 and len(s.test) == 4 and s.input_shape == (3, 32, 32)
    assert s.train.y.tolist() == [0 if v == 10 else int(v) for v in y] and s.train.y[0] == 0
    assert s.test.y.tolist() == [0 if v == 10 else int(v) for v in yt]
    assert s.train.ids.tolist() == list(range(6))
    i, c, h, w = 4, 1, 3, 17  # X is (row, col, channel, n)
    assert s.train.x[i, c, h, w].item() == pytest.approx(X[h, w, c, i] / 255.0)
    assert float(s.train.x.min()) >= 0 and float(s.train.x.max()) <= 1


def test_svhn_train_only_seeded_split(tmp_path):
    X, _ = svhn_mat(tmp_path / "train_32x32.mat", 10, 0)
    s = load_svhn(root=tmp_path, seed=1)
    assert len(s.train) == 8 and len(s.test) == 2
    tr, te = seeded_split(10, 0.2, 1)
    assert s.train.ids.tolist() == tr.tolist() and s.test.ids.tolist() == te.tolist()
    np.testing.assert_allclose(s.test.x.numpy(), np.transpose(X, (3, 2, 0, 1))[te] / 255.0, atol=1e-7)


def test_svhn_missing_and_malformed(tmp_path):
    with pytest.raises(DataFileNotFoundError, match="train_32x32.mat.*SVHN"):
        load_svhn(root=tmp_path)
    (tmp_path / "train_32x32.mat").write_bytes(b"MATLAB garbage" * 20)
    with pytest.raises(DataError, match="train_32x32.mat"):
        load_svhn(root=tmp_path)
    scipy.io.savemat(tmp_path / "train_32x32.mat", {"X": np.zeros((32, 32, 3, 2), np.uint8)})
    with pytest.raises(DataError, match="expected variables X and y"):
        load_svhn(root=tmp_path)


# ------------------------------------------------------------------------------------------- Purchase

def purchase_arrays(n=20, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.random((n, 600)) < 0.2).astype(np.uint8)
    y = rng.integers(0, 100, size=n)
    y[0], y[1] = 0, 99
    return x, y


@pytest.mark.parametrize("keys", [("features", "labels"), ("X", "Y"), ("x", "y")])
def test_purchase100_npz(tmp_path, keys):
    x, y = purchase_arrays()
    np.savez(tmp_path / "purchase100.npz", **{keys[0]: x, keys[1]: y})
    s = load_dataset("purchase100", root=str(tmp_path))
    assert s.input_shape == (600,) and s.num_classes == 100
    assert len(s.train) == 16 and len(s.test) == 4
    tr, te = seeded_split(20, 0.2, 0)
    assert s.train.ids.tolist() == tr.tolist() and s.test.ids.tolist() == te.tolist()
    np.testing.assert_array_equal(s.train.x.numpy(), x[tr].astype(np.float32))
    assert s.train.y.tolist() == y[tr].tolist()


@pytest.mark.parametrize("one_based,name", [(True, "dataset_purchase"), (False, "purchase100.csv")])
def test_purchase100_csv(tmp_path, one_based, name):
    x, y = purchase_arrays()
    labels = y + 1 if one_based else y
    lines = [",".join([str(int(lab))] + [str(int(v)) for v in row]) for lab, row in zip(labels, x)]
    (tmp_path / name).write_text("\n".join(lines) + "\n")
    s = load_purchase100(root=tmp_path, test_fraction=0.25, seed=2)
    tr, te = seeded_split(20, 0.25, 2)
    assert s.train.ids.tolist() == tr.tolist() and s.test.ids.tolist() == te.tolist()
    assert s.test.y.tolist() == y[te].tolist()  # 1..100 mapped back to 0..99
    np.testing.assert_array_equal(s.test.x.numpy(), x[te].astype(np.float32))


def test_purchase100_errors(tmp_path):
    with pytest.raises(DataFileNotFoundError, match="purchase100.npz or dataset_purchase.*Shokri"):
        load_purchase100(root=tmp_path)
    x, y = purchase_arrays()
    np.savez(tmp_path / "purchase100.npz", features=x, labels=y + 5)
    with pytest.raises(DataError, match=r"labels must lie in \[0, 100\)"):
        load_purchase100(root=tmp_path)
    np.savez(tmp_path / "purchase100.npz", features=x * 3, labels=y)
    with pytest.raises(DataError, match="binary"):
        load_purchase100(root=tmp_path)
    np.savez(tmp_path / "purchase100.npz", feats=x, labels=y)
    with pytest.raises(DataError, match="expected arrays features"):
        load_purchase100(root=tmp_path)
    obj = np.empty(20, dtype=object)
    np.savez(tmp_path / "purchase100.npz", features=x, labels=obj)  # object arrays need pickle: refused
    with pytest.raises(DataError, match="purchase100.npz"):
        load_purchase100(root=tmp_path)


@pytest.mark.slow
def test_purchase_synthetic_deterministic():
    a = load_dataset("purchase-synthetic")
    b = make_purchase_synthetic()
    assert a.train.fingerprint() == b.train.fingerprint() and a.test.fingerprint() == b.test.fingerprint()
    assert a.input_shape == (600,) and a.num_classes == 100
    assert len(a.train) == 10_000 and len(a.test) == 2_000
    assert a.train.ids.tolist() == list(range(10_000))
    assert set(torch.unique(a.train.x).tolist()) == {0.0, 1.0}
    assert torch.unique(a.train.y).numel() == 100
    density = float(a.train.x.mean())
    assert 0.1 < density < 0.3
    c = make_purchase_synthetic(seed=1)
    assert c.train.fingerprint() != a.train.fingerprint()
    d = make_purchase_synthetic(n_test=500)  # the training set does not depend on n_test
    assert d.train.fingerprint() == a.train.fingerprint() and len(d.test) == 500
    # a class's samples resemble each other more than other classes' (learnable)
    x, y = a.train.x.numpy(), a.train.y.numpy()
    m0, m1 = x[y == 0].mean(0), x[y == 50].mean(0)
    assert np.abs(m0 - m1).sum() > 20


# ----------------------------------------------------------------------------------------- Image folder

def _png(path, color, size=(10, 7), mode="RGB"):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path)


def test_imagefolder_train_val(tmp_path):
    colors = {"b_dog": (200, 10, 30), "a_cat": (0, 255, 128)}
    for split, n in (("train", 3), ("val", 2)):
        for cls, col in colors.items():
            for i in range(n):
                _png(tmp_path / split / cls / f"{i}.png", col, size=(10 + i, 7))
    (tmp_path / "train" / "a_cat" / "notes.txt").write_text("ignored")
    (tmp_path / "train" / "a_cat" / ".hidden.png").write_bytes(b"ignored")
    s = load_dataset("imagefolder", root=str(tmp_path), size=6)
    assert s.num_classes == 2 and s.input_shape == (3, 6, 6)
    assert len(s.train) == 6 and len(s.test) == 4
    from obliviate.data.ids import stable_id

    assert s.train.ids.tolist() == [stable_id(f"train/{c}/{i}.png") for c in ("a_cat", "b_dog") for i in range(3)]
    assert s.test.ids.tolist() == [stable_id(f"val/{c}/{i}.png") for c in ("a_cat", "b_dog") for i in range(2)]
    assert s.train_names[s.train.ids[0].item()] == "train/a_cat/0.png"
    assert s.train.y.tolist() == [0, 0, 0, 1, 1, 1]  # a_cat before b_dog
    np.testing.assert_allclose(s.train.x[0, :, 2, 3].numpy(), np.array([0, 255, 128]) / 255.0, atol=1e-6)
    np.testing.assert_allclose(s.test.x[3, :, 0, 0].numpy(), np.array([200, 10, 30]) / 255.0, atol=1e-6)
    g = load_imagefolder(root=tmp_path, size=(4, 5), mode="L")
    assert g.input_shape == (1, 4, 5)
    assert float(g.train.x.min()) >= 0 and float(g.train.x.max()) <= 1


def test_imagefolder_single_folder_seeded_split(tmp_path):
    for cls in ("x", "y"):
        for i in range(5):
            _png(tmp_path / cls / f"{i:02d}.jpg", (i * 50, 0, 0))
    from obliviate.data.ids import in_held_out, stable_id

    s = load_imagefolder(root=tmp_path, size=4, seed=1)
    names = [f"{c}/{i:02d}.jpg" for c in ("x", "y") for i in range(5)]
    held = [n for n in names if in_held_out(n, 0.2, 1)]
    assert s.test.ids.tolist() == [stable_id(n) for n in held]
    assert s.train.ids.tolist() == [stable_id(n) for n in names if n not in held]
    assert s.train.y.tolist() == [0 if n.startswith("x") else 1 for n in names if n not in held]
    # removing one file changes no other image's id nor its side of the split
    (tmp_path / "x" / "00.jpg").unlink()
    t = load_imagefolder(root=tmp_path, size=4, seed=1)
    assert set(t.train.ids.tolist()) | set(t.test.ids.tolist()) == \
        (set(s.train.ids.tolist()) | set(s.test.ids.tolist())) - {stable_id("x/00.jpg")}
    assert set(t.test.ids.tolist()) <= set(s.test.ids.tolist())


def test_imagefolder_errors(tmp_path, monkeypatch):
    with pytest.raises(DataFileNotFoundError, match="class sub-folders"):
        load_imagefolder(root=tmp_path / "absent")
    for i in range(4):
        _png(tmp_path / "c" / f"{i}.png", (1, 2, 3))
    with pytest.raises(DataError, match="4 images exceed max_images=3"):
        load_imagefolder(root=tmp_path, max_images=3)
    with pytest.raises(ConfigError, match="mode"):
        load_imagefolder(root=tmp_path, mode="CMYK")
    monkeypatch.setitem(sys.modules, "PIL", None)  # as if Pillow were not installed
    with pytest.raises(DataError, match="pip install pillow"):
        load_imagefolder(root=tmp_path)
    monkeypatch.undo()
    (tmp_path / "c" / "broken.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match="broken.png"):
        load_imagefolder(root=tmp_path)


def test_unknown_option_rejected():
    with pytest.raises(ConfigError, match="does not take"):
        load_dataset("purchase-synthetic", n_samples=3)


def test_digits_read_without_importing_sklearn_equals_sklearn():
    """The embedded default is read from scikit-learn's bundled file directly (no sklearn import), and is
    exactly what ``sklearn.datasets.load_digits`` gives."""
    import numpy as np
    from sklearn.datasets import load_digits as sk_load_digits

    from obliviate.data.digits import _raw_digits

    x, y = _raw_digits()
    bunch = sk_load_digits()
    assert np.array_equal(x, (bunch.images.astype(np.float32) / 16.0)[:, None]) and np.array_equal(y, bunch.target)


def test_sample_fingerprints_follow_their_definition():
    """Runs already recorded compare these hashes on every open: their definition (blake2b-64 of the
    label as little-endian int64, then the sample's bytes as stored) must not drift with a faster loop."""
    import hashlib

    import numpy as np

    from obliviate.data import IndexedDataset
    from obliviate.data.fingerprints import sample_hashes

    gen = torch.Generator().manual_seed(0)
    cases = [torch.randn(6, 2, 3, generator=gen).transpose(1, 2),  # not contiguous
             torch.randn(4, 5, dtype=torch.float64, generator=gen), torch.randn(3, generator=gen), torch.zeros(2, 0),
             torch.randint(0, 255, (4, 7), dtype=torch.uint8, generator=gen)]
    empty = torch.zeros(0, dtype=torch.int64)
    assert sample_hashes(IndexedDataset(empty, torch.zeros(0, 3), empty, 3)).shape == (0,)
    for x in cases:
        y = torch.arange(len(x)) % 3
        ds = IndexedDataset(torch.arange(len(x)) * 7, x, y, 3, "toy")
        want = [np.frombuffer(hashlib.blake2b(np.int64(label).astype("<i8").tobytes()
                                              + np.ascontiguousarray(row.numpy()).tobytes(), digest_size=8).digest(),
                              dtype="<i8")[0] for label, row in zip(y.tolist(), x)]
        got = sample_hashes(ds)
        assert got.dtype == np.int64 and got.tolist() == [int(w) for w in want]
