"""The unlearning engine: exactness, purge, sequential requests, bad requests, guard, stopping rules."""

import numpy as np
import pytest
import torch

from tests._helpers import retrain_from_scratch, store_files
from obliviate.errors import RequestError, UnknownNameError
from obliviate.training.chain import add, subtract
from obliviate.unlearning import Bounds, ForgetOptions, forget, forget_many, make_stopping_rule


def test_exact_equals_retraining_from_scratch_bit_for_bit(tiny_run):
    u = [int(tiny_run.block_ids(2)[3]), int(tiny_run.block_ids(4)[0])]
    oracle = retrain_from_scratch(tiny_run, set(u))
    result = forget(tiny_run, u, method="exact")
    assert (result.d, result.m, result.t, result.outcome) == (2, 4, 5, "exact")
    final = tiny_run.final_model().state_dict()
    assert all(torch.equal(final[n], oracle[n]) for n in oracle)


def test_retrain_mode_equals_exact_mode(tiny_run_master, tmp_path):
    import shutil

    from obliviate.training import open_run

    u = [int(tiny_run_master.block_ids(3)[1])]
    models = {}
    for method in ("exact", "retrain"):
        shutil.copytree(tiny_run_master.path, tmp_path / method)
        run = open_run(tmp_path / method)
        r = forget(run, u, method=method)
        assert r.blocks_retrained == (3 if method == "exact" else 5)
        models[method] = run.final_model().state_dict()
    assert all(torch.equal(models["exact"][n], models["retrain"][n]) for n in models["exact"])


@pytest.mark.parametrize("method", ["deepobliviate", "exact"])
def test_no_payload_of_the_old_blocks_d_to_t_remains(tiny_run, method):
    old = tiny_run.manifest
    u = [int(i) for i in tiny_run.block_ids(2)[:3]]
    result = forget(tiny_run, u, method=method)
    files = {p.name for p in (tiny_run.path / "payloads").iterdir()}
    for k in range(result.d, result.t + 1):
        for kind in ("update", "optimizer", "snapshot"):
            ref = old["blocks"][k - 1].get(kind)
            if ref:
                assert ref["file"].split("/")[-1] not in files, (k, kind)
    # snapshots after t held the old trajectory too: re-based or gone
    for k in range(result.t + 1, tiny_run.num_blocks + 1):
        ref = old["blocks"][k - 1].get("snapshot")
        if ref:
            assert ref["file"].split("/")[-1] not in files
    assert old["partition"]["file"].split("/")[-1] not in files
    # and the store names exactly the files it holds
    assert {r.split("/")[-1] for r in tiny_run.store.referenced_files()} == files
    assert not set(u) & set(np.concatenate(tiny_run.all_block_ids()).tolist())


def test_a_replays_validation_is_screened_against_the_cached_predictions(tiny_run):
    """After a plain replay the validation predictions are either all evaluated afresh, or the guard's
    screen (the current model's lowest-margin rows and some random rows) is evaluated and the rest carried
    over, which is allowed only when no random row changed; the committed cache, its screened count and the
    reported accuracy follow that rule for the new final model (either branch: which one a run takes
    depends on its trajectory)."""
    from obliviate.training.block import predict_logits
    from obliviate.training.predictions import cached_validation_predictions
    from obliviate.unlearning.guard import StitchGuard

    before = cached_validation_predictions(tiny_run)
    assert before is not None and len(tiny_run.validation) > 0
    pred0, margin0, screened0 = before
    r = forget(tiny_run, [int(tiny_run.block_ids(tiny_run.num_blocks)[0])], method="exact")
    after = cached_validation_predictions(tiny_run)
    assert after is not None
    pred1, _, screened1 = after
    final, vx = tiny_run.final_model(), tiny_run.validation.x
    screen = StitchGuard().screen_rows(margin0, screened0)
    notes = " ".join(r.plan["notes"])
    if screened1 == 0:
        assert torch.equal(pred1, predict_logits(final, vx).argmax(1))
        assert "rows evaluated" not in notes
    else:
        assert screen is not None and screened1 == screened0 + 1
        rows = torch.cat(screen).sort().values
        carried = torch.ones(len(vx), dtype=torch.bool)
        carried[rows] = False
        assert torch.equal(pred1[rows], predict_logits(final, vx[rows]).argmax(1))
        assert torch.equal(pred1[carried], pred0[carried])
        assert torch.equal(pred1[screen[1]], pred0[screen[1]])  # no random row changed
        assert f"{len(rows)} of {len(vx)} rows evaluated" in notes
    assert r.accuracy_after["validation"] == pytest.approx(float((pred1 == tiny_run.validation.y).float().mean()))


def test_sequential_requests_delete_the_right_samples(tiny_run):
    before = {k: set(tiny_run.block_ids(k).tolist()) for k in range(1, 6)}
    first = [int(i) for i in tiny_run.block_ids(3)[:2]]
    second = [int(tiny_run.block_ids(3)[5]), int(tiny_run.block_ids(5)[0])]
    forget(tiny_run, first)
    r2 = forget(tiny_run, second)
    assert r2.ids_deleted == sorted(second) and r2.request_id == 2
    for k in range(1, 6):
        assert set(tiny_run.block_ids(k).tolist()) == before[k] - set(first) - set(second)
    assert tiny_run.deleted_ids() == set(first) | set(second)
    # the second request's oracle is a retrain without both sets
    r3 = forget(tiny_run, [int(tiny_run.block_ids(1)[0])], method="exact")
    oracle = retrain_from_scratch(tiny_run, tiny_run.deleted_ids())
    final = tiny_run.final_model().state_dict()
    assert r3.outcome == "exact" and all(torch.equal(final[n], oracle[n]) for n in oracle)


def test_already_deleted_ids_are_a_reported_noop(tiny_run):
    u = [int(tiny_run.block_ids(4)[0])]
    forget(tiny_run, u)
    files = store_files(tiny_run.path)
    again = forget(tiny_run, u)
    assert again.noop and again.ids_already_deleted == u and again.request_id is None
    assert store_files(tiny_run.path) == files


def test_unknown_ids_are_an_error_and_change_nothing(tiny_run):
    files = store_files(tiny_run.path)
    val_id = int(tiny_run.validation.ids[0])
    with pytest.raises(RequestError, match=f"{val_id}.*nothing was changed"):
        forget(tiny_run, [int(tiny_run.block_ids(1)[0]), val_id, 10**9])
    assert store_files(tiny_run.path) == files
    with pytest.raises(UnknownNameError, match="deepobliviate, exact, retrain"):
        forget(tiny_run, [1], method="sisa")


def test_coalesced_requests_retrain_once(tiny_run):
    a, b = [int(tiny_run.block_ids(2)[0])], [int(tiny_run.block_ids(3)[0])]
    results = forget_many(tiny_run, [a, b], method="exact")
    assert len(results) == 1 and results[0].ids_deleted == sorted(a + b) and results[0].d == 2


def test_late_deletion_stitches_and_records_residuals(tiny_run):
    u = [int(tiny_run.block_ids(3)[0])]
    result = forget(tiny_run, u, options=ForgetOptions(function_residual=True))
    assert result.d == 3 and result.residuals and result.residuals[0]["block"] == 3
    r = result.residuals[0]
    assert r["l1"] > 0 and r["rel_l1"] > 0 and r["probe_tv"] >= 0
    assert result.outcome in ("stitched", "exact")
    if result.outcome == "stitched":
        assert result.guard[-1]["passed"] and result.blocks_retrained == result.t - result.d + 1 < 3
    req = tiny_run.requests[-1]
    assert req["ids_deleted"] == u and req["residuals"] and len(req["chain_sha256"]) == 5


def test_a_spread_deletion_reads_the_stored_state_at_m_from_the_chain(tiny_run, monkeypatch):
    """U in blocks 1 and 4 with a snapshot at block 4 (snapshot_every = 2): the stored trajectory is not
    followed through blocks 1..3; the stitch uses the chain's theta_4, bit for bit. (The planner is told
    the one block a stitch saves here is worth an attempt: what it decides from timings is not this test's.)"""
    from obliviate.training.chain import state_after, stitch
    from obliviate.unlearning import StitchGuard, planner

    monkeypatch.setattr(planner.Plan, "may_attempt", lambda self, t, *, spent: (t < self.num_blocks, "test"))

    assert tiny_run.config.store.snapshot_every == 2
    old_t, old_final = state_after(tiny_run.store, 4), state_after(tiny_run.store, 5)
    u = [int(tiny_run.block_ids(1)[0]), int(tiny_run.block_ids(4)[0])]
    result = forget(tiny_run, u, options=ForgetOptions(guard=StitchGuard(enabled=False), memorised_gap=float("inf"),
                                                       memorised_ratio=0, damping=1.0))
    assert (result.d, result.m, result.t, result.outcome) == (1, 4, 4, "stitched")
    assert [r["block"] for r in result.residuals] == [4]
    assert any("residuals measured from block 4 on" in n for n in result.plan["notes"])
    expected = stitch(old_final, state_after(tiny_run.store, 4), old_t)
    assert all(torch.equal(result.model_state[k], expected[k]) for k in expected)


def test_a_memorised_user_whose_later_stitch_cannot_pay_off_replays_plainly_after_m(tiny_run, monkeypatch):
    """The memorisation probe moves the first attempt past m; when the planner says no attempt from there
    can pay off, the request is plain replay from m on (no more residuals), equal to exact bit for bit."""
    import shutil

    from obliviate.training import open_run
    from obliviate.unlearning import engine, planner

    exact_copy = tiny_run.path.parent / "exact-copy"
    shutil.copytree(tiny_run.path, exact_copy)
    u = [int(tiny_run.block_ids(2)[0])]
    monkeypatch.setattr(engine._Request, "_memorisation",
                        lambda self, old_m, u_data: {"block": self.plan.m, "gap": 1.0, "memorised": True,
                                                         "why": "stubbed"})
    real = planner.Plan.may_attempt
    monkeypatch.setattr(planner.Plan, "may_attempt", lambda self, t, *, spent: (False, "stubbed: too dear")
                        if t > self.m else real(self, t, spent=spent))
    result = forget(tiny_run, u, options=ForgetOptions(memorised_blocks=2))
    assert (result.d, result.m, result.outcome, result.blocks_retrained) == (2, 2, "exact", 4)
    assert [r["block"] for r in result.residuals] == [2] and not result.guard
    assert any("no stitch attempt from block 4 on can pay off" in n for n in result.plan["notes"])
    monkeypatch.undo()
    reference = open_run(exact_copy)
    forget(reference, u, method="exact")
    final, expected = tiny_run.final_model().state_dict(), reference.final_model().state_dict()
    assert all(torch.equal(final[k], expected[k]) for k in expected)


@pytest.mark.parametrize("gap, ratio, memorised", [(0.05, 1e-6, True), (0.05, 1e6, False), (0.005, 1e-6, False)])
def test_a_small_loss_gap_counts_as_memorised_against_the_validation_shift(tiny_run, monkeypatch, gap, ratio,
                                                                            memorised):
    """Below memorised_gap, U counts as memorised when its gap is memorised_ratio times the mean shift of
    validation samples between the two states; gaps under MIN_RATIO_GAP never do (the probe's losses are
    stubbed: retrained 1 + gap, stored 1)."""
    from obliviate.unlearning import StitchGuard, engine

    losses = iter([1.0 + gap, 1.0])
    monkeypatch.setattr(engine, "median_loss", lambda model, x, y: next(losses))
    u = [int(tiny_run.block_ids(3)[0])]
    result = forget(tiny_run, u, options=ForgetOptions(memorised_ratio=ratio, memorised_blocks=0, damping=1.0,
                                                       guard=StitchGuard(enabled=False)))
    probe = result.memorised
    assert probe["memorised"] is memorised and abs(probe["gap"] - gap) < 1e-12
    assert ("validation_shift" in probe) is (gap > engine.MIN_RATIO_GAP)
    if "validation_shift" in probe:
        assert probe["validation_shift"] > 0 and probe["ratio_threshold"] == ratio
    assert ("times the mean shift" in probe.get("why", "")) is memorised


def test_min_affected_forces_more_blocks(tiny_run):
    u = [int(tiny_run.block_ids(2)[0])]
    opts = ForgetOptions(bounds=Bounds(min_affected=2), memorised_gap=float("inf"), memorised_ratio=0)
    result = forget(tiny_run, u, options=opts)
    assert result.t >= 4
    assert result.decisions[0]["stop"] is False


def test_stopping_rules():
    from obliviate.unlearning import BlockResidual, fit_power_decay

    series = [BlockResidual(k, "affected", 1, 1, 0.5 * k ** -1.5, 1) for k in range(1, 9)]
    fit = fit_power_decay([s.rel_l1 for s in series])
    assert abs(fit["h"] - 1.5) < 0.1 and abs(fit["b"]) < 1e-3
    fd = make_stopping_rule("fitted-decay", eps=0.05)
    assert not fd.decide(series[:3], affected=3).stop  # too few points
    assert fd.decide(series, affected=8).stop
    flat = [BlockResidual(k, "affected", 1, 1, 0.5, 1) for k in range(1, 9)]
    assert not make_stopping_rule("scale-free", tau=0.25).decide(flat, affected=8).stop
    assert make_stopping_rule("scale-free", tau=0.25).decide(series, affected=8).stop
    with pytest.raises(UnknownNameError, match="fitted-decay, immediate, scale-free"):
        make_stopping_rule("nope")
    assert Bounds(max_affected=2).decide(fd, flat, 2).stop


def _break_final_block(run):
    """Replace the last block's stored update so the run ends at a model with random, huge weights: an
    original that diverged, made deterministically (no chaotic training involved)."""
    from obliviate.training.chain import state_after
    from obliviate.training.predictions import KEY

    store, B = run.store, run.num_blocks
    before = state_after(store, B - 1)
    gen = torch.Generator().manual_seed(0)
    broken = {k: (torch.randn(v.shape, generator=gen) * 50 if v.is_floating_point() else v) for k, v in before.items()}
    manifest = dict(store.manifest)
    blocks = [dict(b) for b in manifest["blocks"]]
    blocks[-1]["update"] = store.put("broken-update", subtract(broken, before))
    blocks[-1]["snapshot"] = store.put("broken-snapshot", add(before, subtract(broken, before)))
    manifest["blocks"] = blocks
    manifest.pop(KEY, None)
    store.commit(manifest)


def test_guard_refuses_the_stitch_of_a_diverged_original(tiny_run):
    """The original ended near chance; the stitch inherits its end point. Comparing with the original
    alone would ship it: the chance test and the fresh reference must refuse it, and exact replay must
    give a healthy model."""
    _break_final_block(tiny_run)
    chance = float(torch.bincount(tiny_run.validation.y).max()) / len(tiny_run.validation)
    assert tiny_run.evaluate(tiny_run.final_model(), "validation")[0] < chance + 0.15
    result = forget(tiny_run, [int(tiny_run.block_ids(2)[0])],
                    options=ForgetOptions(memorised_gap=float("inf"), memorised_ratio=0))
    assert result.guard and not any(g["passed"] for g in result.guard)
    assert any("retrained" in r or "chance" in r for g in result.guard for r in g["reasons"])
    assert result.outcome == "exact" and result.t == tiny_run.num_blocks
    assert result.accuracy_after["validation"] > 0.5


def test_guard_refuses_a_one_point_drop_and_passes_an_equal_model():
    from obliviate.unlearning import StitchGuard

    gen = torch.Generator().manual_seed(3)
    labels = torch.randint(0, 10, (800,), generator=gen)
    current = labels.clone()
    wrong = torch.randperm(800, generator=gen)[:40]
    current[wrong] = (labels[wrong] + 1) % 10  # 95.0%
    drop = current.clone()
    right = torch.nonzero(current == labels).flatten()[:8]
    drop[right] = (labels[right] + 2) % 10  # 94.0%: 8 samples lost, none gained
    guard = StitchGuard()
    v = guard.check(labels=labels, candidate=drop, current=current)
    assert not v.passed and v.tests[1]["b"] == 8 and v.tests[1]["c"] == 0 and v.tests[1]["p_value"] < 0.01
    # swapping errors (8 lost, 8 gained) is no evidence of a drop
    swap = drop.clone()
    swap[wrong[:8]] = labels[wrong[:8]]
    assert guard.check(labels=labels, candidate=swap, current=current).passed
    # near chance is refused even when the current model is as bad
    noise = torch.randint(0, 10, (800,), generator=gen)
    v = guard.check(labels=labels, candidate=noise, current=noise)
    assert not v.passed and "chance" in v.reasons[0]
    # a fresh reference that is far better refuses a candidate the current model cannot judge
    rows = guard.reference_subset(800)
    v = guard.check(labels=labels, candidate=noise, current=noise, reference=labels[rows], reference_rows=rows)
    assert not v.passed and len(v.reasons) == 2


def test_unguarded_stitch_ships_at_the_deleted_block(tiny_run):
    from obliviate.unlearning import StitchGuard

    u = [int(tiny_run.block_ids(2)[0])]
    result = forget(tiny_run, u, options=ForgetOptions(guard=StitchGuard(enabled=False), memorised_gap=float("inf"),
                                                       memorised_ratio=0))
    assert result.outcome == "stitched" and result.t == 2 and result.summary == "stitched after 1 of 4 blocks"
