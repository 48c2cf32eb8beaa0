"""fairseq's --tensorboard-logdir in the default set-up: the AE and PAR losses as TensorBoard
curves, the same numbers as the log."""
import json
import math
import re

from helpers import TINY_MODEL_ARGS, USER_DIR, binarize_text, run_fairseq


def json_log(output: str, tag: str):
    """The JSON records that fairseq's --log-format json printed under ``tag``."""
    return [json.loads(m) for m in re.findall(rf"\| {tag} \| (\{{.*\}})$", output, flags=re.M)]


def scalars(logdir, name: str):
    """{step: value} of one scalar of a TensorBoard event directory, read as TensorBoard reads
    it."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(logdir))
    events.Reload()
    assert name in events.Tags()["scalars"], f"{logdir}: no {name} in {events.Tags()}"
    return {event.step: event.value for event in events.Scalars(name)}


def test_pmlm_losses_reach_tensorboard(tmp_path):
    data = binarize_text(["the cat sat on the mat", "a dog ran in the park and sat down",
                          "the park was in the mat and the dog"] * 30, tmp_path / "data-bin")
    proc = run_fairseq("fairseq-train", [
        data, "--user-dir", USER_DIR, "--task", "pmlm", "--criterion", "pmlm", *TINY_MODEL_ARGS,
        "--tokens-per-sample", 32, "--batch-size", 8, "--optimizer", "adam", "--lr", "1e-3",
        "--max-update", 4, "--log-interval", 1, "--log-format", "json",
        "--tensorboard-logdir", tmp_path / "tb", "--save-dir", tmp_path / "ckpt",
        "--no-save", "--cpu", "--num-workers", 0], threads=1)
    output = proc.stdout + proc.stderr
    assert "Please install tensorboardX" not in output
    assert "tensorboard not found" not in output

    logged = {int(r["num_updates"]): r for r in json_log(output, "train_inner")}
    assert sorted(logged) == [1, 2, 3, 4]
    for name in ("ae_loss", "par_loss", "loss"):
        curve = scalars(tmp_path / "tb" / "train_inner", name)
        assert sorted(curve) == [1, 2, 3, 4]
        for step, value in curve.items():
            assert math.isfinite(value)
            assert abs(value - float(logged[step][name])) < 6e-4, (name, step, value)
    valid = json_log(output, "valid")[-1]
    for name in ("ae_loss", "par_loss"):
        curve = scalars(tmp_path / "tb" / "valid", name)
        assert abs(curve[4] - float(valid[f"valid_{name}"])) < 6e-4
