#!/usr/bin/env bash
# The example through the command line: train the user's CNN by import path with options and the user's
# trainer (label smoothing, AdamW with weight decay), attach data subjects from a CSV, forget one subject,
# verify the request, and audit the unlearned model's checkpoint.
#
#   export OBLIVIATE_SUBJECT_KEY=$(python -c "import secrets; print(secrets.token_hex(32))")
#   bash examples/cli.sh example-runs
#
# OBLIVIATE (default: obliviate) and PYTHON (default: python) name the commands to use.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${1:-example-runs}
OBLIVIATE=${OBLIVIATE:-obliviate}
PYTHON=${PYTHON:-python}
: "${OBLIVIATE_SUBJECT_KEY:?set it first: export OBLIVIATE_SUBJECT_KEY=\$(python -c \"import secrets; print(secrets.token_hex(32))\")}"
export PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}"   # so that `mypkg` imports: the run records only its path
RUN="$WORK/cli-run"
MODEL=(--model mypkg.models:build --model-option channels=6 --model-option hidden=24)

# 1. Train; --model and --model-option replace the config's [model]; --trainer names the training step.
#    All three are recorded in the run: the later commands rebuild them with nothing passed.
$OBLIVIATE train "$HERE/digits_cnn.toml" --out "$RUN" "${MODEL[@]}" --trainer mypkg.training:trainer

# 2. Data subjects: who owns which sample (keys stored only as keyed hashes), and one subject's samples.
$OBLIVIATE subjects "$RUN" --map "$HERE/subjects.csv"
$OBLIVIATE inspect "$RUN" --subject customer-4711

# 3. Forget every sample of one subject; the request record keeps the subject's keyed hash only.
$OBLIVIATE forget "$RUN" --subject customer-4711

# 4. Verify the request (exit 0 pass, 1 a verdict failed, 3 nothing measurable to forget: a subject of a
#    few digits barely moves the model, so 3 is a normal outcome here).
set +e
$OBLIVIATE verify "$RUN" --oracles 4
rc=$?
set -e
case $rc in 0|1|3) echo "verify exited $rc" ;; *) exit "$rc" ;; esac

# 5. Audit the unlearned model from a checkpoint, as one would a model trained elsewhere.
$PYTHON -c 'import sys; from safetensors.torch import save_file; from obliviate import open_run
save_file(open_run(sys.argv[1]).final_model().state_dict(), sys.argv[2])' "$RUN" "$WORK/cli-model.safetensors"
$OBLIVIATE audit "${MODEL[@]}" --checkpoint "$WORK/cli-model.safetensors" --attacks fgsm pgd --max-samples 50
