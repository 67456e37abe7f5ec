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

# The house rules first (format at 100 columns; lint: pycodestyle, pyflakes, bugbear, imports,
# complexity; pyproject.toml), then every test.
test: $(STAMP)
	$(BIN)/ruff format --check --quiet .
	$(BIN)/ruff check --quiet .
	$(BIN)/pytest
	HOLDOUT_TEST_STORE=postgresql $(BIN)/pytest $(PG_TESTS)

# The same tests again with every store and ledger on a PostgreSQL server the tests start
# (tests/conftest.py; skipped with a reason where the machine has no PostgreSQL binaries). The whole
# suite runs that way too: HOLDOUT_TEST_STORE=postgresql .venv/bin/pytest
PG_TESTS := tests/test_run.py tests/test_reliability.py tests/test_integrity.py tests/test_leak.py \
	tests/test_right_numbers.py tests/test_review.py tests/test_view.py

# LiteLLM's proxy, for tests/test_litellm_proxy.py (skipped without it): a virtualenv of its own, since its
# dependency tree is not ours. .ci/run makes it.
.venv-litellm/bin/litellm:
	test -d .venv-litellm || $(PY) -m venv .venv-litellm
	.venv-litellm/bin/pip install -q 'litellm[proxy]==1.108.7'

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .holdout results/*/ .pytest_cache
