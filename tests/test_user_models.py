"""Models from the user's code: an import path in TOML (`model.factory`) or on the CLI (`--model PKG.MOD:FN
--model-option K=V`), recorded in the manifest so `open_run` and every command rebuild the model unaided."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest
import torch
from safetensors.torch import save_file

from obliviate._imports import resolve
from obliviate.cli import main
from obliviate.errors import ConfigError, StoreError, UnknownNameError
from obliviate.models import build_model
from obliviate.training import RunConfig, open_run, replay_block, train_run
from tests._helpers import store_files, tiny_config

PKG = "plugpkg_user_models"
FACTORY = f"{PKG}.models:build"

MODELS_PY = '''
from torch import nn


class Net(nn.Module):
    def __init__(self, input_shape, num_classes, width):
        super().__init__()
        c, h, w = input_shape
        self.conv = nn.Conv2d(c, width, 3, padding=1)
        self.head = nn.Linear(width * h * w, num_classes)

    def forward(self, x):
        return self.head(self.conv(x).relu().flatten(1))


def build(input_shape, num_classes, *, width=4):
    return Net(input_shape, num_classes, width)


def not_a_model(input_shape, num_classes):
    return "a string"


def no_shape():
    return Net((1, 8, 8), 10, 4)


SIZE = 3
'''


@pytest.fixture
def user_pkg(tmp_path, monkeypatch):
    """A user's package on sys.path (as PYTHONPATH would put it), dropped from sys.modules afterwards."""
    root = tmp_path / "userpath"
    (root / PKG).mkdir(parents=True)
    (root / PKG / "__init__.py").write_text("")
    (root / PKG / "models.py").write_text(textwrap.dedent(MODELS_PY))
    (root / PKG / "broken.py").write_text("raise RuntimeError('the user module is broken')\n")
    monkeypatch.syspath_prepend(str(root))
    yield root
    for name in [m for m in sys.modules if m == PKG or m.startswith(PKG + ".")]:
        del sys.modules[name]


def _forget_pkg(monkeypatch, root):
    """The package is no longer importable (another machine, another shell without PYTHONPATH)."""
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(root)])
    for name in [m for m in sys.modules if m == PKG or m.startswith(PKG + ".")]:
        del sys.modules[name]


# -- the resolver --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path, needle", [
    ("plugpkg_user_models.models.build", "not an import path: write it as package.module:attribute"),
    ("a b:c", "not an import path"),
    ("nosuchpkg_xyz.models:build", "cannot import module 'nosuchpkg_xyz'"),
    (f"{PKG}.nomodule:build", f"cannot import module '{PKG}.nomodule'"),
    (f"{PKG}.models:nope", f"module '{PKG}.models' has no attribute 'nope'"),
    (f"{PKG}.models:Net.nope", f"object '{PKG}.models.Net' has no attribute 'nope'"),
    (f"{PKG}.models:SIZE", "is not callable (it is of type int); name a function or class"),
    (f"{PKG}.broken:build", ("importing module 'plugpkg_user_models.broken' failed with RuntimeError: the "
                             "user module is broken; fix that module")),
])
def test_resolver_explains_each_failure_in_one_line(user_pkg, path, needle):
    with pytest.raises(ConfigError) as err:
        resolve(path)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_resolver_names_pythonpath_for_a_missing_package(user_pkg):
    with pytest.raises(ConfigError, match="add the folder that holds `nosuchpkg_xyz` to PYTHONPATH"):
        resolve("nosuchpkg_xyz.models:build")


def test_factory_contract_is_checked(user_pkg):
    with pytest.raises(ConfigError, match="returned a str, not a torch nn.Module"):
        build_model(f"{PKG}.models:not_a_model", (1, 8, 8), 10)
    with pytest.raises(ConfigError, match=r"must take \(input_shape, num_classes, \*\*options\)"):
        build_model(f"{PKG}.models:no_shape", (1, 8, 8), 10)
    with pytest.raises(ConfigError, match=r"does not take option\(s\) \['depth'\]; it takes: \['width'\]"):
        build_model(FACTORY, (1, 8, 8), 10, depth=2)
    with pytest.raises(UnknownNameError, match="or give your own factory as package.module:function"):
        build_model("no_such_model", (1, 8, 8), 10)


def test_factory_init_is_seeded_and_leaves_the_callers_generator_alone(user_pkg):
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a = build_model(FACTORY, (1, 8, 8), 10, seed=5, width=3)
    assert torch.equal(torch.random.get_rng_state(), before)
    b = build_model(FACTORY, (1, 8, 8), 10, seed=5, width=3)
    c = build_model(FACTORY, (1, 8, 8), 10, seed=6, width=3)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.conv.weight, c.conv.weight)


# -- config ----------------------------------------------------------------------------------------------------

def test_toml_factory_is_validated(tmp_path):
    cfg = RunConfig.from_dict({"model": {"factory": "mypkg.models:build", "options": {"width": 256}}})
    assert (cfg.model.name, cfg.model.factory, cfg.model.options) == ("custom", "mypkg.models:build", {"width": 256})
    assert RunConfig.from_dict(cfg.to_dict()) == cfg  # what the manifest stores reads back
    inline = tmp_path / "inline.toml"  # the one-line form of the issue
    inline.write_text('model = { factory = "mypkg.models:build", options = { width = 256 } }\n'
                      '[data]\nname = "digits"\n')
    assert RunConfig.from_toml(inline).model == cfg.model
    with pytest.raises(ConfigError, match="give either model.name .* or model.factory"):
        RunConfig.from_dict({"model": {"name": "lenet5", "factory": "mypkg.models:build"}})
    with pytest.raises(ConfigError, match="`model.factory`: 'mypkg.models' is not an import path"):
        RunConfig.from_dict({"model": {"factory": "mypkg.models"}})


def test_toml_factory_run_is_recorded_and_reopens_with_nothing_passed(user_pkg, tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text(f'[data]\nname = "digits"\n[model]\nfactory = "{FACTORY}"\noptions = {{ width = 3 }}\n'
                    f'[training]\nblocks = 3\nepochs_per_block = 1\n')
    run = train_run(RunConfig.from_toml(toml), tmp_path / "run")
    recorded = json.loads((tmp_path / "run" / "manifest.json").read_text())["config"]["model"]
    assert recorded == {"name": "custom", "factory": FACTORY, "options": {"width": 3}}
    again = open_run(tmp_path / "run")
    model = again.final_model()
    assert type(model).__name__ == "Net" and model.conv.out_channels == 3
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                   run.final_model().state_dict().values()))
    # the reopened run replays a block of the user's model bit for bit (one machine, one thread count: the
    # run was recorded in this process under the same conditions)
    update = replay_block(again, 2)
    stored = again.store.get(again.manifest["blocks"][1]["update"])
    assert set(update) == set(stored) and all(torch.equal(update[k], stored[k]) for k in stored)


def test_python_model_factory_still_needs_passing_again(tmp_path):
    cfg = tiny_config(training={"blocks": 2, "epochs_per_block": 1})

    def factory() -> torch.nn.Module:
        return build_model("mlp", (1, 8, 8), 10, seed=0, hidden=[8])

    train_run(cfg, tmp_path / "run", model_factory=factory)
    recorded = json.loads((tmp_path / "run" / "manifest.json").read_text())["config"]["model"]
    assert recorded["name"] == "custom" and recorded["factory"] == ""
    with pytest.raises(StoreError, match="pass model_factory= to open_run"):
        open_run(tmp_path / "run").final_model()
    assert open_run(tmp_path / "run", model_factory=factory).final_model()[1].out_features == 8


# -- the command line --------------------------------------------------------------------------------------------

@pytest.fixture
def toml(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text('[data]\nname = "digits"\n[model]\nname = "small_cnn"\n[training]\nblocks = 3\n'
                    'epochs_per_block = 1\n')
    return path


def _one_line_error(capsys, argv):
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return rc, err


def test_cli_trains_a_user_model_and_every_command_rebuilds_it(user_pkg, toml, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    assert main(["train", str(toml), "--out", str(out), "--model", FACTORY, "--model-option", "width=5"]) == 0
    recorded = json.loads((out / "manifest.json").read_text())["config"]["model"]
    assert recorded == {"name": "custom", "factory": FACTORY, "options": {"width": 5}}
    assert open_run(out).final_model().conv.out_channels == 5
    capsys.readouterr()
    assert main(["inspect", str(out)]) == 0
    assert f"model: {FACTORY} (width=5)" in capsys.readouterr().out
    victim = int(open_run(out).block_ids(2)[0])
    (tmp_path / "ids.txt").write_text(f"{victim}\n")
    assert main(["forget", str(out), "--ids", str(tmp_path / "ids.txt"), "--method", "exact"]) == 0
    assert victim in open_run(out).deleted_ids()
    capsys.readouterr()
    before = store_files(out)
    _forget_pkg(monkeypatch, user_pkg)  # the package is gone: a clear error naming the path and the fix
    with pytest.raises(ConfigError, match=rf"{out} was trained on the model factory '{FACTORY}', which cannot be "
                                          rf"used here: .*PYTHONPATH"):
        open_run(out)
    rc, err = _one_line_error(capsys, ["forget", out, "--ids", tmp_path / "ids.txt"])
    assert rc == 2 and "PYTHONPATH" in err and FACTORY in err
    assert store_files(out) == before


def test_cli_unimportable_factory_exits_2_and_creates_no_store(toml, tmp_path, capsys):
    out = tmp_path / "deeper" / "run"
    rc, err = _one_line_error(capsys, ["train", toml, "--out", out, "--model", "nosuchpkg_xyz.models:build"])
    assert rc == 2 and "cannot import module 'nosuchpkg_xyz'" in err and "PYTHONPATH" in err
    assert not (tmp_path / "deeper").exists()


@pytest.mark.parametrize("argv, needle", [
    (["--model-option", "width"], "write it as KEY=VALUE"),
    (["--model-option", "9x=1"], "write it as KEY=VALUE"),
    (["--model-option", "width=4", "--model-option", "width=5"], "is given twice"),
    (["--model", "mlp", "--model-option", "widths=[8]"], "does not take option(s) ['widths']; it takes: ['hidden']"),
    (["--model", "nonesuch"], "unknown model 'nonesuch'"),
])
def test_cli_bad_model_arguments_exit_2_with_no_store(toml, tmp_path, capsys, argv, needle):
    rc, err = _one_line_error(capsys, ["train", toml, "--out", tmp_path / "run", *argv])
    assert rc == 2 and needle in err
    assert not (tmp_path / "run").exists()


def test_cli_model_option_applies_to_zoo_models(toml, tmp_path):
    out = tmp_path / "run"
    assert main(["train", str(toml), "--out", str(out), "--model", "mlp", "--model-option", "hidden=[16, 8]"]) == 0
    recorded = json.loads((out / "manifest.json").read_text())["config"]["model"]
    assert recorded == {"name": "mlp", "factory": "", "options": {"hidden": [16, 8]}}
    model = open_run(out).final_model()
    assert [m.out_features for m in model if isinstance(m, torch.nn.Linear)] == [16, 8, 10]
    toml.write_text(toml.read_text().replace('name = "small_cnn"', 'name = "small_cnn"\noptions = { width = 4 }'))
    assert main(["train", str(toml), "--out", str(tmp_path / "r2"), "--model-option", "width=6"]) == 0
    assert open_run(tmp_path / "r2").config.model.options == {"width": 6}  # --model-option alone: merged


def test_changed_model_code_is_a_clear_error(user_pkg, toml, tmp_path):
    out = tmp_path / "run"
    assert main(["train", str(toml), "--out", str(out), "--model", FACTORY]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["config"]["model"]["options"] = {"width": 7}  # as if the factory's default had changed
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ConfigError, match="does not fit the run's stored weights"):
        open_run(out).final_model()


# -- audit of a user architecture from a checkpoint -------------------------------------------------------------

def test_audit_cli_on_a_user_architecture(user_pkg, tmp_path, capsys):
    model = build_model(FACTORY, (1, 8, 8), 10, seed=0, width=3)
    checkpoint = tmp_path / "m.safetensors"
    save_file(model.state_dict(), str(checkpoint))
    argv = ["audit", "--model", FACTORY, "--model-option", "width=3", "--checkpoint", str(checkpoint),
            "--attacks", "fgsm", "--max-samples", "20", "--json"]
    assert main(argv) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["models"] == [FACTORY] and payload["results"][0]["model"] == FACTORY
    rc, err = _one_line_error(capsys, [*argv[:4], "width=4", *argv[5:]])
    assert rc == 2 and "does not fit model" in err and "size mismatch" in err
    rc, err = _one_line_error(capsys, ["audit", "--model", "nosuchpkg_xyz.m:build", "--checkpoint", checkpoint,
                                       "--attacks", "fgsm"])
    assert rc == 2 and "PYTHONPATH" in err


def test_cli_trainer_by_import_path_is_recorded_and_rebuilt(toml, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", str(toml), "--out", str(out), "--trainer", "tests._trainers:SMOOTH"]) == 0
    recorded = json.loads((out / "manifest.json").read_text())["trainer"]
    assert recorded["path"] == "tests._trainers:SMOOTH" and recorded["name"] == "smoothed-adamw"
    assert open_run(out).trainer.name == "smoothed-adamw"  # nothing passed: rebuilt from the import path
    capsys.readouterr()
    rc, err = _one_line_error(capsys, ["train", toml, "--out", tmp_path / "r2", "--trainer", "nosuchpkg_xyz:t"])
    assert rc == 2 and "PYTHONPATH" in err and not (tmp_path / "r2").exists()
