"""Data-parallel training through fairseq's distributed trainer, on CPU with gloo.

Two processes (``scripts/train_distributed_cpu.sh -n 2``) must train exactly the model that one
process trains with ``--update-freq 2``: rank r takes batches r, r + 2, ... and the gradients are
summed before each update, which is what gradient accumulation over two batches does.
"""
import os
import subprocess
from pathlib import Path

import pytest
import torch

from helpers import (REPO, TINY_MODEL_ARGS, USER_DIR, binarize_text, fairseq_cli, run_fairseq,
                     shared_file, write_lines)

LAUNCHER = REPO / "scripts" / "train_distributed_cpu.sh"
UPDATES = 4


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


TASKS = {
    "pmlm": ["--task", "pmlm", "--criterion", "pmlm", "--tokens-per-sample", "64"],
    "unilm_seq2seq": ["--task", "unilm_seq2seq", "--criterion", "unilm_seq2seq",
                      "--max-source-positions", "48", "--max-target-positions", "24"],
}


def train_args(data: Path, task: str, save_dir: Path):
    return [str(data), "--user-dir", USER_DIR, *TASKS[task], *TINY_MODEL_ARGS,
            "--dropout", "0", "--attention-dropout", "0", "--batch-size", "4",
            "--optimizer", "adam", "--lr", "1e-3", "--max-update", str(UPDATES),
            "--no-epoch-checkpoints", "--disable-validation", "--save-dir", str(save_dir),
            "--seed", "3", "--num-workers", "0", "--log-format", "json", "--log-interval", "1"]


def start(command, log_path: Path, **env_vars) -> subprocess.Popen:
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1", **env_vars)
    with open(log_path, "w") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)


def finish(proc: subprocess.Popen, log_path: Path) -> str:
    proc.wait(timeout=600)
    log = log_path.read_text()
    assert proc.returncode == 0, log[-4000:]
    return log


def final_parameters(save_dir: Path):
    state = torch.load(save_dir / "checkpoint_last.pt", weights_only=False)
    assert state["extra_state"]["train_iterator"]["epoch"] == 1
    assert state["optimizer_history"][-1]["num_updates"] == UPDATES
    return state["model"]


@pytest.mark.parametrize("task", sorted(TASKS))
def test_two_gloo_processes_equal_one_process_with_update_freq_2(task, pmlm_data, seq2seq_data,
                                                                 tmp_path):
    data = pmlm_data if task == "pmlm" else seq2seq_data
    # The two trainings are independent: run them side by side.
    single = start([fairseq_cli("fairseq-train"), *train_args(data, task, tmp_path / "one"),
                    "--cpu", "--update-freq", "2"], tmp_path / "one.log")
    two = start(["bash", str(LAUNCHER), "-n", "2", "--", *train_args(data, task, tmp_path / "two")],
                tmp_path / "two.log", FAIRSEQ_TRAIN=fairseq_cli("fairseq-train"))
    assert "training on 1 devices" in finish(single, tmp_path / "one.log")
    log = finish(two, tmp_path / "two.log")
    assert "training on 2 devices" in log and "distributed init (rank 1)" in log

    # Both ran UPDATES Adam steps at lr 1e-3 (checked in final_parameters), which moves every
    # trained weight by far more than the 1e-5 tolerance: agreement is not a trivial one.
    one, both = final_parameters(tmp_path / "one"), final_parameters(tmp_path / "two")
    assert sorted(one) == sorted(both)
    for name, value in one.items():
        torch.testing.assert_close(both[name], value, atol=1e-5, rtol=0, msg=name)


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
               "--ddp-backend legacy_ddp --distributed-no-spawn" in args
