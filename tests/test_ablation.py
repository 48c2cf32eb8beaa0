"""``scripts/ablation.py --quick``: the objective ablation end to end, then resumed.

One run with one objective (``ar``: a step per masked token, the layout furthest from
masked_lm's), one seed and the from-scratch row, on ../shared/data (wikitext2 for pre-training, nqg for the two
fine-tuning tasks), checked artefact by artefact; then the same command again, which must keep
every finished cell and run no fairseq stage.
"""
import json
import subprocess
import sys

import pytest

from helpers import REPO, shared_file

COMMAND = ["--quick", "--objectives", "ar", "--seeds", "1"]
# --quick's pre-training: 20 updates of 16 blocks of 16 tokens.
QUICK_TEXT_TOKENS = 20 * 16 * 16


def run_ablation(out):
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "ablation.py"), *COMMAND,
                           "--out", str(out)], capture_output=True, text=True, timeout=2400,
                          env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


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
    assert list(table) == ["ar", "scratch", "trivial baseline"]
    for row in ("ar", "scratch"):
        for key in ("bleu4", "rougeL", "accuracy"):
            assert table[row][key]["n"] == 1 and 0 <= table[row][key]["mean"] <= 100
    # The objective logs its own loss only.
    assert set(table["ar"]["valid_loss"]) == {"ar_loss"}
    assert table["scratch"]["valid_loss"] == {}
    # Balanced question/sentence classes: the majority class is right about half the time.
    assert 40 <= table["trivial baseline"]["accuracy"]["mean"] <= 60
    markdown = (out / "results.md").read_text()
    assert "| objective |" in markdown and "| ar |" in markdown and "| scratch |" in markdown
    assert markdown.strip().splitlines()[-1] in stdout


def test_pseudo_part_costs_tokens(study):
    """AR reads its pseudo masks and originals on top of the text: ~1.3x the text tokens
    (15% masked, each twice; a few blocks at the end of the data are shorter)."""
    out, _, _ = study
    cells = json.loads((out / "results.json").read_text())["cells"]
    assert 1.15 < cells["ar"]["1"]["pretrain"]["input_tokens"] / QUICK_TEXT_TOKENS < 1.6


def test_plots_are_pngs(study):
    out, _, _ = study
    for name in ("pretraining_curves.png", "finetuning_scores.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rerun_keeps_finished_cells(study):
    out, first, second = study
    assert "fairseq-train" not in second and "fairseq-preprocess" not in second
    kept = second.count("done before, kept")
    assert kept == first.count("\n== ") - 1  # every cell but the header line
    def table(stdout):  # what follows the table (this run's minutes) differs
        return stdout.split("== ablation table")[1].split("\nresults: ")[0]
    assert table(second) == table(first)
