"""``scripts/ablation.py --quick``: the objective ablation end to end, then resumed.

One run with two objectives (``ar``: a step per masked token, the layout furthest from
masked_lm's; ``ae``: masked_lm's layout), one seed and the from-scratch row, on ../shared/data
(wikitext2 for pre-training, nqg for the two fine-tuning tasks), shared between two worker
processes (``--jobs 2``), checked artefact by artefact; then the same command again, which must
keep every finished cell and run no fairseq stage.
"""
import json
import subprocess
import sys

import pytest

from helpers import REPO, shared_file

COMMAND = ["--quick", "--objectives", "ar", "ae", "--seeds", "1", "--jobs", "2"]
# --quick's pre-training: 20 updates of 16 blocks of 16 tokens.
QUICK_TEXT_TOKENS = 20 * 16 * 16


def run_ablation(out):
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "ablation.py"), *COMMAND,
                           "--out", str(out)], capture_output=True, text=True, timeout=2400,
                          env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    workers = sorted((out / "logs").glob("worker*.log"))
    assert len(workers) == 2 and all(f"output: {w}" in proc.stdout for w in workers)
    # The parent's output, then what each worker printed (its stages and their commands).
    return proc.stdout + "".join(w.read_text() for w in workers)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    shared_file("nqg", "src-dev.txt")
    shared_file("wikitext2", "valid.txt")
    out = tmp_path_factory.mktemp("ablation")
    first = run_ablation(out)
    return out, first, run_ablation(out)


def test_every_stage_prints_its_command(study):
    _, stdout, _ = study
    assert "--objective ar --task pmlm --criterion pmlm" in stdout
    assert "--task unilm_seq2seq" in stdout and "fairseq-generate" in stdout
    assert "--task sentence_prediction" in stdout and "fairseq-validate" in stdout
    assert "scripts/score.py" in stdout


def test_table_has_every_row_and_task(study):
    out, stdout, _ = study
    results = json.loads((out / "results.json").read_text())
    table = results["table"]
    assert list(table) == ["ar", "ae", "scratch", "trivial baseline"]
    for row in ("ar", "ae", "scratch"):
        for key in ("bleu4", "rougeL", "accuracy"):
            assert table[row][key]["n"] == 1 and 0 <= table[row][key]["mean"] <= 100
    # The objective logs its own loss only.
    assert set(table["ar"]["valid_loss"]) == {"ar_loss"}
    assert set(table["ae"]["valid_loss"]) == {"ae_loss"}
    assert table["scratch"]["valid_loss"] == {}
    # Balanced question/sentence classes: the majority class is right about half the time.
    assert 40 <= table["trivial baseline"]["accuracy"]["mean"] <= 60
    markdown = (out / "results.md").read_text()
    assert "| objective |" in markdown and "| ar |" in markdown and "| ae |" in markdown
    assert "| scratch |" in markdown
    assert markdown.strip().splitlines()[-1] in stdout


def test_pseudo_part_costs_tokens(study):
    """AR reads its pseudo masks and originals on top of the text: ~1.3x the text tokens
    (15% masked, each twice; a few blocks at the end of the data are shorter); AE the text."""
    out, _, _ = study
    cells = json.loads((out / "results.json").read_text())["cells"]
    assert 1.15 < cells["ar"]["1"]["pretrain"]["input_tokens"] / QUICK_TEXT_TOKENS < 1.6
    assert 0.9 < cells["ae"]["1"]["pretrain"]["input_tokens"] / QUICK_TEXT_TOKENS <= 1.0


def test_plots_are_pngs(study):
    out, _, _ = study
    for name in ("pretraining_curves.png", "finetuning_scores.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rerun_keeps_finished_cells(study):
    out, first, second = study
    assert "fairseq-train" not in second and "fairseq-preprocess" not in second
    cells = len(list((out / "cells").glob("*.json")))
    # The parent reads back every cell; each worker the prepare cell and its rows' cells, that
    # is every cell but the baseline, with prepare twice (two workers).
    assert second.count("done before, kept") == 2 * cells
    def table(stdout):  # what follows the table (this run's minutes) differs
        return stdout.split("== ablation table")[1].split("\nresults: ")[0]
    assert table(second) == table(first)
