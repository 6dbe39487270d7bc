# The two set-up commands of the README: `make demo` (the main job) and `make test`.
# Both create .venv from requirements.lock on first use; nothing else is installed.
VENV := .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: demo test
demo: $(VENV)/.installed
	$(VENV)/bin/rawdiffusion demo --out demo_out

test: $(VENV)/.installed
	$(PY) -m pytest -q

# --no-deps: the lock is complete, so pip may not swap torch (or anything) for another build;
# pip check then proves the locked set consistent.
$(VENV)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=24"
	$(PY) -m pip install -q --no-deps -r requirements.lock
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	$(PY) -m pip check
	touch $@
