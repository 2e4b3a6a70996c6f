# README's two commands: `make demo` (the main job) and `make test` (the test suite).
# Each creates/updates the virtualenv, installs spikeconv, and fetches Fashion-MNIST when missing.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.spikeconv-installed
FMNIST := /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz

.PHONY: demo test venv data lint bench clean interop

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# Fashion-MNIST ships as the Debian package dataset-fashion-mnist; install it when it is missing
# and apt is usable (root, or passwordless sudo). Otherwise say how to get it and carry on.
data:
	@if [ -n "$$SPIKECONV_DATA" ] || [ -e $(FMNIST) ]; then exit 0; fi; \
	if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then SUDO=""; \
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; \
	else echo "note: Fashion-MNIST not found; install the Debian package dataset-fashion-mnist or set SPIKECONV_DATA"; exit 0; fi; \
	$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null \
	  || echo "note: could not install dataset-fashion-mnist with apt-get"

demo: venv data
	$(VENV)/bin/spikeconv demo

test: venv data
	$(PY) -m pytest -q

# The consumer libraries (sinabs, snnTorch, SpikingJelly, Norse, nirtorch) in their own venvs under
# $$SPIKECONV_INTEROP_VENVS (default /tmp/spikeconv-interop), never spikeconv dependencies; their importers
# run spikeconv's exports on the first 2,000 Fashion-MNIST test images (docs/export_targets.md).
interop: venv data
	$(PY) bench/interop_check.py --json bench/results/interop.json

lint: venv
	$(VENV)/bin/ruff check spikeconv tests bench

clean:
	rm -rf $(VENV) demo-output .pytest_cache
