"""A corpus of bad inputs for every command: one clear line, exit 2, no traceback, no store changed.

Every case runs the CLI in-process (``obliviate.cli.main``) on a fresh copy of one small trained run;
a handful run as real subprocesses. For each case: exit code 2, no ``Traceback`` and no "internal
error" on stderr, the expected fragment in the message, every file of the run byte-identical, no
leftover temporary file, and no folder created where a failed ``train`` was pointed.
"""

from __future__ import annotations

import errno
import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable

import pytest

from obliviate.cli import main
from tests._helpers import REPO, run_cli

DIGITS = '[data]\nname = "digits"\n'
TINY = DIGITS + "[training]\nblocks = 2\nepochs_per_block = 1\n"
MASTER_CFG = DIGITS + "[training]\nblocks = 3\nepochs_per_block = 1\n[store]\nsnapshot_every = 2\n"


def tree_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (the lock file included: it must not appear or change)."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@dataclass
class Ctx:
    tmp: Path
    run: Path
    half: Path
    manifest: dict = field(default_factory=dict)

    def file(self, name: str, content: str | bytes) -> str:
        p = self.tmp / name
        p.parent.mkdir(parents=True, exist_ok=True)
        (p.write_bytes if isinstance(content, bytes) else p.write_text)(content)
        return str(p)

    def table_config(self, content: str | bytes, suffix: str = ".csv") -> str:
        table = self.file("t" + suffix, content)
        return self.file("k.toml", f'[data]\nname = "table"\noptions = {{path = "{table}"}}\n')

    def order_config(self, order_file: str) -> str:
        return self.file("k.toml", TINY + f'partition = "order"\norder_file = "{order_file}"\n')

    def folder(self, name: str) -> str:
        p = self.tmp / name
        p.mkdir(parents=True, exist_ok=True)
        return str(p)

    def block_ids(self, k: int) -> list[int]:

        from obliviate.store import RunStore

        store = RunStore.open(self.run)
        t = store.get(store.manifest["partition"])
        ids, off = t["ids"], t["offsets"]
        return [int(i) for i in ids[int(off[k - 1]):int(off[k])]]

    def all_ids(self) -> list[int]:
        from obliviate.store import RunStore

        store = RunStore.open(self.run)
        return [int(i) for i in store.get(store.manifest["partition"])["ids"]]

    def validation_id(self) -> int:
        from obliviate.store import RunStore

        store = RunStore.open(self.run)
        return int(store.get(store.manifest["partition"])["validation"][0])

    def ids_file(self, ids) -> str:
        return self.file("ids.txt", "\n".join(map(str, ids)) + "\n")

    def set_manifest(self, path: Path, change: Callable[[dict], None]) -> None:
        m = json.loads((path / "manifest.json").read_text())
        change(m)
        (path / "manifest.json").write_text(json.dumps(m))

    def damage(self, block: int, what: str = "update", run: Path | None = None) -> str:
        run = run or self.run
        m = json.loads((run / "manifest.json").read_text())
        rel = m["blocks"][block - 1][what]["file"]
        p = run / rel
        data = bytearray(p.read_bytes())
        data[-1] ^= 0xFF
        p.write_bytes(bytes(data))
        return rel


@pytest.fixture(scope="module")
def master(tmp_path_factory):
    """ONE small trained digits run (3 blocks, 1 epoch) for the whole corpus, and a half-trained copy."""
    from obliviate.training import RunConfig, train_run

    root = tmp_path_factory.mktemp("corpus")
    (root / "master.toml").write_text(MASTER_CFG)
    cfg = RunConfig.from_toml(root / "master.toml")
    run = train_run(cfg, root / "run")
    half = root / "half"
    shutil.copytree(run.path, half)
    m = json.loads((half / "manifest.json").read_text())
    m["status"], m["blocks"] = "training", m["blocks"][:1]
    m.pop("metrics", None)
    (half / "manifest.json").write_text(json.dumps(m))
    return root


@pytest.fixture
def ctx(master, tmp_path):
    run, half = tmp_path / "run", tmp_path / "half"
    shutil.copytree(master / "run", run)
    shutil.copytree(master / "half", half)
    return Ctx(tmp_path, run, half)


def _bad_manifest(text: str) -> Callable[[Ctx], str]:
    def make(c: Ctx) -> str:
        (c.run / "manifest.json").write_text(text)
        return str(c.run)
    return make


def _manifest_with(change: Callable[[dict], None]) -> Callable[[Ctx], str]:
    def make(c: Ctx) -> str:
        c.set_manifest(c.run, change)
        return str(c.run)
    return make


# (case id, argv built from the context, fragment expected in stderr)
CASES: list[tuple[str, Callable[[Ctx], list[str]], str]] = [
    # ---- train: the config file
    ("train-config-is-folder", lambda c: ["train", c.folder("cfgdir"), "--out", str(c.tmp / "o")], "is a folder"),
    ("train-config-missing", lambda c: ["train", str(c.tmp / "nope.toml"), "--out", str(c.tmp / "o")], "does not exist"),
    ("train-config-empty", lambda c: ["train", c.file("e.toml", ""), "--out", str(c.tmp / "o")], "is empty"),
    ("train-config-comments-only", lambda c: ["train", c.file("e.toml", "# nothing\n"), "--out", str(c.tmp / "o")],
     "is empty"),
    ("train-config-binary", lambda c: ["train", c.file("b.toml", b"\x00\x01\x02PK\x03"), "--out", str(c.tmp / "o")],
     "binary"),
    ("train-config-utf16", lambda c: ["train", c.file("u.toml", TINY.encode("utf-16")), "--out", str(c.tmp / "o")],
     "UTF-16"),
    ("train-config-latin1", lambda c: ["train", c.file("l.toml", '# caf\xe9\n[data]\nname = "digits"\n'.encode("latin-1")),
                                      "--out", str(c.tmp / "o")], "not UTF-8"),
    ("train-config-no-data", lambda c: ["train", c.file("n.toml", "[training]\nblocks = 2\n"), "--out", str(c.tmp / "o")],
     "[data]"),
    ("train-config-data-without-name", lambda c: ["train", c.file("n.toml", "[data]\nvalidation_fraction = 0.1\n"),
                                                  "--out", str(c.tmp / "o")], "[data]"),
    ("train-config-bad-toml", lambda c: ["train", c.file("t.toml", "[training\nblocks = 3"), "--out", str(c.tmp / "o")],
     "not valid TOML"),
    ("train-config-unknown-key", lambda c: ["train", c.file("k.toml", DIGITS + "[training]\nblockz = 3\n"),
                                            "--out", str(c.tmp / "o")], "blockz"),
    ("train-config-unknown-section", lambda c: ["train", c.file("k.toml", DIGITS + "[trainign]\n"),
                                                "--out", str(c.tmp / "o")], "unknown section"),
    ("train-blocks-5000", lambda c: ["train", c.file("k.toml", DIGITS + "[training]\nblocks = 5000\n"),
                                     "--out", str(c.tmp / "o")], "training.blocks"),
    ("train-blocks-0", lambda c: ["train", c.file("k.toml", DIGITS + "[training]\nblocks = 0\n"),
                                  "--out", str(c.tmp / "o")], "training.blocks"),
    ("train-blocks-huge", lambda c: ["train", c.file("k.toml", DIGITS + "[training]\nblocks = 99999999999999\n"),
                                     "--out", str(c.tmp / "o")], "training.blocks"),
    ("train-lr-negative", lambda c: ["train", c.file("k.toml", DIGITS + "[training]\nlr = -1\n"),
                                     "--out", str(c.tmp / "o")], "training.lr"),
    ("train-lr-nan", lambda c: ["train", c.file("k.toml", DIGITS + "[training]\nlr = nan\n"),
                                "--out", str(c.tmp / "o")], "training.lr"),
    ("train-epochs-string", lambda c: ["train", c.file("k.toml", DIGITS + '[training]\nepochs_per_block = "many"\n'),
                                       "--out", str(c.tmp / "o")], "epochs_per_block"),
    ("train-batch-0", lambda c: ["train", c.file("k.toml", DIGITS + "[training]\nbatch_size = 0\n"),
                                 "--out", str(c.tmp / "o")], "batch_size"),
    ("train-validation-1.5", lambda c: ["train", c.file("k.toml", '[data]\nname = "digits"\nvalidation_fraction = 1.5\n'),
                                        "--out", str(c.tmp / "o")], "validation_fraction"),
    ("train-canary-block-99", lambda c: ["train", c.file("k.toml", TINY + "[canary]\nblock = 99\n"),
                                         "--out", str(c.tmp / "o")], "canary.block"),
    ("train-unknown-dataset", lambda c: ["train", c.file("k.toml", '[data]\nname = "imagenet"\n'),
                                         "--out", str(c.tmp / "o")], "unknown dataset"),
    ("train-unknown-dataset-option", lambda c: ["train", c.file("k.toml", '[data]\nname = "digits"\noptions = {zoom = 2}\n'),
                                                "--out", str(c.tmp / "o")], "does not take"),
    ("train-missing-data-files", lambda c: ["train", c.file("k.toml", f'[data]\nname = "mnist"\noptions = {{root = "{c.tmp / "nowhere"}"}}\n'),
                                            "--out", str(c.tmp / "o")], "nowhere"),
    ("train-table-without-path", lambda c: ["train", c.file("k.toml", '[data]\nname = "table"\n'),
                                            "--out", str(c.tmp / "o")], "data.options.path"),
    ("train-table-utf16", lambda c: ["train", c.table_config("id,label,a\n1,0,0.5\n".encode("utf-16")),
                                     "--out", str(c.tmp / "o")], "UTF-16"),
    ("train-table-no-id-column", lambda c: ["train", c.table_config("key,label,a\n1,0,0.5\n"),
                                            "--out", str(c.tmp / "o")], "id_column"),
    ("train-parquet-without-pyarrow-or-broken", lambda c: ["train", c.table_config(b"not parquet", ".parquet"),
                                                           "--out", str(c.tmp / "o")], "arquet"),
    ("train-order-file-etc-passwd", lambda c: ["train", c.order_config(c.file("passwd", "root:x:0:0:root:/root:/bin/bash\n")),
                                               "--out", str(c.tmp / "o")], "line 1"),
    ("train-order-file-folder", lambda c: ["train", c.order_config(c.folder("od")),
                                           "--out", str(c.tmp / "o")], "is a folder"),
    ("train-order-file-empty", lambda c: ["train", c.order_config(c.file("o.txt", "")),
                                          "--out", str(c.tmp / "o")], "holds no ids"),
    ("train-order-file-missing", lambda c: ["train", c.order_config(str(c.tmp / "gone.txt")),
                                            "--out", str(c.tmp / "o")], "does not exist"),
    ("train-order-file-incomplete", lambda c: ["train", c.order_config(c.file("o.txt", "1\n2\n")),
                                               "--out", str(c.tmp / "o")], "every training id"),
    ("train-out-is-file", lambda c: ["train", c.file("k.toml", TINY), "--out", c.file("taken", "x")], "existing file"),
    ("train-out-under-file", lambda c: ["train", c.file("k.toml", TINY), "--out", c.file("taken", "x") + "/run"],
     "is a file"),
    ("train-out-existing-run", lambda c: ["train", c.file("k.toml", TINY), "--out", str(c.run)], "already holds a run"),
    ("train-resume-not-a-run", lambda c: ["train", c.file("k.toml", TINY), "--out", c.folder("empty"), "--resume"],
     "not an obliviate run"),
    ("train-resume-other-config", lambda c: ["train", c.file("k.toml", TINY), "--out", str(c.half), "--resume"],
     "config the run was started with"),
    ("train-wait-negative", lambda c: ["train", c.file("k.toml", TINY), "--out", str(c.tmp / "o"), "--wait", "-1"],
     "--wait"),
    ("train-wait-nan", lambda c: ["train", c.file("k.toml", TINY), "--out", str(c.tmp / "o"), "--wait", "nan"], "--wait"),
    ("train-wait-word", lambda c: ["train", c.file("k.toml", TINY), "--out", str(c.tmp / "o"), "--wait", "soon"], "--wait"),
    ("train-no-out", lambda c: ["train", c.file("k.toml", TINY)], "--out"),
    ("train-resume-damaged-store", lambda c: (c.damage(1, "optimizer", c.half), ["train", c.file("k.toml", MASTER_CFG),
                                                                                   "--out", str(c.half), "--resume"])[1],
     "damaged"),
    # ---- inspect
    ("inspect-missing", lambda c: ["inspect", str(c.tmp / "nothing")], "not an obliviate run"),
    ("inspect-a-file", lambda c: ["inspect", c.file("f.txt", "x")], "not an obliviate run"),
    ("inspect-empty-folder", lambda c: ["inspect", c.folder("empty")], "not an obliviate run"),
    ("inspect-manifest-truncated", lambda c: ["inspect", _bad_manifest('{"format": "obliviate-run", "form')(c)],
     "not valid JSON"),
    ("inspect-manifest-binary", lambda c: ["inspect", _bad_manifest("\x00\x00\x00")(c)], "not valid JSON"),
    ("inspect-manifest-other-format", lambda c: ["inspect", _bad_manifest('{"format": "zip"}')(c)], "not an obliviate run"),
    ("inspect-manifest-version-99", lambda c: ["inspect", _manifest_with(lambda m: m.update(format_version=99))(c)],
     "version 99"),
    ("inspect-manifest-is-folder", lambda c: ["inspect", (lambda p: (p.mkdir(parents=True), str(p.parent))[1])(c.tmp / "mf" / "manifest.json")],
     "not an obliviate run"),
    ("inspect-unknown-flag", lambda c: ["inspect", str(c.run), "--fast"], "unrecognized"),
    # ---- forget: the ids file
    ("forget-ids-folder", lambda c: ["forget", str(c.run), "--ids", c.folder("idsdir")], "is a folder"),
    ("forget-ids-missing", lambda c: ["forget", str(c.run), "--ids", str(c.tmp / "none.txt")], "does not exist"),
    ("forget-ids-empty", lambda c: ["forget", str(c.run), "--ids", c.file("e.txt", "")], "holds no ids"),
    ("forget-ids-comments-only", lambda c: ["forget", str(c.run), "--ids", c.file("e.txt", "# none\n\n")], "holds no ids"),
    ("forget-ids-binary", lambda c: ["forget", str(c.run), "--ids", c.file("b.bin", bytes(range(256)))], "binary"),
    ("forget-ids-utf16", lambda c: ["forget", str(c.run), "--ids", c.file("u.txt", "1\n2\n".encode("utf-16"))], "UTF-16"),
    ("forget-ids-latin1", lambda c: ["forget", str(c.run), "--ids", c.file("l.txt", "1 # caf\xe9\n".encode("latin-1"))],
     "not UTF-8"),
    ("forget-ids-word", lambda c: ["forget", str(c.run), "--ids", c.file("w.txt", "12\nsecret-token\n")], "line 2"),
    ("forget-ids-float", lambda c: ["forget", str(c.run), "--ids", c.file("w.txt", "1.5\n")], "line 1"),
    ("forget-ids-2pow70", lambda c: ["forget", str(c.run), "--ids", c.file("w.txt", f"{2**70}\n")], "64-bit"),
    ("forget-ids-unknown", lambda c: ["forget", str(c.run), "--ids", c.ids_file([99999])], "not training samples"),
    ("forget-ids-negative", lambda c: ["forget", str(c.run), "--ids", c.ids_file([-3])], "not training samples"),
    ("forget-ids-validation", lambda c: ["forget", str(c.run), "--ids", c.ids_file([c.validation_id()])],
     "not training samples"),
    ("forget-all-ids", lambda c: ["forget", str(c.run), "--ids", c.ids_file(c.all_ids())], "--force"),
    ("forget-60-percent", lambda c: ["forget", str(c.run), "--ids", c.ids_file(c.all_ids()[: int(len(c.all_ids()) * 0.6)])],
     "--force"),
    ("forget-whole-block", lambda c: ["forget", str(c.run), "--ids", c.ids_file(c.block_ids(2))], "--force"),
    ("forget-wait-negative", lambda c: ["forget", str(c.run), "--ids", c.ids_file([c.block_ids(1)[0]]), "--wait", "-1"],
     "--wait"),
    ("forget-bad-method", lambda c: ["forget", str(c.run), "--ids", c.ids_file([1]), "--method", "magic"], "--method"),
    ("forget-bad-rule", lambda c: ["forget", str(c.run), "--ids", c.ids_file([1]), "--rule", "never"], "--rule"),
    ("forget-min-affected-negative", lambda c: ["forget", str(c.run), "--ids", c.ids_file([1]), "--min-affected", "-1"],
     "--min-affected"),
    ("forget-max-affected-word", lambda c: ["forget", str(c.run), "--ids", c.ids_file([1]), "--max-affected", "x"],
     "--max-affected"),
    ("forget-no-ids", lambda c: ["forget", str(c.run)], "--ids"),
    ("forget-run-missing", lambda c: ["forget", str(c.tmp / "norun"), "--ids", c.ids_file([1])], "not an obliviate run"),
    ("forget-half-trained", lambda c: ["forget", str(c.half), "--ids", c.ids_file([c.block_ids(1)[0]])], "--resume"),
    ("forget-damaged-unread-block", lambda c: (c.damage(1), ["forget", str(c.run), "--ids", c.ids_file([c.block_ids(3)[0]])])[1],
     "b0001-update"),
    ("forget-missing-payload", lambda c: ((c.run / c.damage(1, "optimizer")).unlink(),
                                          ["forget", str(c.run), "--ids", c.ids_file([c.block_ids(3)[0]])])[1], "is missing"),
    ("forget-manifest-truncated", lambda c: ["forget", _bad_manifest("{")(c), "--ids", c.ids_file([1])], "not valid JSON"),
    ("forget-partition-missing", lambda c: ["forget", _manifest_with(lambda m: m.pop("partition"))(c), "--ids", c.ids_file([1])],
     "damaged"),
    ("forget-data-changed", lambda c: ["forget", _manifest_with(lambda m: m["config"]["data"].update(name="digits-60k"))(c),
                                       "--ids", c.ids_file([1])], "differs from the data"),
    # ---- verify
    ("verify-oracles-1", lambda c: ["verify", str(c.run), "--oracles", "1"], "--oracles"),
    ("verify-oracles-2", lambda c: ["verify", str(c.run), "--oracles", "2"], "always be FAIL"),
    ("verify-oracles-100000", lambda c: ["verify", str(c.run), "--oracles", "100000"], "--oracles"),
    ("verify-oracles-word", lambda c: ["verify", str(c.run), "--oracles", "many"], "--oracles"),
    ("verify-no-requests", lambda c: ["verify", str(c.run), "--oracles", "4"], "no forget requests"),
    ("verify-half-trained", lambda c: ["verify", str(c.half), "--oracles", "4"], "--resume"),
    ("verify-missing-run", lambda c: ["verify", str(c.tmp / "none")], "not an obliviate run"),
    ("verify-wait-negative", lambda c: ["verify", str(c.run), "--wait", "-0.5"], "--wait"),
    ("verify-request-word", lambda c: ["verify", str(c.run), "--request", "latest"], "--request"),
    ("verify-damaged-store", lambda c: (c.damage(2), ["verify", str(c.run), "--oracles", "4"])[1], "damaged"),
    # ---- audit
    ("audit-damaged-store", lambda c: (c.damage(1), ["audit", str(c.run), "--attacks", "fgsm"])[1], "damaged"),
    ("audit-unknown-attack", lambda c: ["audit", str(c.run), "--attacks", "laser"], "laser"),
    ("audit-unknown-attack-in-commas", lambda c: ["audit", str(c.run), "--attacks", "fgsm,laser"], "laser"),
    ("audit-bad-attack-setting", lambda c: ["audit", str(c.run), "--attacks", "fgsm:colour=red"], "colour"),
    ("audit-half-trained", lambda c: ["audit", str(c.half), "--attacks", "fgsm"], "--resume"),
    ("audit-eps-negative", lambda c: ["audit", str(c.run), "--eps", "-1"], "--eps"),
    ("audit-eps-inf", lambda c: ["audit", str(c.run), "--eps", "inf"], "--eps"),
    ("audit-max-samples-0", lambda c: ["audit", str(c.run), "--max-samples", "0"], "--max-samples"),
    ("audit-max-samples-huge", lambda c: ["audit", str(c.run), "--max-samples", "1000000000"], "--max-samples"),
    ("audit-threads-negative", lambda c: ["audit", str(c.run), "--threads", "-1"], "--threads"),
    ("audit-threads-absurd", lambda c: ["audit", str(c.run), "--threads", "100000"], "--threads"),
    ("audit-checkpoint-missing", lambda c: ["audit", "--model", "small_cnn", "--checkpoint", str(c.tmp / "m.safetensors"),
                                            "--attacks", "fgsm"], "does not exist"),
    ("audit-checkpoint-folder", lambda c: ["audit", "--model", "small_cnn", "--checkpoint", c.folder("ck"),
                                           "--attacks", "fgsm"], "does not exist"),
    ("audit-checkpoint-garbage", lambda c: ["audit", "--model", "small_cnn", "--checkpoint", c.file("g.safetensors", b"\xff" * 64),
                                            "--attacks", "fgsm"], "safetensors"),
    ("audit-model-without-checkpoint", lambda c: ["audit", "--model", "small_cnn", "--attacks", "fgsm"], "--checkpoint"),
    ("audit-run-and-model", lambda c: ["audit", str(c.run), "--model", "small_cnn", "--checkpoint", "x", "--attacks", "fgsm"],
     "not both"),
    ("audit-unknown-dataset", lambda c: ["audit", "--model", "small_cnn", "--checkpoint", c.file("g.safetensors", b"x"),
                                         "--dataset", "imagenet", "--attacks", "fgsm"], "unknown dataset"),
    ("audit-missing-run", lambda c: ["audit", str(c.tmp / "none"), "--attacks", "fgsm"], "not an obliviate run"),
    # ---- demo and the top level
    ("demo-workdir-is-file", lambda c: ["demo", "--workdir", c.file("wd", "x")], "is a file"),
    ("demo-unknown-flag", lambda c: ["demo", "--fast"], "unrecognized"),
    ("demo-threads-negative", lambda c: ["demo", "--threads", "-1"], "--threads"),
    ("top-no-command", lambda c: [], "COMMAND"),
    ("top-unknown-command", lambda c: ["unlearn"], "invalid choice"),
]


def _run_main(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code if isinstance(exc.code, int) else 2
    return code, capsys.readouterr().err


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_error_and_changes_nothing(case, ctx, capsys):
    name, make, fragment = case
    argv = make(ctx)
    before = {p: tree_hashes(p) for p in (ctx.run, ctx.half)}
    others = sorted(p.name for p in ctx.tmp.iterdir())
    code, err = _run_main(argv, capsys)
    assert code == 2, (name, code, err)
    assert "Traceback" not in err and "internal error" not in err, err
    assert fragment in err, (fragment, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and "error" in lines[-1], err  # the last line is the one naming problem and fix
    for p in (ctx.run, ctx.half):
        assert tree_hashes(p) == before[p], f"{name} changed {p}"
    assert sorted(p.name for p in ctx.tmp.iterdir()) == others, "a failed command left a file or folder behind"
    assert not list(ctx.tmp.rglob("*.tmp*")), "a temporary file was left behind"
    if name == "train-order-file-etc-passwd":
        assert "root:" not in err  # never echo a file's content


def test_corpus_is_large_and_covers_every_command():
    commands = {c[0].split("-")[0] for c in CASES}
    assert len(CASES) >= 60
    assert {"train", "inspect", "forget", "verify", "audit", "demo"} <= commands


@pytest.mark.parametrize("argv,fragment", [  # one runs in the quick tier; each starts a fresh interpreter
    pytest.param(["train", "configs", "--out", "/tmp/never-made-by-obliviate-tests"], "is a folder",
                 id="train-config-folder", marks=pytest.mark.slow),
    pytest.param(["forget", "tests", "--ids", "README.md"], "expected one integer sample id", id="forget-not-a-run"),
    pytest.param(["verify", "tests", "--oracles", "0"], "--oracles", id="verify-oracles-0", marks=pytest.mark.slow),
])
def test_bad_input_in_a_real_process(argv, fragment):
    proc = run_cli(*argv)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and fragment in proc.stderr
    assert not Path("/tmp/never-made-by-obliviate-tests").exists()


@pytest.mark.slow
def test_version_and_every_help_in_a_real_process():
    proc = run_cli("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("obliviate ") and "torch" in proc.stdout
    for cmd in ("train", "inspect", "forget", "verify", "audit", "demo"):
        proc = run_cli(cmd, "--help")
        assert proc.returncode == 0, proc.stderr
        text = proc.stdout
        assert f"usage: obliviate {cmd}" in text and "``" not in text and "Traceback" not in proc.stderr
        assert len(text.split("\n\n")[1].strip()) > 20, f"{cmd} --help has no description"


def test_full_disk_during_forget_is_exit_2_and_leaves_no_file(ctx, capsys, monkeypatch):
    """Writes fail with ENOSPC half way through the first payload: exit 2, store byte-identical."""
    import os
    import types

    from obliviate.store import files

    def full(fd, view):  # the payload writer's os.write: a few bytes land, then the disk is full
        os.write(fd, bytes(memoryview(view)[:7]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files, "os", types.SimpleNamespace(**{**vars(os), "write": full}))
    before = tree_hashes(ctx.run)
    code, err = _run_main(["forget", str(ctx.run), "--ids", ctx.ids_file([ctx.block_ids(3)[0]]), "--no-guard"], capsys)
    assert code == 2 and "no space left" in err and "Traceback" not in err, err
    assert tree_hashes(ctx.run) == before


def test_read_only_store(ctx, capsys, monkeypatch):
    """As for a user without write permission (tests run as root, so the refusal is simulated at open)."""
    import os

    from obliviate.store import files

    real = os.open

    def denied(path, flags, *a):
        if str(path).endswith(".lock") and flags & (os.O_RDWR | os.O_WRONLY):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path, flags, *a)

    monkeypatch.setattr(files.os, "open", denied)
    before = tree_hashes(ctx.run)
    code, err = _run_main(["inspect", str(ctx.run)], capsys)
    assert code == 0, err
    code, err = _run_main(["forget", str(ctx.run), "--ids", ctx.ids_file([ctx.block_ids(3)[0]])], capsys)
    assert code == 2 and "read-only" in err and "Traceback" not in err, err
    assert tree_hashes(ctx.run) == before


def test_internal_error_says_so_and_where_to_report(capsys, monkeypatch):
    import obliviate.cli.inspect_cmd as inspect_cmd

    def boom(args):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(inspect_cmd, "run", boom)
    code, err = _run_main(["inspect", str(REPO)], capsys)
    assert code == 3 and "internal error (ZeroDivisionError" in err and "report it" in err
    assert "Traceback" not in err
