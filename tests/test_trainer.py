"""The trainer seam and a user's torch Dataset: bit-exact replay, `exact` == retrain from scratch, bad inputs.

Bit-for-bit claims hold on one machine with one thread count (the run is trained, replayed and
unlearned in the same process).
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from obliviate.data import DatasetSplits, load_digits
from obliviate.data.torch_dataset import from_torch_dataset
from obliviate.errors import ConfigError
from obliviate.models import build_model
from obliviate.training import RunConfig, open_run, replay_block, train_run
from obliviate.training.trainer import Trainer
from obliviate.unlearning import forget
from obliviate.unlearning.sisa import SisaConfig, SisaEnsemble
from tests._helpers import retrain_from_scratch
from tests._trainers import CLIPPED, SMOOTH, NoisyDigits, adamw, smoothed_loss

CFG = RunConfig.from_dict({"training": {"blocks": 4, "epochs_per_block": 1, "lr": 0.003},
                           "store": {"snapshot_every": 2}})


def _stored_updates_equal(run, k, update) -> bool:
    stored = run.store.get(run.manifest["blocks"][k - 1]["update"])
    return stored.keys() == update.keys() and all(torch.equal(update[n], stored[n]) for n in stored)


@pytest.fixture(scope="module")
def smooth_master(tmp_path_factory):
    return train_run(CFG, tmp_path_factory.mktemp("smooth") / "run", trainer="tests._trainers:SMOOTH").path


@pytest.fixture
def smooth_run(smooth_master, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(smooth_master, dst)
    return open_run(dst)  # the trainer is rebuilt from the import path in the manifest


def test_manifest_records_the_trainer_and_device(smooth_master):
    m = json.loads((smooth_master / "manifest.json").read_text())
    assert m["trainer"]["path"] == "tests._trainers:SMOOTH" and m["trainer"]["name"] == "smoothed-adamw"
    assert m["trainer"]["loss"] == "tests._trainers.smoothed_loss"
    assert m["config"]["training"]["device"] == "cpu" and m["determinism"]["device"] == "cpu"


def test_replaying_any_block_of_a_user_trainer_run_is_bit_exact(smooth_run):
    assert smooth_run.trainer.name == "smoothed-adamw"
    assert isinstance(smooth_run.trainer.make_optimizer(torch.nn.Linear(2, 2), smooth_run.config.training),
                      torch.optim.AdamW)
    for k in range(1, smooth_run.num_blocks + 1):
        assert _stored_updates_equal(smooth_run, k, replay_block(smooth_run, k, strict=True)), k


def test_exact_with_a_user_trainer_equals_retraining_from_scratch_bit_for_bit(smooth_run):
    u = [int(smooth_run.block_ids(2)[3]), int(smooth_run.block_ids(3)[0]), int(smooth_run.block_ids(3)[1])]
    # the oracle's loop is written in tests/_helpers.py: smoothed loss summed over the kept samples of each
    # recorded minibatch over its recorded size, AdamW with weight decay, the run's schedule
    oracle = retrain_from_scratch(smooth_run, set(u), loss=smoothed_loss, optimizer=adamw)
    result = forget(smooth_run, u, method="exact")
    assert result.outcome == "exact" and result.d == 2
    final = smooth_run.final_model().state_dict()
    assert all(torch.equal(final[n], oracle[n]) for n in oracle)


def test_resume_continues_with_the_recorded_trainer(smooth_master, tmp_path):
    """An interrupted run resumed without passing its trainer (rebuilt from the recorded import path)
    finishes with the same chain; another trainer is refused before anything changes."""
    dst = tmp_path / "run"
    shutil.copytree(smooth_master, dst)
    m = json.loads((dst / "manifest.json").read_text())
    m["status"], m["blocks"] = "training", m["blocks"][:2]
    m.pop("metrics", None)
    (dst / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ConfigError, match="is not the one"):
        train_run(CFG, dst, resume=True, trainer=CLIPPED)
    train_run(CFG, dst, resume=True)
    chain = [json.loads((p / "manifest.json").read_text())["blocks"] for p in (dst, smooth_master)]
    assert [b["update"]["sha256"] for b in chain[0]] == [b["update"]["sha256"] for b in chain[1]]


def test_a_step_function_trainer_replays_bit_exactly(tmp_path):
    run = train_run(CFG.replace(training={"blocks": 2}), tmp_path / "run", trainer=CLIPPED)
    assert run.manifest["trainer"]["step"] == "tests._trainers.clipped_step"
    with pytest.raises(ConfigError, match="given in Python.*pass trainer= to open_run"):
        open_run(run.path)
    with pytest.raises(ConfigError, match="is not the one"):
        open_run(run.path, trainer=SMOOTH)
    again = open_run(run.path, trainer=CLIPPED)
    assert _stored_updates_equal(again, 2, replay_block(again, 2, strict=True))


def test_sisa_trains_and_forgets_with_the_same_user_trainer(tmp_path):
    train = load_digits(seed=0).train.take(torch.arange(240))
    cfg = SisaConfig(shards=2, slices=2, epochs=2, seed=1)

    def factory():
        return build_model("small_cnn", (1, 8, 8), 10)

    ens = SisaEnsemble.train(cfg, train, factory, trainer=SMOOTH, store_dir=tmp_path / "sisa")
    victim = int(ens.assignment[0][1][0])
    ens.forget([victim])
    kept = train.ids[train.ids != victim]
    oracle = SisaEnsemble.train(cfg, train.select(kept), factory, trainer=SMOOTH, assignment=ens.assignment)
    assert all(torch.equal(a.state_dict()[n], b.state_dict()[n]) for a, b in zip(ens.models, oracle.models)
               for n in a.state_dict())
    with pytest.raises(ConfigError, match="pass trainer="):
        SisaEnsemble.load(tmp_path / "sisa", factory)


# -- a user's torch Dataset --------------------------------------------------------------------------------

def _noisy_splits() -> DatasetSplits:
    digits = load_digits(seed=0)
    tr, te = digits.train.take(torch.arange(480)), digits.test
    return DatasetSplits(from_torch_dataset(NoisyDigits(tr.x, tr.y), ids=tr.ids.tolist(), num_classes=10),
                         from_torch_dataset(NoisyDigits(te.x, te.y), id_of=lambda i: int(te.ids[i]), num_classes=10))


@pytest.mark.slow
def test_a_torch_dataset_with_a_random_transform_trains_and_replays_bit_exactly(tmp_path):
    splits = _noisy_splits()
    cfg = CFG.replace(training={"blocks": 3})
    run = train_run(cfg, tmp_path / "run", splits=splits)
    reopened = open_run(run.path, splits=_noisy_splits())
    for k in range(1, 4):
        assert _stored_updates_equal(reopened, k, replay_block(reopened, k, strict=True)), k
    # the transform is drawn at training time: the same run on the fixed views alone differs
    plain = DatasetSplits(splits.train.take(torch.arange(len(splits.train))).with_data(splits.train.x, splits.train.y),
                          splits.test)
    other = train_run(cfg, tmp_path / "plain", splits=plain)
    assert not _stored_updates_equal(other, 1, run.store.get(run.manifest["blocks"][0]["update"]))


@pytest.mark.slow
def test_deleting_from_a_torch_dataset_leaves_the_other_transforms_alone(tmp_path):
    """`exact` and `retrain` (which replays from block 1) agree: each sample's transform is seeded by its
    own id, so leaving a deleted sample out changes nobody else's."""
    cfg = CFG.replace(training={"blocks": 3})
    master = train_run(cfg, tmp_path / "run", splits=_noisy_splits()).path
    finals = {}
    for method in ("exact", "retrain"):
        dst = tmp_path / method
        shutil.copytree(master, dst)
        run = open_run(dst, splits=_noisy_splits())
        forget(run, [int(run.block_ids(2)[0]), int(run.block_ids(2)[5])], method=method)
        finals[method] = run.final_model().state_dict()
    assert all(torch.equal(finals["exact"][n], finals["retrain"][n]) for n in finals["exact"])


def test_from_torch_dataset_refuses_bad_ids():
    ds = NoisyDigits(torch.zeros(3, 1, 8, 8), torch.tensor([0, 1, 2]))
    with pytest.raises(Exception, match="one id per sample"):
        from_torch_dataset(ds, ids=[1, 2])
    with pytest.raises(Exception, match="unique"):
        from_torch_dataset(ds, ids=[1, 1, 2])
    with pytest.raises(Exception, match="either as ids= or as id_of="):
        from_torch_dataset(ds, ids=[1, 2, 3], id_of=lambda i: i)


# -- bad trainer inputs: one clear line, nothing stored ----------------------------------------------------

def _scalar_loss(logits, y):
    return torch.nn.functional.cross_entropy(logits, y)


@pytest.mark.parametrize("trainer, message", [
    (Trainer(loss=_scalar_loss), r"one loss per sample, but got a scalar .*reduction=\"none\""),
    (Trainer(loss=lambda logits, y: logits), r"shape \(2,\), one loss per sample, but got shape \(2, 10\)"),
    (Trainer(loss=lambda logits, y: logits.sum(1, keepdim=True)), r"but got shape \(2, 1\)"),
    (Trainer(loss=lambda logits, y: y), r"float tensor .*torch.int64"),
    (Trainer(optimizer=lambda params: "sgd"), r"optimizer factory to return a torch.optim.Optimizer, but got str"),
    ("tests._trainers:nope", r"has no attribute 'nope'"),
    ("tests._trainers", r"not an import path: write it as package.module:attribute, e.g. mypkg.training"),
    (42, r"Trainer or an import path"),
])
def test_bad_trainers_are_one_clear_error_and_store_nothing(tmp_path, trainer, message):
    with pytest.raises(ConfigError, match=message):
        train_run(CFG, tmp_path / "run", trainer=trainer)
    assert not (tmp_path / "run").exists()


def test_a_bad_step_function_is_named():
    with pytest.raises(ConfigError, match="either loss= .* or step="):
        Trainer(loss=smoothed_loss, step=lambda *a: 0.0)
    with pytest.raises(ConfigError, match="`loss` to be callable"):
        Trainer(loss="cross_entropy")  # type: ignore[arg-type]


def test_a_step_returning_per_sample_losses_is_refused(tmp_path):
    def step(model, optimizer, batch, info):
        return smoothed_loss(model(batch.x), batch.y)

    with pytest.raises(ConfigError, match=r"step function to return the minibatch loss .* of shape \("):
        train_run(CFG.replace(training={"blocks": 1}), tmp_path / "run", trainer=Trainer(step=step))


def test_device_setting_is_checked():
    with pytest.raises(ConfigError, match="training.device"):
        CFG.replace(training={"device": "tpu"})
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device is available"):
            train_run(CFG.replace(training={"device": "cuda"}), "/nonexistent/never-made")


@pytest.mark.slow
def test_the_python_examples_of_docs_training_run(tmp_path, monkeypatch):
    """Every ```python block of docs/training.md runs as written (```py blocks are illustrations)."""
    import re

    from tests._helpers import REPO

    text = (REPO / "docs" / "training.md").read_text()
    blocks = re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)
    assert len(blocks) == 3
    monkeypatch.chdir(tmp_path)
    for code in blocks:
        exec(compile(code, "docs/training.md", "exec"), {"__name__": "docs_example"})


def test_cli_inspect_names_the_trainer_and_forget_refuses_a_python_trainer(smooth_master, tmp_path, capsys):
    from obliviate.cli import main
    from tests._helpers import store_files

    assert main(["inspect", str(smooth_master)]) == 0
    assert "trainer: smoothed-adamw (tests._trainers:SMOOTH); device: cpu" in capsys.readouterr().out
    run = train_run(CFG.replace(training={"blocks": 1}), tmp_path / "run", trainer=CLIPPED)
    ids = tmp_path / "ids.txt"
    ids.write_text(f"{int(run.block_ids(1)[0])}\n")
    before = store_files(run.path)
    assert main(["forget", str(run.path), "--ids", str(ids), "--method", "exact"]) == 2
    err = capsys.readouterr().err
    assert "given in Python" in err and "import path" in err and len(err.strip().splitlines()) == 1
    assert store_files(run.path) == before


def test_trainer_named_in_the_config(tmp_path):
    """`training.trainer` in TOML names the user's trainer by import path: recorded, rebuilt by open_run."""
    from obliviate.training import RunConfig, open_run, train_run

    cfg = RunConfig.from_dict({"training": {"blocks": 2, "epochs_per_block": 1, "trainer": "tests._trainers:SMOOTH"}})
    run = train_run(cfg, tmp_path / "r")
    assert run.manifest["trainer"]["path"] == "tests._trainers:SMOOTH"
    assert open_run(tmp_path / "r").trainer.describe() == run.trainer.describe()


def test_bad_trainer_path_in_the_config_is_one_clear_error():
    import pytest

    from obliviate.errors import ConfigError
    from obliviate.training import RunConfig

    with pytest.raises(ConfigError, match="training.trainer"):
        RunConfig.from_dict({"training": {"trainer": "not a path"}})
