"""The example through the Python API: train the user's CNN (``mypkg.models:build``) with the user's trainer
(label smoothing, AdamW with weight decay: ``mypkg.training:trainer``) on the user's own torch Dataset (a
random-shift transform: ``mypkg.data``), attach data subjects from a CSV, forget one subject, verify the
request, and save the unlearned model as a safetensors checkpoint.

Run from the repository root (the subject key is the secret of the keyed subject hashes; keep it outside
the run store)::

    export OBLIVIATE_SUBJECT_KEY=$(python -c "import secrets; print(secrets.token_hex(32))")
    PYTHONPATH=examples python examples/python_api.py example-runs
"""

from __future__ import annotations

import sys
from pathlib import Path

from mypkg.data import digits_splits
from safetensors.torch import save_file

from obliviate import RunConfig, open_run, train_run
from obliviate.subjects import attach_subjects, forget_subject, lookup_subjects
from obliviate.verify import verify_request

HERE = Path(__file__).resolve().parent
SUBJECT = "customer-4711"


def main(work: Path) -> int:
    config = RunConfig.from_toml(HERE / "digits_cnn.toml")  # model.factory = "mypkg.models:build"
    splits = digits_splits()  # the user's torch Dataset, with stable ids
    run = train_run(config, work / "api-run", splits=splits, trainer="mypkg.training:trainer")
    print(f"trained {run.num_blocks} blocks with {run.manifest['trainer']['name']}: test accuracy "
          f"{run.evaluate(run.final_model())[0]:.3f}")

    summary = attach_subjects(run, HERE / "subjects.csv")  # keys hashed with $OBLIVIATE_SUBJECT_KEY
    print(f"attached {summary['subjects']} subjects ({summary['samples']} samples)")
    (subject,) = lookup_subjects(run, [SUBJECT])
    print(f"{SUBJECT}: samples {subject.sample_ids} in blocks {subject.blocks}")

    result = forget_subject(run, [SUBJECT])
    print(f"forgot {len(result.ids_deleted)} samples of {SUBJECT} (request {result.request_id})")

    # Reopen: data given in Python is passed again; the model factory, its options and the trainer (both
    # import paths) come from the manifest.
    reopened = open_run(work / "api-run", splits=splits)
    report = verify_request(reopened, oracles=4)
    print(f"verify: forgotten {report.forgotten['verdict']}, faithful {report.faithful['verdict']}")

    save_file(reopened.final_model().state_dict(), str(work / "api-model.safetensors"))
    print(f"saved the unlearned model to {work / 'api-model.safetensors'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "example-runs")))
