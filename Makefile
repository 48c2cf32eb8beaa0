# The project's own set-up: every install step lives in scripts/setup_env.sh.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup test demo bench clean

setup:
	VENV=$(VENV) bash scripts/setup_env.sh

test: setup
	$(PYTHON) -m pytest -q tests

demo: setup
	$(PYTHON) scripts/quickstart.py

bench: setup
	$(PYTHON) benchmarks/pretrain_step.py
	$(PYTHON) benchmarks/decode.py
	$(PYTHON) benchmarks/data_throughput.py
	$(PYTHON) benchmarks/squad_step.py

clean:
	rm -rf $(VENV) demo_out .pytest_cache
