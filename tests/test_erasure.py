"""The erasure flow: forget a sample, erase it from the source, and the run keeps working.

Ids come from the data (an image's relative path, a table's id column) and the run's fingerprint is per
sample, so a forgotten sample may vanish from the source while every other change is refused by name.
"""

from __future__ import annotations

import numpy as np
import pytest

from obliviate.cli import main
from obliviate.data.ids import stable_id
from obliviate.training import open_run


def _cli(capsys, *argv) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "internal error" not in captured.err, captured.err
    return code, captured.err


def _ids(tmp_path, *ids) -> str:
    p = tmp_path / "ids.txt"
    p.write_text("".join(f"{i}\n" for i in ids))
    return str(p)


def _still_works(tmp_path, capsys, run, next_victim) -> None:
    """forget, verify, audit and inspect on the run whose first forgotten sample left the source."""
    assert _cli(capsys, "forget", run, "--ids", _ids(tmp_path, next_victim))[0] == 0
    code, err = _cli(capsys, "verify", run, "--oracles", "4")
    assert code in (0, 1), err  # a verdict, pass or fail; not an error
    code, err = _cli(capsys, "audit", run, "--attacks", "fgsm", "--max-samples", "16")
    assert code == 0, err
    assert _cli(capsys, "inspect", run)[0] == 0


@pytest.fixture
def image_folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    for split, n in (("train", 12), ("val", 4)):
        for c in range(3):
            for i in range(n):
                p = root / split / f"c{c}" / f"{i:03d}.png"
                p.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray((rng.random((8, 8, 3)) * 60 + 80 * c).astype(np.uint8)).save(p)
    cfg = tmp_path / "images.toml"
    cfg.write_text(f'[data]\nname = "imagefolder"\noptions = {{root = "{root}", size = 8}}\n'
                   f'[training]\nblocks = 3\nepochs_per_block = 1\n')
    return root, cfg


@pytest.mark.slow
def test_image_folder_forget_then_erase_the_file(image_folder, tmp_path, capsys):
    root, cfg = image_folder
    run = tmp_path / "run"
    assert _cli(capsys, "train", cfg, "--out", run)[0] == 0
    opened = open_run(run)
    trained = {stable_id(n): n for n in opened.data.source.train_names.values()}
    members = sorted(i for i in opened.block_of() if i in trained)
    victim, next_victim, bystander = members[0], members[5], members[9]
    assert _cli(capsys, "forget", run, "--ids", _ids(tmp_path, victim))[0] == 0
    (root / trained[victim]).unlink()  # the erasure the request asked for
    _still_works(tmp_path, capsys, run, next_victim)

    # any other change is refused, naming the file
    from PIL import Image

    Image.new("RGB", (8, 8), (1, 2, 3)).save(root / trained[bystander])
    code, err = _cli(capsys, "forget", run, "--ids", _ids(tmp_path, members[12]))
    assert code == 2 and trained[bystander] in err and "changed" in err
    (root / trained[bystander]).unlink()
    code, err = _cli(capsys, "audit", run, "--attacks", "fgsm", "--max-samples", "16")
    assert code == 2 and trained[bystander] in err and "missing" in err


def _table(path, rows) -> None:
    path.write_text("id,label,a,b,c\n" + "".join(f"{i},{y},{a:.4f},{b:.4f},{c:.4f}\n" for i, y, a, b, c in rows))


@pytest.mark.slow
def test_table_forget_then_erase_the_row(tmp_path, capsys):
    rng = np.random.default_rng(1)
    # features in [0, 1], as audit wants
    rows = [(1000 + 7 * i, i % 2, *(rng.random(3) * 0.4 + 0.5 * (i % 2))) for i in range(80)]
    table = tmp_path / "people.csv"
    _table(table, rows)
    cfg = tmp_path / "table.toml"
    cfg.write_text(f'[data]\nname = "table"\noptions = {{path = "{table}", test_fraction = 0.25}}\n'
                   f'[model]\nname = "mlp"\n[training]\nblocks = 3\nepochs_per_block = 1\n')
    run = tmp_path / "run"
    assert _cli(capsys, "train", cfg, "--out", run)[0] == 0
    members = sorted(open_run(run).block_of())
    victim, next_victim, bystander = members[0], members[4], members[8]
    assert _cli(capsys, "forget", run, "--ids", _ids(tmp_path, victim))[0] == 0
    _table(table, [r for r in rows if r[0] != victim])  # erase the forgotten row
    _still_works(tmp_path, capsys, run, next_victim)

    changed = [(i, y, a / 2 if i == bystander else a, b, c) for i, y, a, b, c in rows if i != victim]
    _table(table, changed)
    code, err = _cli(capsys, "forget", run, "--ids", _ids(tmp_path, members[12]))
    assert code == 2 and f"training sample id {bystander} changed" in err


def test_parquet_without_pyarrow_names_the_extra(tmp_path, monkeypatch):
    import sys

    from obliviate.data.readers.table import load_table
    from obliviate.errors import DataError

    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    (tmp_path / "t.parquet").write_bytes(b"PAR1")
    with pytest.raises(DataError, match=r"obliviate\[parquet\]"):
        load_table(path=tmp_path / "t.parquet")


def test_ids_survive_removing_other_rows(tmp_path):
    from obliviate.data.readers.table import load_table

    rows = [(50 + i, i % 3, i / 10, 1.0, 0.0) for i in range(30)]
    _table(tmp_path / "t.csv", rows)
    a = load_table(path=tmp_path / "t.csv")
    _table(tmp_path / "t.csv", rows[1:])
    b = load_table(path=tmp_path / "t.csv")
    both = set(b.train.ids.tolist()) | set(b.test.ids.tolist())
    assert both == (set(a.train.ids.tolist()) | set(a.test.ids.tolist())) - {50}
    assert set(b.test.ids.tolist()) == set(a.test.ids.tolist()) - {50}  # nobody moved across the split
