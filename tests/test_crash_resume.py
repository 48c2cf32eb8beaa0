"""A training run killed with SIGKILL mid-epoch and restarted with the same command follows the
trajectory of a run that was never interrupted (same data order, same masks, same dropout).

fairseq resumes from ``checkpoint_last.pt`` (model, optimizer, LR scheduler, meters and the
position of the epoch iterator); PMLM masks are a function of (seed, epoch, index) and dropout
is reseeded with seed + update number, so every update after the restart must repeat exactly.
Losses are compared at full precision: the runs go through a launcher that stops fairseq from
rounding logged values to 3 decimals (nothing else changes).
"""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict

import pytest
import torch

from helpers import REPO, TINY_MODEL_ARGS, USER_DIR, binarize_text, shared_file

MAX_UPDATE = 24
SAVE_EVERY = 4
KILL_AFTER = 6  # updates logged before the SIGKILL: the restart must redo the ones since the save

# fairseq-train, with logged scalars at full precision instead of rounded to 3 decimals.
FULL_PRECISION_TRAIN = str(REPO / "scripts" / "train_full_precision.py")

# A record line, whichever format the logging setup gives ("... | train_inner | {...}").
TRAIN_INNER = re.compile(r"train_inner\W+(\{.*\})$", re.MULTILINE)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    lines = shared_file("wikitext2", "valid.txt").read_text(encoding="utf-8").splitlines()[:400]
    return binarize_text(lines, tmp_path_factory.mktemp("wikitext2-bin"))


def train_command(data_dir: Path, save_dir: Path):
    return [sys.executable, FULL_PRECISION_TRAIN, str(data_dir), "--user-dir", USER_DIR,
            "--task", "pmlm", "--criterion", "pmlm", *TINY_MODEL_ARGS,
            "--tokens-per-sample", "64", "--batch-size", "4", "--optimizer", "adam",
            "--lr", "5e-4", "--lr-scheduler", "polynomial_decay", "--warmup-updates", "5",
            "--total-num-update", str(MAX_UPDATE), "--max-update", str(MAX_UPDATE),
            "--save-interval-updates", str(SAVE_EVERY), "--keep-interval-updates", "1",
            "--no-epoch-checkpoints", "--disable-validation", "--save-dir", str(save_dir),
            "--log-format", "json", "--log-interval", "1", "--seed", "7", "--cpu",
            "--num-workers", "0"]


def start(command, log_path: Path) -> subprocess.Popen:
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
    with open(log_path, "w") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)


def per_update_stats(log_path: Path) -> Dict[int, dict]:
    """{update number: the train_inner record} of a --log-format json --log-interval 1 log."""
    records = {}
    for match in TRAIN_INNER.finditer(log_path.read_text()):
        record = json.loads(match.group(1))
        records[int(record["num_updates"])] = record
    return records


def run_to_end(command, log_path: Path) -> Dict[int, dict]:
    proc = start(command, log_path)
    assert proc.wait(timeout=600) == 0, log_path.read_text()[-3000:]
    return per_update_stats(log_path)


def kill_after_updates(command, log_path: Path, n_updates: int) -> None:
    """Start the run and SIGKILL it once its log shows ``n_updates`` updates."""
    proc = start(command, log_path)
    deadline = time.monotonic() + 600
    while max(per_update_stats(log_path), default=0) < n_updates:
        assert proc.poll() is None, f"the run ended before it could be killed:\n" \
                                    f"{log_path.read_text()[-3000:]}"
        assert time.monotonic() < deadline, "no progress in the training log"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL


def resumed_from(log_path: Path) -> int:
    """The update count of the checkpoint the restarted run loaded."""
    for line in log_path.read_text().splitlines():
        if "Loaded checkpoint" in line:
            return int(line.split(" @ ")[1].split()[0])
    raise AssertionError(f"the restart loaded no checkpoint:\n{log_path.read_text()[-3000:]}")


def test_sigkill_then_restart_repeats_the_uninterrupted_run(data_dir, tmp_path):
    reference = run_to_end(train_command(data_dir, tmp_path / "uninterrupted"),
                           tmp_path / "uninterrupted.log")
    assert sorted(reference) == list(range(1, MAX_UPDATE + 1))
    assert all(record["epoch"] == 1 for record in reference.values()), "must stay mid-epoch"

    command = train_command(data_dir, tmp_path / "crashed")
    kill_after_updates(command, tmp_path / "killed.log", KILL_AFTER)
    after_restart = run_to_end(command, tmp_path / "restarted.log")  # the very same command

    resumed_at = resumed_from(tmp_path / "restarted.log")
    assert SAVE_EVERY <= resumed_at < MAX_UPDATE and resumed_at % SAVE_EVERY == 0
    assert sorted(after_restart) == list(range(resumed_at + 1, MAX_UPDATE + 1))
    for update, record in after_restart.items():
        expected = reference[update]
        assert float(record["update"]) < 1.0  # same epoch, same position in it
        for key in ("loss", "ae_loss", "par_loss", "lr"):
            assert abs(float(record[key]) - float(expected[key])) <= 1e-6, (update, key)
        assert record["ae_count"] == expected["ae_count"]  # the same masks

    final = torch.load(tmp_path / "crashed" / "checkpoint_last.pt", weights_only=False)["model"]
    uninterrupted = torch.load(tmp_path / "uninterrupted" / "checkpoint_last.pt",
                               weights_only=False)["model"]
    for name, value in uninterrupted.items():
        torch.testing.assert_close(final[name], value, atol=1e-6, rtol=0, msg=name)


def test_a_kill_while_copying_to_checkpoint_last_keeps_the_previous_one(tmp_path, monkeypatch):
    """fairseq copies checkpoint_<epoch>_<updates>.pt to checkpoint_last.pt; dying half-way
    through that copy must leave the previous checkpoint_last.pt whole (compat fix 3)."""
    from fairseq import checkpoint_utils
    from fairseq.file_io import PathManager

    new, last = tmp_path / "checkpoint_1_8.pt", tmp_path / "checkpoint_last.pt"
    new.write_bytes(b"new checkpoint " * 1000)
    last.write_bytes(b"previous checkpoint")

    def copy_killed_half_way(src_path, dst_path, overwrite=False):
        data = Path(src_path).read_bytes()
        Path(dst_path).write_bytes(data[:len(data) // 2])
        raise KeyboardInterrupt("killed during the copy")

    monkeypatch.setattr(PathManager, "copy", staticmethod(copy_killed_half_way))
    with pytest.raises(KeyboardInterrupt):
        checkpoint_utils.PathManager.copy(str(new), str(last), overwrite=True)
    assert last.read_bytes() == b"previous checkpoint"

    monkeypatch.undo()
    assert checkpoint_utils.PathManager.copy(str(new), str(last), overwrite=True)
    assert last.read_bytes() == new.read_bytes()
    assert not Path(str(last) + ".tmp").exists()
