# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# The CPU build of torch this machine carries; users may have any torch >= 2.2.
TORCH_PIN := torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: setup demo lint test clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "$(TORCH_PIN)"
	$(PIP) install -q -e ".[test]" "$(TORCH_PIN)"
	# torchattacks declares torchvision (a multi-GB CUDA pull) but never imports it.
	$(PIP) install -q --no-deps "torchattacks==3.5.1"
	# headless Chromium renders the HTML report in tests/test_report.py (Debian package; make runs as root)
	command -v chromium >/dev/null || (apt-get update && apt-get install -y --no-install-recommends chromium)
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/obliviate demo

# ruff and strict mypy (settings in pyproject.toml): seconds, so `make test` runs them first.
lint: $(STAMP)
	$(VENV)/bin/ruff check
	$(VENV)/bin/mypy

test: lint
	$(PY) -m pytest

clean:
	rm -rf $(VENV) build dist src/*.egg-info
