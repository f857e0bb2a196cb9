"""Our attacks against the peers, installed as test-only dependencies (torchattacks, IBM ART).

Tolerances (also in docs/audit.md):

- FGSM vs torchattacks.FGSM: max absolute difference <= 1e-6 on the same model and inputs.
- PGD (Linf and L2, random start off) vs torchattacks.PGD / PGDL2: success rate within 2 points.
- APGD-CE (Linf and L2) vs torchattacks.APGD (Croce and Hein's algorithm, loss "ce", one restart): success
  rate within 2 points (random starts differ, so images are not compared).
- JSMA vs ART's SaliencyMapMethod, same theta, gamma and targets: success at most 10 points below ART's
  (ours runs the paper's pair map, then ART's single target map on the inputs still unfooled).
- Evasion vs ART: DeepFool (50 steps, overshoot 0.02, all classes): success within 2 points, median L2
  of successful examples within 5% relative.
- Extraction vs ART: Knockoff Nets, random, 500 label queries (ART's use_probability=False gives the
  argmax), same architecture and recipe: fidelity within 0.05.
- Inversion vs ART: MI-Face with ART's MIFace on the same model (softmax output), same rate and steps
  and no early stop: reconstructions within 1e-4 (max absolute difference).
- Poisoning vs ART: BadNets poisoned samples equal ART's PoisoningAttackBackdoor with the same trigger
  on the same samples (max absolute difference 0, same labels).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from obliviate.audit import APGD, APGDL2, BIM, FGSM, JSMA, PGDL2, BadNets, DeepFool, KnockoffNets, MIFace
from obliviate.audit.base import AuditData
from obliviate.data import load_dataset
from obliviate.models import build_model


def _success(model, x, adv, y):
    with torch.no_grad():
        ok = model(x).argmax(1) == y
        return float((ok & (model(adv).argmax(1) != y)).sum()) / int(ok.sum())


def _art_classifier(model, output_softmax=False):
    from art.estimators.classification import PyTorchClassifier

    net = torch.nn.Sequential(model, torch.nn.Softmax(dim=1)) if output_softmax else model
    return PyTorchClassifier(model=net, loss=torch.nn.CrossEntropyLoss(), input_shape=(1, 8, 8), nb_classes=10,
                             clip_values=(0.0, 1.0), device_type="cpu")


@pytest.fixture(scope="module")
def test_xy(digits):
    return digits.test.x, digits.test.y


def test_fgsm_equals_torchattacks(digits, digits_cnn, test_xy):
    torchattacks = pytest.importorskip("torchattacks")
    x, y = test_xy
    for eps in (0.05, 0.1, 0.3):
        ours = FGSM(eps=eps, max_samples=None)(digits_cnn, digits).artifacts["x_adv"]
        theirs = torchattacks.FGSM(digits_cnn, eps=eps)(x, y)
        assert float((ours - theirs).abs().max()) <= 1e-6
        assert torch.equal(FGSM(eps=eps).generate(digits_cnn, x, y), ours)


@pytest.mark.parametrize("eps,alpha,steps", [(0.05, 0.01, 10), (0.1, 0.025, 10), (0.2, 0.05, 20)])
def test_pgd_linf_success_matches_torchattacks(digits, digits_cnn, test_xy, eps, alpha, steps):
    torchattacks = pytest.importorskip("torchattacks")
    x, y = test_xy
    ours = BIM(eps=eps, alpha=alpha, steps=steps, max_samples=None)(digits_cnn, digits)  # PGD, no random start
    theirs = torchattacks.PGD(digits_cnn, eps=eps, alpha=alpha, steps=steps, random_start=False)(x, y)
    assert abs(ours.metrics["success_rate"] - _success(digits_cnn, x, theirs, y)) <= 0.02


@pytest.mark.parametrize("eps,alpha,steps", [(0.5, 0.1, 10), (1.0, 0.2, 10)])
def test_pgd_l2_success_matches_torchattacks(digits, digits_cnn, test_xy, eps, alpha, steps):
    torchattacks = pytest.importorskip("torchattacks")
    x, y = test_xy
    ours = PGDL2(eps=eps, alpha=alpha, steps=steps, random_start=False, max_samples=None)(digits_cnn, digits)
    theirs = torchattacks.PGDL2(digits_cnn, eps=eps, alpha=alpha, steps=steps, random_start=False)(x, y)
    assert abs(ours.metrics["success_rate"] - _success(digits_cnn, x, theirs, y)) <= 0.02


def test_deepfool_matches_art(digits, digits_cnn, test_xy):
    pytest.importorskip("art")
    from art.attacks.evasion import DeepFool as ArtDeepFool

    x, y = test_xy
    x, y = x[:120], y[:120]
    sub = AuditData(digits.train, digits.test.take(torch.arange(120)))
    ours = DeepFool(steps=50, overshoot=0.02, max_samples=None)(digits_cnn, sub)
    art_adv = ArtDeepFool(_art_classifier(digits_cnn), max_iter=50, epsilon=0.02, nb_grads=10, batch_size=120,
                          verbose=False).generate(x.numpy())
    art_adv = torch.from_numpy(art_adv)
    assert abs(ours.metrics["success_rate"] - _success(digits_cnn, x, art_adv, y)) <= 0.02
    with torch.no_grad():
        ok = (digits_cnn(x).argmax(1) == y) & (digits_cnn(art_adv).argmax(1) != y)
    art_l2 = float((art_adv - x).flatten(1).norm(dim=1)[ok].median())
    assert abs(ours.metrics["l2_median"] - art_l2) <= 0.05 * art_l2


def test_knockoff_random_matches_art(digits, digits_cnn):
    pytest.importorskip("art")
    from art.attacks.extraction import KnockoffNets as ArtKnockoff
    from art.estimators.classification import PyTorchClassifier

    pool = load_dataset("digits-60k", n_train=3000, n_test=10).train
    knockoff = KnockoffNets(queries=500, output="labels", epochs=20, seed=0)
    ours = knockoff(digits_cnn, AuditData(digits.train, digits.test, pool))
    torch.manual_seed(0)
    np.random.seed(0)
    thief = build_model("small_cnn", (1, 8, 8), 10, seed=0)
    thief_clf = PyTorchClassifier(model=thief, loss=torch.nn.CrossEntropyLoss(),
                                  optimizer=torch.optim.Adam(thief.parameters(), lr=1e-3), input_shape=(1, 8, 8),
                                  nb_classes=10, clip_values=(0.0, 1.0), device_type="cpu")
    stolen = ArtKnockoff(_art_classifier(digits_cnn), batch_size_fit=64, batch_size_query=64, nb_epochs=20,
                         nb_stolen=500, sampling_strategy="random", use_probability=False,
                         verbose=False).extract(pool.x.numpy(), thieved_classifier=thief_clf)
    with torch.no_grad():
        victim = digits_cnn(digits.test.x).argmax(1).numpy()
    art_fidelity = float((stolen.predict(digits.test.x.numpy()).argmax(1) == victim).mean())
    assert abs(ours.metrics["fidelity"] - art_fidelity) <= 0.05


def test_mi_face_matches_art(digits, digits_cnn):
    pytest.importorskip("art")
    from art.attacks.inference.model_inversion import MIFace as ArtMIFace

    steps = 60
    mi_face = MIFace(space="pixel", steps=steps, lr=0.1, threshold=1.0, window=steps + 1, evaluator_epochs=1)
    ours = mi_face(digits_cnn, digits)
    art = ArtMIFace(_art_classifier(digits_cnn, output_softmax=True), max_iter=steps, window_length=steps + 1,
                    threshold=1.0, learning_rate=0.1, batch_size=10, verbose=False).infer(None, y=np.arange(10))
    diff = (ours.artifacts["reconstructions"] - torch.from_numpy(art)).abs().max()
    assert float(diff) <= 1e-4


def test_badnets_poison_matches_art(digits):
    pytest.importorskip("art")
    from art.attacks.poisoning import PoisoningAttackBackdoor

    attack = BadNets(size=2, target_class=0, poison_rate=0.05)
    torch.manual_seed(0)
    poisoned, positions = attack.poison(digits.train)
    art = PoisoningAttackBackdoor(lambda a: attack.trigger.apply(torch.from_numpy(a)).numpy())
    xp, yp = art.poison(digits.train.x[positions].numpy(), y=np.eye(10)[0], broadcast=True)
    assert float((poisoned.x[positions] - torch.from_numpy(xp)).abs().max()) == 0.0
    assert (poisoned.y[positions].numpy() == yp.argmax(1)).all()
    untouched = torch.ones(len(digits.train), dtype=torch.bool)
    untouched[positions] = False
    assert torch.equal(poisoned.x[untouched], digits.train.x[untouched])


@pytest.mark.slow
@pytest.mark.parametrize("norm,eps,steps", [("Linf", 0.1, 20), ("Linf", 0.2, 20), ("L2", 1.0, 20)])
def test_apgd_success_matches_torchattacks(digits, digits_cnn, test_xy, norm, eps, steps):
    torchattacks = pytest.importorskip("torchattacks")
    x, y = test_xy
    cls = APGD if norm == "Linf" else APGDL2
    ours = cls(eps=eps, steps=steps, max_samples=None).generate(digits_cnn, x, y)
    theirs = torchattacks.APGD(digits_cnn, norm=norm, eps=eps, steps=steps, n_restarts=1, loss="ce", seed=0)(x, y)
    a, b = _success(digits_cnn, x, ours, y), _success(digits_cnn, x, theirs, y)
    print(f"apgd {norm} eps={eps} steps={steps}: ours {a:.4f} torchattacks {b:.4f}")
    assert abs(a - b) <= 0.02


@pytest.mark.slow
def test_jsma_success_close_to_art(digits, digits_cnn, test_xy):
    pytest.importorskip("art")
    from art.attacks.evasion import SaliencyMapMethod

    x, y = test_xy[0][:60], test_xy[1][:60]
    t = (y + 1 + torch.arange(60) % 9) % 10
    ours = JSMA(theta=1.0, gamma=0.3).generate(digits_cnn, x, y, t)
    art = SaliencyMapMethod(_art_classifier(digits_cnn), theta=1.0, gamma=0.3, verbose=False)
    theirs = torch.from_numpy(art.generate(x.numpy(), y=np.eye(10, dtype=np.float32)[t.numpy()]))
    with torch.no_grad():
        a = float((digits_cnn(ours).argmax(1) == t).float().mean())
        b = float((digits_cnn(theirs).argmax(1) == t).float().mean())
    print(f"jsma gamma=0.3: ours {a:.3f} ART {b:.3f}")
    assert a >= b - 0.1
