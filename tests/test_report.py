"""`obliviate report`: a real run, real audit output from `obliviate audit RUN --eps ... --per-sample`, a
verification file in the verification helper's format, rendered in real headless Chromium (Debian's
`chromium`, installed by `make setup`): screenshot taken, every figure decoded and drawn, console clean."""

from __future__ import annotations

import base64
import csv
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests._helpers import store_files, tiny_config
from obliviate.cli import main

pytestmark = pytest.mark.slow  # one module fixture trains a run and audits it (about a minute on 2 cores)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="headless chromium not installed (make setup installs "
                                                            "the Debian package `chromium`)")
# appended to a copy of the page (the report itself has no script): counts images the browser decoded
PROBE = ("<script>window.addEventListener('load', () => { const ok = [...document.images].filter("
         "i => i.complete && i.naturalWidth > 0).length; document.body.setAttribute('data-drawn', ok); });"
         "</script>")


def chromium(page: Path, *extra: str) -> tuple[str, str]:
    """Run headless chromium on ``page``; returns (stdout, stderr) with console messages logged to stderr."""
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
           "--disable-extensions", "--enable-logging=stderr", "--v=0", f"--user-data-dir={page.parent / 'chrome'}",
           *extra, page.resolve().as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    return done.stdout, done.stderr


def console_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    from obliviate.training import train_run
    from obliviate.unlearning import forget

    root = tmp_path_factory.mktemp("report")
    run = train_run(tiny_config(), root / "run")
    forget(run, [int(i) for i in run.train.ids[:5]])
    audit1, audit2, per_sample = root / "audit_sweep.json", root / "audit_other.json", root / "per_sample.csv"
    rc = main(["audit", str(root / "run"), "--attacks", "fgsm", "pgd:steps=3", "apgd:steps=5", "--eps", "0.05:0.3:3",
               "--max-samples", "30", "--per-sample", str(per_sample), "--out", str(audit1)])
    assert rc == 0
    rc = main(["audit", str(root / "run"), "--attacks", "mi_face:steps=20,evaluator_epochs=1",
               "knockoff:epochs=2", "badnets:epochs=2", "--queries", "100", "200", "--max-samples", "30",
               "--out", str(audit2)])
    assert rc == 0
    verify = root / "verify.json"
    verify.write_text(json.dumps({  # the verification helper's format
        "roc": {"fpr": [0.0, 0.001, 0.01, 0.1, 0.5, 1.0], "tpr": [0.0, 0.002, 0.02, 0.15, 0.55, 1.0], "auc": 0.52},
        "per_example": [{"id": i, "p_value": 0.02 + 0.09 * i, "loss": 0.1 * i, "oracle_loss_mean": 0.1 * i + 0.01,
                         "direction": "lower" if i % 2 else "higher"} for i in range(5)],
        "oracle_cloud": {"oracles": [{"accuracy": 0.9 + 0.01 * i, "agreement": 0.95 + 0.005 * i} for i in range(4)],
                         "candidate": {"accuracy": 0.92, "agreement": 0.96}},
        "forgotten": {"verdict": "forgotten", "alpha": 0.05, "rejected": 0},
        "faithful": {"verdict": "faithful", "p_value": 0.4, "new_field_from_a_later_version": [1, 2, 3]},
        "future_key": {"anything": True},
    }))
    before = store_files(root / "run")
    out = root / "report.html"
    rc = main(["report", str(root / "run"), "--out", str(out), "--verify", str(verify), "--audit", str(audit1),
               "--audit", str(audit2)])
    assert rc == 0
    assert store_files(root / "run") == before  # a report never changes the store
    return {"root": root, "html": out, "audit1": audit1, "audit2": audit2, "per_sample": per_sample}


def test_audit_sweep_outputs(reported):
    a = json.loads(reported["audit1"].read_text())
    sweep = a["sweep"]
    assert sweep["eps"] == [0.05, 0.175, 0.3]
    assert sorted(c["attack"] for c in sweep["curves"]) == ["apgd", "fgsm", "pgd"]
    (worst,) = sweep["worst_case"]
    for i, w in enumerate(worst["robust_accuracy"]):  # the worst case is at or below every attack's curve
        assert w <= min(c["robust_accuracy"][i] for c in sweep["curves"]) + 1e-12
    assert len(sweep["per_input"]) == 30
    with open(reported["per_sample"]) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 * 3 * 30 and {r["attack"] for r in rows} == {"fgsm", "pgd", "apgd"}
    fooled = [r for r in rows if r["fooled"] == "True"]
    assert all(float(r["linf"]) <= float(r["eps"]) + 1e-5 for r in fooled)
    b = json.loads(reported["audit2"].read_text())
    (qc,) = b["sweep"]["query_curves"]
    assert qc["budget"] == [100, 200] and len(qc["fidelity"]) == 2
    assert all(q <= b for q, b in zip(qc["queries"], qc["budget"]))


def _figures_expected(reported) -> int:
    a = json.loads(reported["audit1"].read_text())
    models = {c["model"] for c in a["sweep"]["curves"]}
    # training + storage + one residual plot; ROC + p-values + oracle cloud; per model a robustness curve
    # and a worst-case histogram; fidelity vs queries, MI-Face, backdoor
    return 3 + 3 + 2 * len(models) + 3


@needs_chromium
def test_report_renders_in_chromium(reported):
    html = reported["html"].read_text()
    assert not re.findall(r'(?:src|href)="(?!data:|#)', html), "the page must not reference anything outside itself"
    assert "<script" not in html
    uris = re.findall(r'<img alt="[^"]*" src="data:image/png;base64,([^"]+)"', html)
    expected = _figures_expected(reported)
    assert len(uris) == expected
    assert all(base64.b64decode(u)[:8] == b"\x89PNG\r\n\x1a\n" for u in uris)
    for needle in ("Robust accuracy against epsilon", "Worst case per input", "Membership ROC (log scale)",
                   "Oracle cloud", "Per-example p-values", "MI-Face reconstructions", "Extraction fidelity",
                   "Poisoning and backdoors", "Residual memory, request 1", "new_field_from_a_later_version",
                   "future_key", "Plan"):
        assert needle in html, needle
    probe = reported["root"] / "probe.html"
    probe.write_text(html.replace("</body>", PROBE + "</body>"))
    dom, err = chromium(probe, "--dump-dom")
    assert f'data-drawn="{expected}"' in dom, "every figure must be decoded and drawn by the browser"
    shot = reported["root"] / "shot.png"
    _, err2 = chromium(reported["html"], f"--screenshot={shot}", "--window-size=1200,3000")
    assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    assert console_lines(err) == [] and console_lines(err2) == []


@needs_chromium
def test_console_scan_catches_errors(tmp_path):
    # negative control: the scan above would see a page's console errors and script failures
    page = tmp_path / "bad.html"
    page.write_text("<html><body><script>console.error('broken'); missing();</script></body></html>")
    _, err = chromium(page, "--dump-dom")
    lines = console_lines(err)
    assert any("broken" in line for line in lines) and any("Uncaught" in line for line in lines)


def test_report_without_optional_files(reported, tmp_path):
    out = tmp_path / "plain.html"
    assert main(["report", str(reported["root"] / "run"), "--out", str(out)]) == 0
    html = out.read_text()
    assert "No verification file given" in html and "No audit file given" in html


@pytest.mark.parametrize("argv,needle", [
    (["--out", "x.txt"], "give an .html file name"),
    (["--out", "/no/such/folder/r.html"], "does not exist"),
    (["--out", "{tmp}/r.html", "--verify", "{tmp}/missing.json"], "verification file"),
    (["--out", "{tmp}/r.html", "--audit", "{tmp}/bad.json"], "is not valid JSON"),
])
def test_report_bad_input_exit_2(reported, tmp_path, capsys, argv, needle):
    (tmp_path / "bad.json").write_text("{not json")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(["report", str(reported["root"] / "run"), *argv]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r.html").exists()


def test_report_on_a_folder_that_is_no_run(tmp_path, capsys):
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "r.html")]) == 2
    assert "is not an obliviate run" in capsys.readouterr().err
