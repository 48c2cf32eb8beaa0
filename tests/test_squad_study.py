"""``scripts/squad_study.py --quick``: the SQuAD study end to end at tiny sizes, then resumed.

Pre-training on WikiText-2, fine-tuning from it and from random weights on the article split of
the shared SQuAD v2.0 slice, predictions, baselines and the report, on ../shared/data; then the
same command again, which must keep every finished stage and run no command.
"""
import json
import os
import re
import subprocess
import sys

import pytest
from helpers import REPO, shared_file


def run_study(out):
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "squad_study.py"), "--quick",
                           "--out", str(out)], capture_output=True, text=True, timeout=2400,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    shared_file("squad", "dev-v2.0-first3.json")
    shared_file("wikitext2", "valid.txt")
    out = tmp_path_factory.mktemp("squad_study")
    return out, run_study(out), run_study(out)


def commands(stdout):
    return [line for line in stdout.splitlines() if line.startswith("$ ")]


def test_every_stage_prints_its_command(study):
    _, first, _ = study
    printed = "\n".join(commands(first))
    for stage in ("sentencepiece", "fairseq-preprocess", "--task pmlm --criterion pmlm",
                  "--task squad --criterion squad_span", "scripts/squad.py predict"):
        assert stage in printed, stage
    # Fine-tuning with the recipe's optimizer (no decay on biases and LayerNorm).
    finetuning = [c for c in commands(first) if "--task squad --criterion squad_span" in c]
    assert finetuning and all("--optimizer adam_no_decay_bias_ln" in c and "--adam-eps 1e-6" in c
                              for c in finetuning)


def test_report_has_both_models_and_the_baselines(study):
    out, first, _ = study
    results = json.loads((out / "results.json").read_text())
    assert set(results["baselines"]) == {"no answer", "first sentence"}
    assert results["baselines"]["no answer"]["HasAns_f1"] == 0.0
    assert set(results["models"]) == {"pretrained", "scratch"}
    for stats in results["models"].values():
        for key in ("HasAns_f1", "HasAns_f1_forced", "f1"):
            assert stats[key]["n"] == 1 and 0.0 <= stats[key]["mean"] <= 100.0
    assert "| pretrained |" in first and (out / "results.md").exists()


def test_an_epoch_is_the_windows_the_squad_task_trains_on(study):
    """The fine-tuning's update count comes from the windows --task squad makes of train.json:
    the number the study cached is the one the task logs when fairseq-train loads the split."""
    out, _, _ = study
    windows = int((out / "squad-spm" / "train_windows.txt").read_text())
    log = (out / "runs" / "pretrained-seed1" / "train.log").read_text()
    logged = re.search(r"train: \d+ questions \(v2\.0\), (\d+) windows from", log)
    assert logged and int(logged.group(1)) == windows > 0
    record = json.loads((out / "runs" / "pretrained-seed1" / "result.json").read_text())
    assert record["updates"] == max(1, 1 * windows // 32)  # --quick: 1 epoch, batch 32


def test_a_second_run_keeps_every_stage(study):
    _, _, second = study
    assert commands(second) == []
    assert "| pretrained |" in second
