"""``scripts/ablation.py --quick``: the objective ablation end to end, then resumed.

One run with two objectives (``ar``: a step per masked token, the layout furthest from
masked_lm's; ``ae``: masked_lm's layout), one seed and the from-scratch row, on ../shared/data
(wikitext2 for pre-training and, from its held-out paragraphs, the three default tasks), shared
between two worker processes (``--jobs 2``), checked artefact by artefact; then the same command
again, which must keep every finished cell and run no fairseq stage. A second study runs the
GPU-scale tasks (qg, question-match, squad) with ``--mask-only``.
"""
import json
import shutil
import subprocess
import sys

import pytest

from helpers import REPO, shared_file

sys.path.insert(0, str(REPO / "scripts"))
import ablation  # noqa: E402

COMMAND = ["--quick", "--objectives", "ar", "ae", "--seeds", "1", "--jobs", "2"]
# --quick's pre-training: 20 updates of 16 blocks of 16 tokens.
QUICK_TEXT_TOKENS = 20 * 16 * 16


def run_ablation(out, command=COMMAND):
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "ablation.py"), *command,
                           "--out", str(out)], capture_output=True, text=True, timeout=2400,
                          env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    if "--jobs" in command and command[command.index("--jobs") + 1] == "1":
        return proc.stdout
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
    assert "--leave-unmasked-prob" not in stdout  # BERT's 80/10/10 rule by default
    assert "--task unilm_seq2seq" in stdout and "fairseq-generate" in stdout
    assert "--task sentence_prediction" in stdout and "fairseq-validate" in stdout
    assert "--task squad" in stdout and "scripts/squad.py predict" in stdout
    assert "scripts/score.py" in stdout


def test_table_has_every_row_and_task(study):
    out, stdout, _ = study
    results = json.loads((out / "results.json").read_text())
    table, tasks = results["table"], ablation.DEFAULT_TASKS
    assert list(table) == ["ar", "ae", "scratch", "trivial baseline"]
    for row in ("ar", "ae", "scratch", "trivial baseline"):
        for task in tasks:
            for key in ablation.metric_keys(task):
                stat = table[row][task][key]
                assert stat["n"] == 1
                assert 0 <= stat["mean"] <= 100
    # The objective logs its own loss only.
    assert set(table["ar"]["valid_loss"]) == {"ar_loss"}
    assert set(table["ae"]["valid_loss"]) == {"ae_loss"}
    assert table["scratch"]["valid_loss"] == {}
    # Original and respelled words in pairs: the majority class is right half the time.
    assert table["trivial baseline"]["spelling"]["accuracy"]["mean"] == 50.0
    # Each task's comparison names every row once, best first.
    for task in tasks:
        order = results["comparisons"][task]["order"]
        assert sorted(order) == sorted(table)
        means = [table[row][task][ablation.TASKS[task].metric]["mean"] for row in order]
        assert means == sorted(means, reverse=True)
    markdown = (out / "results.md").read_text()
    assert "| objective |" in markdown and "| ar |" in markdown and "| ae |" in markdown
    assert "| scratch |" in markdown and "Differences beyond 2 sd" in markdown
    assert markdown.strip().splitlines()[-1] in stdout
    # The time of each kind of cell.
    kinds = results["cell_minutes"]
    assert {"pretrain ae", "pretrain with pseudo masks"} <= set(kinds)
    assert all(f"{task} fine-tuning and scoring" in kinds for task in tasks)


def test_a_task_retuned_remakes_its_cells_only(study, tmp_path):
    """Another --spelling-updates on the same --out: the spelling cells of every row are made
    again, the pre-trainings and the other tasks' cells are kept; another model size is still
    refused."""
    out, _, _ = study
    copy = tmp_path / "study"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("checkpoints"))
    updates = str(ablation.QUICK["spelling_updates"] + 1)
    stdout = run_ablation(copy, [*COMMAND, "--spelling-updates", updates])
    assert f"--spelling-updates {ablation.QUICK['spelling_updates']} -> {updates}" in stdout
    assert stdout.count("--criterion sentence_prediction") == 3  # ar, ae, scratch
    assert "--task pmlm" not in stdout and "--task squad" not in stdout
    assert "--task unilm_seq2seq" not in stdout
    assert len(list((copy / "cells" / "superseded").glob("spelling__*.json"))) == 3
    settings = json.loads((copy / "settings.json").read_text())
    assert settings["spelling_updates"] == int(updates)
    refused = subprocess.run([sys.executable, str(REPO / "scripts" / "ablation.py"), *COMMAND,
                              "--vocab-size", "99", "--out", str(copy)],
                             capture_output=True, text=True, timeout=600,
                             env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
    assert refused.returncode != 0 and "(--vocab-size)" in refused.stderr


def test_task_examples_come_from_paragraphs_held_out_of_pretraining(study):
    out, _, _ = study
    cfg = ablation.parse_args([*COMMAND, "--out", str(out)])
    paragraphs = ablation.paragraphs_of(cfg)
    held_out = paragraphs[::cfg.task_paragraph_every]
    pretraining = set((out / "text" / "pretrain" / "train.txt").read_text().splitlines()) | \
        set((out / "text" / "pretrain" / "valid.txt").read_text().splitlines())
    assert held_out and not set(held_out) & pretraining
    assert len(pretraining) == len(set(paragraphs) - set(held_out))
    test_paragraphs = [p for i, p in enumerate(held_out) if ablation.held_out_split(i) == "test"]
    sources = (out / "text" / "backwards-word" / "test.src").read_text().splitlines()
    targets = (out / "text" / "backwards-word" / "test.tgt").read_text().splitlines()
    for source, target in zip(sources, targets):
        context = source.replace(f"[{target[::-1]}]", target)
        assert any(context in paragraph for paragraph in test_paragraphs)


def test_gpu_scale_tasks_and_mask_only(tmp_path):
    """qg, question-match and squad (the shared SQuAD slice, split by article) run through the
    same stages; --mask-only pre-trains with every masked position shown as <mask>."""
    shared_file("squad", "dev-v2.0-first3.json")
    shared_file("nqg", "src-dev.txt")
    stdout = run_ablation(tmp_path, ["--quick", "--objectives", "ae+par", "--seeds", "1",
                                     "--jobs", "1", "--skip-scratch", "--mask-only",
                                     "--tasks", "qg", "question-match", "squad"])
    assert "--leave-unmasked-prob 0 --random-token-prob 0" in stdout
    results = json.loads((tmp_path / "results.json").read_text())
    table = results["table"]
    assert list(table) == ["ae+par", "trivial baseline"]
    assert set(table["ae+par"]) >= {"qg", "question-match", "squad"}
    assert 0 <= table["ae+par"]["squad"]["f1"]["mean"] <= 100
    assert 40 <= table["trivial baseline"]["question-match"]["accuracy"]["mean"] <= 60
    # The squad task: answerable questions only, lower-cased, the last article the test set.
    test = json.loads((tmp_path / "text" / "squad" / "test.json").read_text())["data"]
    assert [a["title"] for a in test] == ["Southern_California"]
    questions = [qa for p in test[0]["paragraphs"] for qa in p["qas"]]
    assert questions and all(qa["answers"] for qa in questions)
    for p in test[0]["paragraphs"]:
        assert p["context"] == p["context"].lower()
        for qa in p["qas"]:
            answer = qa["answers"][0]
            start = answer["answer_start"]
            assert p["context"][start:start + len(answer["text"])] == answer["text"]


def test_comparisons_name_clear_differences_and_rows_that_learned():
    stat = lambda mean, std: {"mean": mean, "std": std, "n": 3}  # noqa: E731
    task = ablation.DEFAULT_TASKS[0]
    metric = ablation.TASKS[task].metric
    rows = {"ae+par": stat(30.0, 2.0), "ae": stat(27.0, 1.0), "par": stat(10.0, 6.0),
            "scratch": stat(5.0, 1.0), "trivial baseline": {"mean": 8.0, "std": 0.0, "n": 1}}
    table = {row: {task: {metric: value}} for row, value in rows.items()}
    result = ablation.comparisons(table, [task])[task]
    assert result["order"] == ["ae+par", "ae", "par", "trivial baseline", "scratch"]
    # 30 - 27 = 3 is not beyond 2 x 2; 30 - 10 = 20 is beyond 2 x 6; 10 - 5 = 5 is not beyond 12.
    assert ["ae+par", "ae"] not in result["clearly_above"]
    assert ["ae+par", "par"] in result["clearly_above"]
    assert ["par", "scratch"] not in result["clearly_above"]
    assert result["learned"] == ["ae+par", "ae"]


def test_documented_table_is_the_recorded_default_run():
    """The default run's table in the README and in the recipe is the one its record holds
    (benchmarks/results/ablation.json), as ``markdown`` writes it: a rerun that changes the
    record must change both documents."""
    record = json.loads((REPO / "benchmarks" / "results" / "ablation.json").read_text())
    result, config = record["result"], record["result"]["config"]
    written = ablation.markdown(result["table"], result["comparisons"], config["tasks"],
                                config["seeds"])
    rows = [line for line in written.splitlines() if line.startswith("|")]
    assert len(rows) == 2 + len(result["table"])  # header, rule, one line a row
    assert "ae+par" in result["comparisons"]["backwards-word"]["learned"]
    for doc in (REPO / "README.md", REPO / "examples" / "ablation" / "README.md"):
        assert "\n".join(rows) in doc.read_text(encoding="utf-8"), (
            f"{doc.relative_to(REPO)} lacks the recorded default table:\n" + "\n".join(rows))
