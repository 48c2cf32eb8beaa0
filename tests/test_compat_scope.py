"""What loading the plugin changes for other fairseq tasks (``fairseq_unilmv2/compat.py``).

The fixes that change results reach another task only where the change is the fix: fairseq's
own ``translation`` task, run through its real CLIs once without the plugin and once with
``--user-dir fairseq_unilmv2``, trains exactly as before (fix 2 keeps fairseq-fixed's training
batches for it), generates every test sentence (fix 2 at inference), blocks repeated bigrams
on the CPU under ``--no-repeat-ngram-size 2`` (fix 10), and stops at a ``--restore-file``
that does not exist (fix 5). The in-process tests show the scope of the others.
"""
import os
import random
import re
import subprocess
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
import torch
from fairseq import options
from fairseq.data import ListDataset, iterators
from fairseq.dataclass.utils import convert_namespace_to_omegaconf
from fairseq.ngram_repeat_block import NGramRepeatBlock

from helpers import USER_DIR, fairseq_cli, run_fairseq, write_lines

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi pi".split()
# 60 training pairs: batches of 8 leave a last batch of 4, which fairseq-fixed drops
# (--required-batch-size-multiple 8, the default); 13 test pairs: 8 + a last batch of 5.
SPLITS = {"train": 60, "valid": 8, "test": 13}
TRANSLATION_MODEL = [
    "--task", "translation", "--arch", "transformer", "--encoder-layers", "1",
    "--decoder-layers", "1", "--encoder-embed-dim", "16", "--decoder-embed-dim", "16",
    "--encoder-ffn-embed-dim", "32", "--decoder-ffn-embed-dim", "32",
    "--encoder-attention-heads", "2", "--decoder-attention-heads", "2",
]


@pytest.fixture(scope="module")
def translation_data(tmp_path_factory) -> Path:
    """Word-reversal pairs over a small vocabulary, binarized with a joined dictionary."""
    work = tmp_path_factory.mktemp("translation")
    rng = random.Random(0)
    for split, n in SPLITS.items():
        sources = [rng.choices(WORDS, k=rng.randint(4, 9)) for _ in range(n)]
        write_lines(work / f"{split}.src", [" ".join(s) for s in sources])
        write_lines(work / f"{split}.tgt", [" ".join(reversed(s)) for s in sources])
    run_fairseq("fairseq-preprocess", [
        "-s", "src", "-t", "tgt", "--joined-dictionary", "--trainpref", work / "train",
        "--validpref", work / "valid", "--testpref", work / "test",
        "--destdir", work / "data-bin", "--workers", "1"])
    return work


def run_cli(name: str, args, plugin: bool, check: bool = True) -> subprocess.CompletedProcess:
    """A fairseq CLI on the CPU, with ``--user-dir fairseq_unilmv2`` or stock. Stock fairseq
    cannot load its own checkpoints under torch >= 2.6 (``weights_only``): torch's own switch
    turns that default off for it, as compat fix 1 does inside fairseq's loaders."""
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
    if not plugin:
        env["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"
    args = [str(a) for a in args] + (["--user-dir", USER_DIR] if plugin else [])
    proc = subprocess.run([fairseq_cli(name), *args], env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0 or not check, \
        f"{name}:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
    return proc


def train(data: Path, save_dir: Path, *extra, plugin: bool, check=True):
    return run_cli("fairseq-train", [
        data / "data-bin", *TRANSLATION_MODEL, "--optimizer", "adam", "--lr", "1e-3",
        "--batch-size", "8", "--max-epoch", "1", "--cpu", "--num-workers", "0", "--seed", "1",
        "--disable-validation", "--log-format", "simple", "--log-interval", "1",
        "--save-dir", save_dir, *extra], plugin, check=check)


def update_losses(log: str) -> List[str]:
    """The per-update loss lines of a fairseq-train log, as logged."""
    return re.findall(r"\| epoch 001:\s+(\d+) / \d+ loss=([0-9.]+)", log)


def hypotheses(stdout: str) -> Dict[int, List[str]]:
    out = {}
    for line in stdout.splitlines():
        if line.startswith("H-"):
            sample_id, _, tokens = line.split("\t")
            out[int(sample_id[2:])] = tokens.split()
    return out


def repeats_a_bigram(tokens: List[str]) -> bool:
    bigrams = list(zip(tokens, tokens[1:]))
    return len(set(bigrams)) < len(bigrams)


@pytest.fixture(scope="module")
def translation_runs(translation_data, tmp_path_factory):
    """Stock fairseq and fairseq with the plugin, on fairseq's own translation task."""
    work = tmp_path_factory.mktemp("runs")
    missing = work / "missing.pt"
    plain = train(translation_data, work / "plain", "--restore-file", missing, plugin=False)
    plugin = train(translation_data, work / "plugin", plugin=True)
    plugin_missing = train(translation_data, work / "plugin_missing", "--restore-file", missing,
                           plugin=True, check=False)
    generate = [translation_data / "data-bin", "--task", "translation",
                "--path", work / "plain" / "checkpoint_last.pt", "--gen-subset", "test",
                "--batch-size", "8", "--beam", "2", "--no-repeat-ngram-size", "2",
                "--min-len", "8", "--max-len-a", "0", "--max-len-b", "10", "--cpu",
                "--num-workers", "0"]
    return {"plain": plain, "plugin": plugin, "plugin_missing": plugin_missing,
            "missing": missing,
            "plain_generate": run_cli("fairseq-generate", generate, plugin=False),
            "plugin_generate": run_cli("fairseq-generate", generate, plugin=True)}


def test_translation_trains_as_without_the_plugin(translation_runs):
    """Fix 2 is scoped: the translation epoch keeps fairseq-fixed's batches (7 of 8, its last
    batch of 4 dropped), and every update's loss is the one stock fairseq logs."""
    plain = update_losses(translation_runs["plain"].stdout + translation_runs["plain"].stderr)
    plugin = update_losses(translation_runs["plugin"].stdout + translation_runs["plugin"].stderr)
    assert len(plain) == 7, translation_runs["plain"].stderr[-2000:]
    # Exact: both runs are on this machine with the same kernels; the plugin must change nothing.
    assert plugin == plain


def test_generation_sees_every_test_sentence_and_blocks_repeated_bigrams(translation_runs):
    """Fixes 2 and 10, global because the change is the fix: stock fairseq-generate on the CPU
    drops the last batch (5 of 13 sentences) and repeats bigrams despite
    --no-repeat-ngram-size 2; with the plugin all 13 come out and none repeats a bigram."""
    plain = hypotheses(translation_runs["plain_generate"].stdout)
    plugin = hypotheses(translation_runs["plugin_generate"].stdout)
    assert len(plain) == 8 and len(plugin) == SPLITS["test"]
    assert any(repeats_a_bigram(h) for h in plain.values()), plain
    assert not any(repeats_a_bigram(h) for h in plugin.values()), plugin
    assert all(len(h) >= 8 for h in plugin.values())


def test_missing_restore_file_stops_other_tasks_too(translation_runs):
    """Fix 5, global because the change is the fix: stock fairseq trains from scratch."""
    plain = translation_runs["plain"].stdout + translation_runs["plain"].stderr
    assert "No existing checkpoint found" in plain
    failed = translation_runs["plugin_missing"]
    assert failed.returncode != 0
    assert f"--restore-file {translation_runs['missing']} does not exist" in failed.stderr


# ----------------------------------------------------------------------------- in process
def test_restore_file_is_checked_through_fairseq_path_manager(monkeypatch):
    """A path that fairseq's PathManager opens (here a remote-storage handler's) passes."""
    from fairseq.file_io import PathManager

    from fairseq_unilmv2.data.checks import check_restore_file

    remote = {"manifold://bucket/ckpt.pt"}
    monkeypatch.setattr(PathManager, "isfile", staticmethod(lambda path: path in remote))
    check_restore_file("manifold://bucket/ckpt.pt")
    with pytest.raises(FileNotFoundError, match="manifold://bucket/other.pt does not exist"):
        check_restore_file("manifold://bucket/other.pt")


def test_persistent_workers_change_only_for_the_plugins_datasets():
    """Fix 9 is scoped: fairseq's datasets keep persistent workers and the task's own setting."""
    from fairseq.data import Dictionary

    from fairseq_unilmv2.data.pmlm_dataset import PMLMDataset

    lines = [torch.tensor([4, 5, 6, 2]) for _ in range(4)]
    theirs = ListDataset(lines, np.full(4, 4))
    d = Dictionary()
    mask = d.add_symbol("<mask>")
    ours = PMLMDataset(theirs, np.full(4, 4), d, mask)

    def epoch_iterator(dataset, **kwargs):
        return iterators.EpochBatchIterator(dataset, collate_fn=lambda s: s,
                                            batch_sampler=[[0, 1], [2, 3]], num_workers=1,
                                            **kwargs)

    assert epoch_iterator(theirs).persistent_workers is True
    assert epoch_iterator(theirs, persistent_workers=False).persistent_workers is False
    assert epoch_iterator(ours).persistent_workers is False


def test_tpu_of_a_namespace_not_parsed_from_the_command_line_is_left_alone():
    """Fix 8: a legacy checkpoint's args (bf16 and tpu, never parsed here) keep their tpu."""
    parse = options.parse_args_and_arch.__wrapped__  # fairseq's own, as a checkpoint saved it
    args = parse(options.get_training_parser(), ["data", "--task", "language_modeling",
                                                 "--arch", "transformer_lm", "--bf16"])
    assert (args.bf16, args.tpu) == (True, True)
    cfg = convert_namespace_to_omegaconf(args)
    assert args.tpu is True and cfg.common.tpu is True


@pytest.mark.parametrize("flags, expected", [
    ([], "sentence_classification_head"),
    (["--classification-head-name", "my_head"], "my_head")])
def test_sentence_prediction_head_name_resolves_as_before_with_a_criterion(flags, expected):
    """Fix 6: with a criterion the task's head name is still the criterion's."""
    args = options.parse_args_and_arch(options.get_training_parser(), [
        "data", "--task", "sentence_prediction", "--criterion", "sentence_prediction",
        "--arch", "roberta_base", "--num-classes", "2", *flags])
    cfg = convert_namespace_to_omegaconf(args)
    assert cfg.task.classification_head_name == expected
    assert cfg.criterion.classification_head_name == expected


def test_ngram_blocking_compiles_with_torchscript():
    """Fix 10 keeps fairseq's export path: the scripted block bans what the Python one bans."""
    block = NGramRepeatBlock(2, use_extension=False)
    scripted = torch.jit.script(block)
    # Buffer of 6 steps, 4 generated: "7 8 7" then padding; at step 2 the bigram (7, 8) was
    # seen, so after the last 7 token 8 is banned.
    tokens = torch.tensor([[7, 8, 7, 1, 1, 1]])
    for fn in (block, scripted):
        lprobs = torch.zeros(1, 10)
        out = fn(tokens, lprobs, 1, 1, 2)
        assert torch.isinf(out[0, 8]) and torch.isfinite(out[0, [7, 9]]).all()
