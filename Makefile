# Two commands matter: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.tock-installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) tools/bootstrap_venv.py $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) samples/demo.py

lint: $(STAMP)
	$(VENV)/bin/ruff check engine tests bench samples tools
	$(VENV)/bin/ruff format --check engine tests bench samples tools
	$(VENV)/bin/mypy

test: lint
	$(VENV)/bin/pytest -q

bench: $(STAMP)
	$(PY) bench/chain.py
	$(PY) bench/evaluate.py
	$(PY) bench/calendars.py
	$(PY) bench/cli.py
	$(PY) bench/file_latency.py
	$(PY) bench/callbacks.py
	$(PY) bench/callback_chain.py

clean:
	rm -rf $(VENV) demo .pytest_cache .mypy_cache .ruff_cache .hypothesis
