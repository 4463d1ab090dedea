# TSD Book: two commands — `make book` and `make test`.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PROFILE ?= quick
export TSD_RUNS ?= $(CURDIR)/runs

.PHONY: book test install lint bench lock clean screenshots pdf

install: $(STAMP)

# Creates the virtualenv when missing and installs the locked versions; the stamp makes a
# second run install nothing until pyproject.toml or the lock file changes.
$(STAMP): pyproject.toml requirements-lock.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-lock.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	@touch $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

test: $(STAMP) lint
	$(VENV)/bin/pytest -q

# The quick profile's grid and chapters (papermill), then the static site in _build/html.
book: $(STAMP)
	$(VENV)/bin/tsd reproduce --profile $(PROFILE)
	$(VENV)/bin/jupyter-book build . -W --keep-going

# Walk the built site offline in headless Chromium (every page) and refresh docs/*.png.
screenshots: $(STAMP)
	$(VENV)/bin/tsd site-check --screenshots docs

# The whole book as one PDF, in _toc.yml order, printed offline by headless Chromium from the
# site `make book` built (run that first).
pdf: $(STAMP)
	$(VENV)/bin/tsd pdf --html _build/html --out _build/pdf/tsd-book.pdf

bench: $(STAMP)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# Refresh the lock after a green `make test` (torch stays pinned to the tested CPU release).
lock: $(STAMP)
	$(PY) -m pip freeze --exclude-editable | sed -E 's/^torch==([0-9.]+)\+cpu$$/torch==\1/' > requirements-lock.txt

clean:
	rm -rf _build book/chapters .pytest_cache .ruff_cache reports
