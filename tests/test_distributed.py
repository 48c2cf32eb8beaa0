"""Data-parallel training through fairseq's distributed trainer, on CPU with gloo.

Two processes (``scripts/train_distributed_cpu.sh -n 2``) must train exactly the model that one
process trains with ``--update-freq 2``: rank r takes batches r, r + 2, ... and the gradients are
summed before each update, which is what gradient accumulation over two batches does.

The launcher uses fairseq's default DDP backend, ``pytorch_ddp`` (torch's
DistributedDataParallel, what GPU users run): its bucketed all-reduce, and its check that every
trained parameter got a gradient, which stops a run at its second step otherwise. Every training
path of the plugin is run through it, without ``--find-unused-parameters``; ``legacy_ddp``
(fairseq's own all-reduce) stays available by naming it.
"""
import os
import subprocess
from pathlib import Path

import pytest
import torch

from helpers import (REPO, TINY_MODEL_ARGS, USER_DIR, binarize_text, fairseq_cli, run_fairseq,
                     shared_file, write_lines, write_wordpiece_vocab)

LAUNCHER = REPO / "scripts" / "train_distributed_cpu.sh"
UPDATES = 4  # of 2 batches each: 8 batches, past DDP's check at the second step


@pytest.fixture(scope="module")
def pmlm_data(tmp_path_factory) -> Path:
    lines = shared_file("wikitext2", "valid.txt").read_text(encoding="utf-8").splitlines()[:300]
    return binarize_text(lines, tmp_path_factory.mktemp("wikitext2-bin"))


@pytest.fixture(scope="module")
def seq2seq_data(tmp_path_factory) -> Path:
    src = shared_file("nqg", "src-dev.txt").read_text(encoding="utf-8").splitlines()[:200]
    tgt = shared_file("nqg", "tgt-dev.txt").read_text(encoding="utf-8").splitlines()[:200]
    raw = tmp_path_factory.mktemp("nqg-raw")
    write_lines(raw / "train.src", src)
    write_lines(raw / "train.tgt", tgt)
    destdir = tmp_path_factory.mktemp("nqg-bin")
    run_fairseq("fairseq-preprocess", ["-s", "src", "-t", "tgt", "--joined-dictionary",
                                       "--trainpref", raw / "train", "--destdir", destdir,
                                       "--workers", "1", "--thresholdsrc", "2"])
    return destdir


@pytest.fixture(scope="module")
def classification_data(tmp_path_factory) -> Path:
    """Wikitext sentences in their word order or shuffled, binarized as for GLUE."""
    import random

    from test_sentence_prediction import preprocess_glue_style, shuffled, wikitext_sentences

    rng = random.Random(0)
    raw = tmp_path_factory.mktemp("word-order-raw")
    sentences = wikitext_sentences("valid", 8, 24)[:120]
    for split in ("train", "valid"):
        examples = [(" ".join(shuffled(words, rng)), "shuffled") if i % 2 else
                    (" ".join(words), "original") for i, words in enumerate(sentences)]
        write_lines(raw / f"{split}.input0", [text for text, _ in examples])
        write_lines(raw / f"{split}.label", [label for _, label in examples])
    return preprocess_glue_style(raw, tmp_path_factory.mktemp("word-order-bin"), ["input0"],
                                 regression=False)


@pytest.fixture(scope="module")
def squad_data(tmp_path_factory) -> Path:
    """Tiny SQuAD v2.0 splits of the tiny WordPiece vocabulary's words, and its dict.txt."""
    from test_docs import write_squad_splits

    from fairseq_unilmv2.convert.vocab import read_wordpiece_vocab, write_fairseq_dict

    root = tmp_path_factory.mktemp("squad")
    write_squad_splits(root)
    write_wordpiece_vocab(root / "vocab.txt")
    write_fairseq_dict(read_wordpiece_vocab(root / "vocab.txt"), root / "dict.txt")
    return root


TASKS = {
    "pmlm": ["--task", "pmlm", "--criterion", "pmlm", "--tokens-per-sample", "64"],
    "pmlm-ae": ["--task", "pmlm", "--criterion", "pmlm", "--tokens-per-sample", "64",
                "--objective", "ae"],
    "pmlm-ar": ["--task", "pmlm", "--criterion", "pmlm", "--tokens-per-sample", "64",
                "--objective", "ar"],
    "unilm_seq2seq": ["--task", "unilm_seq2seq", "--criterion", "unilm_seq2seq",
                      "--max-source-positions", "48", "--max-target-positions", "24"],
    "sentence_prediction": ["--task", "sentence_prediction", "--criterion",
                            "sentence_prediction", "--num-classes", "2", "--init-token", "0",
                            "--separator-token", "2", "--max-positions", "64",
                            "--pooler-dropout", "0"],
    "squad": ["--task", "squad", "--criterion", "squad_span", "--max-seq-length", "48",
              "--doc-stride", "16", "--max-query-length", "12"],
}


def task_data(task: str, request) -> Path:
    name = {"unilm_seq2seq": "seq2seq_data", "sentence_prediction": "classification_data",
            "squad": "squad_data"}.get(task, "pmlm_data")
    return request.getfixturevalue(name)


def train_args(data: Path, task: str, save_dir: Path):
    extra = ["--wordpiece-vocab", str(data / "vocab.txt")] if task == "squad" else []
    return [str(data), "--user-dir", USER_DIR, *TASKS[task], *extra, *TINY_MODEL_ARGS,
            "--dropout", "0", "--attention-dropout", "0", "--batch-size", "4",
            "--optimizer", "adam", "--lr", "1e-3", "--max-update", str(UPDATES),
            "--no-epoch-checkpoints", "--disable-validation", "--save-dir", str(save_dir),
            "--seed", "3", "--num-workers", "0", "--log-format", "json", "--log-interval", "1"]


def start(command, log_path: Path, **env_vars) -> subprocess.Popen:
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1", **env_vars)
    with open(log_path, "w") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)


def finish(proc: subprocess.Popen, log_path: Path, check: bool = True) -> str:
    proc.wait(timeout=600)
    log = log_path.read_text()
    if check:
        assert proc.returncode == 0, log[-4000:]
    return log


def launch(args, log_path: Path) -> subprocess.Popen:
    return start(["bash", str(LAUNCHER), "-n", "2", "--", *args], log_path,
                 FAIRSEQ_TRAIN=fairseq_cli("fairseq-train"))


def final_parameters(save_dir: Path):
    state = torch.load(save_dir / "checkpoint_last.pt", weights_only=False)
    assert state["extra_state"]["train_iterator"]["epoch"] == 1
    assert state["optimizer_history"][-1]["num_updates"] == UPDATES
    return state["model"]


def assert_data_parallel_invariant(task: str, data: Path, tmp_path: Path, *backend):
    """Two ranks under ``backend`` (the launcher's default when empty) end with one
    process's parameters under ``--update-freq 2``."""
    # The two trainings are independent: run them side by side.
    single = start([fairseq_cli("fairseq-train"), *train_args(data, task, tmp_path / "one"),
                    "--cpu", "--update-freq", "2"], tmp_path / "one.log")
    two = launch([*train_args(data, task, tmp_path / "two"), *backend], tmp_path / "two.log")
    assert "training on 1 devices" in finish(single, tmp_path / "one.log")
    log = finish(two, tmp_path / "two.log")
    assert "training on 2 devices" in log and "distributed init (rank 1)" in log
    expected_backend = backend[-1] if backend else "pytorch_ddp"
    assert f"'ddp_backend': '{expected_backend}'" in log

    # Both ran UPDATES Adam steps at lr 1e-3 (checked in final_parameters), which moves every
    # trained weight by far more than the 1e-5 tolerance: agreement is not a trivial one.
    one, both = final_parameters(tmp_path / "one"), final_parameters(tmp_path / "two")
    assert sorted(one) == sorted(both)
    for name, value in one.items():
        torch.testing.assert_close(both[name], value, atol=1e-5, rtol=0, msg=name)
    return log


@pytest.mark.parametrize("task", sorted(TASKS))
def test_pytorch_ddp_on_two_gloo_processes_equals_one_process_with_update_freq_2(
        task, request, tmp_path):
    """fairseq's default DDP backend, no --find-unused-parameters: every parameter trained
    in every path gets a gradient (the LM head is frozen under a task head)."""
    assert_data_parallel_invariant(task, task_data(task, request), tmp_path)


@pytest.mark.parametrize("task", ["pmlm", "unilm_seq2seq"])
def test_legacy_ddp_named_by_the_user_is_kept(task, request, tmp_path):
    assert_data_parallel_invariant(task, task_data(task, request), tmp_path,
                                   "--ddp-backend", "legacy_ddp")


def test_a_parameter_without_gradient_stops_pytorch_ddp(classification_data, tmp_path):
    """Why the LM head is frozen under a classification head: kept trainable, it gets no
    gradient, and DDP stops at the second step unless told to look for unused parameters
    (a walk of the autograd graph at every step)."""
    args = [*train_args(classification_data, "sentence_prediction", tmp_path / "kept"),
            "--keep-lm-head-trainable"]
    log = finish(launch(args, tmp_path / "kept.log"), tmp_path / "kept.log", check=False)
    assert "Expected to have finished reduction in the prior iteration" in log, log[-3000:]
    assert "lm_head" in log  # DDP names the parameters that got no gradient
    finish(launch([*args, "--find-unused-parameters"], tmp_path / "found.log"),
           tmp_path / "found.log")


def test_restored_state_reaches_the_other_rank(pmlm_data, tmp_path):
    """A second run resumes from checkpoint_last.pt: rank 0 reads it and broadcasts it to rank
    1 (``broadcast_object``, through the checkpoint allow-list)."""
    args = train_args(pmlm_data, "pmlm", tmp_path / "run")
    finish(launch(args, tmp_path / "first.log"), tmp_path / "first.log")
    resumed = [*args[:args.index("--max-update") + 1], str(UPDATES + 2),
               *args[args.index("--max-update") + 2:]]
    log = finish(launch(resumed, tmp_path / "resumed.log"), tmp_path / "resumed.log")
    assert f"Loaded checkpoint {tmp_path / 'run' / 'checkpoint_last.pt'} (epoch 1 @ {UPDATES} " \
           "updates)" in log
    state = torch.load(tmp_path / "run" / "checkpoint_last.pt", weights_only=False)
    assert state["optimizer_history"][-1]["num_updates"] == UPDATES + 2


def test_launcher_stops_the_other_ranks_when_one_fails(tmp_path):
    """When rank 1 dies, rank 0 (which would wait forever for it in gloo) is stopped and the
    launcher exits with rank 1's status. A stand-in for fairseq-train plays the two ranks:
    each records its arguments, then rank 1 fails and rank 0 hangs."""
    fake_train = tmp_path / "fake-fairseq-train"
    fake_train.write_text(
        "#!/usr/bin/env bash\n"
        "echo \"$@\" > \"$(dirname \"$0\")/args.$$\"\n"
        "case \" $* \" in *' --distributed-rank 1 '*)\n"
        "    while [ $(ls \"$(dirname \"$0\")\" | grep -c '^args') -lt 2 ]; do sleep 0.05; done\n"
        "    exit 3 ;;\n"
        "esac\n"
        "sleep 120\n")
    fake_train.chmod(0o755)
    env = dict(os.environ, FAIRSEQ_TRAIN=str(fake_train))
    proc = subprocess.run(["bash", str(LAUNCHER), "-n", "2", "-p", "29999", "--", "data-bin",
                           "--task", "pmlm"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3
    assert "a rank exited with status 3; stopping the others" in proc.stderr
    launched = sorted(p.read_text() for p in tmp_path.glob("args.*"))
    assert len(launched) == 2
    for rank, args in enumerate(launched):
        assert args.startswith("data-bin --task pmlm --cpu --distributed-world-size 2 "
                               f"--distributed-rank {rank} ")
        assert "--distributed-init-method tcp://127.0.0.1:29999 --distributed-backend gloo " \
               "--ddp-backend pytorch_ddp --distributed-no-spawn" in args
