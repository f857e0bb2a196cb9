import torch

from tests._helpers import tiny_config
from obliviate.training import RunConfig, open_run, replay_block, state_after, train_run


def test_replay_reproduces_every_block_bit_for_bit(tiny_run):
    for k in range(1, tiny_run.num_blocks + 1):
        replayed = replay_block(tiny_run, k)
        stored = tiny_run.store.get(tiny_run.manifest["blocks"][k - 1]["update"])
        assert stored.keys() == replayed.keys()
        for name in stored:
            assert torch.equal(stored[name], replayed[name]), (k, name)


def test_snapshots_agree_with_the_chain_of_updates(tiny_run):
    # the model after block k from the nearest snapshot equals the plain sum of updates from the start
    store = tiny_run.store
    state = store.get(tiny_run.manifest["init"]["model"])
    for k, block in enumerate(tiny_run.manifest["blocks"], 1):
        state = {n: state[n] + store.get(block["update"])[n] for n in state}
        if block.get("snapshot"):
            snap = store.get(block["snapshot"])
            assert all(torch.equal(snap[n], state[n]) for n in state)
        assert all(torch.equal(v, state_after(store, k)[n]) for n, v in state.items())


def test_manifest_records_what_it_promises(tiny_run):
    m = tiny_run.manifest
    assert m["status"] == "complete" and len(m["blocks"]) == 5
    assert {"torch", "numpy", "safetensors", "python"} <= set(m["library_versions"])
    assert all(len(b["update"]["sha256"]) == 64 and b["wall_time_s"] > 0 for b in m["blocks"])
    assert sum(b["size"] for b in m["blocks"]) == len(tiny_run.train)
    val_ids = set(tiny_run.validation.ids.tolist())
    assert val_ids and not val_ids & set(tiny_run.train.ids.tolist())


def test_training_is_deterministic_and_seed_sensitive(tmp_path, tiny_run):
    again = train_run(tiny_config(), tmp_path / "again")
    other = train_run(tiny_config(training={"seed": 1}), tmp_path / "other")
    a, b, c = (r.final_model().state_dict() for r in (tiny_run, again, other))
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert not all(torch.equal(a[n], c[n]) for n in a)


def test_user_supplied_data_and_model(tmp_path):
    from obliviate.data import load_digits
    from obliviate.models import mlp

    splits = load_digits(seed=3)
    cfg = RunConfig.from_dict({"training": {"blocks": 3, "epochs_per_block": 1}})
    factory = lambda: mlp((1, 8, 8), 10, hidden=(32,))  # noqa: E731
    run = train_run(cfg, tmp_path / "r", splits=splits, model_factory=factory)
    assert run.manifest["data"]["user_supplied"] and run.manifest["config"]["model"]["name"] == "custom"
    reopened = open_run(tmp_path / "r", splits=splits, model_factory=factory)
    assert torch.equal(reopened.final_model()(splits.test.x[:4]), run.final_model()(splits.test.x[:4]))


def test_fast_pooling_gives_the_pooling_kernels_logits_and_puts_the_modules_back():
    """predict_logits runs plain 2x2 max pooling through strided maxima: the same logits, bit for bit."""
    from torch import nn

    from obliviate._modes import fast_pooling
    from obliviate.models import build_model
    from obliviate.training.block import predict_logits

    class MyPool(nn.MaxPool2d):
        pass

    gen = torch.Generator().manual_seed(3)
    cases = [(build_model("lenet5", (1, 28, 28), 10, seed=0), torch.randn(37, 1, 28, 28, generator=gen)),
             (build_model("small_cnn", (1, 8, 8), 10, seed=0), torch.randn(19, 1, 8, 8, generator=gen)),
             (nn.Sequential(nn.MaxPool2d(2), nn.MaxPool2d(3), MyPool(2), nn.MaxPool2d((2, 2), ceil_mode=True),
                            nn.Flatten()), torch.randn(5, 3, 23, 17, generator=gen)),
             (nn.Sequential(nn.ReLU(), nn.MaxPool2d(2)), torch.randn(6, 2, 9, 11, generator=gen).relu())]
    for model, x in cases:
        model.eval()
        with torch.no_grad():
            want = model(x)  # torch's own pooling kernel
        got = predict_logits(model, x)
        assert got.dtype == torch.float32 and torch.equal(got.view(torch.int32), want.view(torch.int32))  # bits
        assert not any("forward" in vars(m) for m in model.modules())  # every module as it was
    swapped = nn.Sequential(nn.MaxPool2d(2))
    with fast_pooling(swapped):  # gradients on (training): nothing is swapped
        assert "forward" not in vars(swapped[0])
    with torch.no_grad(), fast_pooling(swapped):
        assert "forward" in vars(swapped[0])
    assert "forward" not in vars(swapped[0])
