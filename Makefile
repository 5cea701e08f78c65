# Hearth — every target sets itself up: a fresh clone needs nothing but Python 3.11.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo test chromium lint ui bench bench-quick clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

## The whole product against the offline sandbox, in one command.
demo: $(STAMP)
	$(PY) -m flows.demo

## The test suite (what CI runs), one worker per core, each test module kept on one worker
## (its module fixtures are built once). The Prefect UI test drives headless Chromium (Debian's package).
test: $(STAMP) chromium
	$(PY) -m pytest -n auto --dist loadscope

chromium:
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
		|| echo "chromium is missing and could not be installed: tests/integration/test_ui.py will fail"

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

## Hearth in the Prefect UI: sandbox, local Prefect server, deployments and a worker (Ctrl-C stops all).
ui: $(STAMP)
	$(VENV)/bin/hearth ui

## Scale benchmarks (see bench/README.md); the large shop is generated once, cached in bench/out/.
bench: $(STAMP)
	$(PY) -m bench.run --size full

## The same measurements on a ~2,000-customer shop, in well under a minute.
bench-quick: $(STAMP)
	$(PY) -m bench.run --size quick

clean:
	rm -rf data .pytest_cache
