# `make demo` and `make test` each work from a clean clone: they create .venv if missing.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

# The main job, offline: run, grade, report, and a signed scorecard per lab (the demo vault key is
# created in .holdout/ on first use).
demo: $(STAMP)
	$(BIN)/holdout run configs/demo.yaml
	$(BIN)/holdout grade demo
	$(BIN)/holdout report demo
	test -f .holdout/vault/keycheck || $(BIN)/holdout vault init
	$(BIN)/holdout scorecard demo --all
	$(BIN)/holdout verify results/demo/scorecards/acme.json

test: $(STAMP)
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .holdout results/*/ .pytest_cache
