"""Loading a checkpoint runs no code (compat fix 1).

A crafted checkpoint whose unpickling would create a file is refused by every loader a user
points at a downloaded file: fairseq's ``load_checkpoint_to_cpu``, the trainer's
``--restore-file``, ``fairseq-generate`` / ``-interactive`` / ``-validate --path``, the hub's
``from_pretrained``, ``scripts/squad.py predict``, ``scripts/convert_checkpoint.py`` and
``scripts/export_checkpoint.py``, and the object rank 0 broadcasts to the other ranks. The
error names the file, the offending type and the switch that trusts it, and the file is not
created. Every kind of checkpoint fairseq writes still loads: this plugin's, one re-saved after
``load_checkpoint_to_cpu`` (omegaconf containers), a legacy-arguments architecture of fairseq's
own translation task (``argparse.Namespace``), NumPy scalars under NumPy 2's and NumPy 1's
module names.
"""
import argparse
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import (REPO, TINY_MODEL_ARGS, USER_DIR, binarize_text, fairseq_cli, run_fairseq,
                     shared_file, write_s2s_ft_release)
from fairseq_unilmv2.compat import TRUST_CHECKPOINTS_ENV, UntrustedCheckpointError


class CreatesAFile:
    """Unpickles by calling ``open(path, "w")``: a stand-in for a pickle that runs code."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny pmlm checkpoint trained by fairseq-train (2 updates) and its data directory."""
    root = tmp_path_factory.mktemp("trained")
    lines = shared_file("wikitext2", "valid.txt").read_text(encoding="utf-8").splitlines()[:200]
    data = binarize_text(lines, root / "bin")
    run_fairseq("fairseq-train", [
        data, "--user-dir", USER_DIR, "--task", "pmlm", "--criterion", "pmlm",
        "--tokens-per-sample", "32", *TINY_MODEL_ARGS, "--batch-size", "4", "--optimizer", "adam",
        "--lr", "1e-3", "--max-update", "2", "--no-epoch-checkpoints", "--disable-validation",
        "--save-dir", root / "ckpt", "--num-workers", "0", "--cpu"], threads=1)
    return root / "ckpt" / "checkpoint_last.pt", data


@pytest.fixture(scope="module")
def crafted(trained, tmp_path_factory):
    """(checkpoint holding a file-creating object beside a real model, the file it would
    create). The model is real, so the loaders get as far as unpickling."""
    root = tmp_path_factory.mktemp("crafted")
    state = torch.load(trained[0], weights_only=False)
    target = root / "created_by_unpickling"
    state["extra_state"]["payload"] = CreatesAFile(target)
    path = root / "model.pt"
    torch.save(state, path)
    return path, target


def assert_refused(message: str, path: Path, target: Path):
    assert str(path) in message, message[-3000:]
    assert "io.open" in message, message[-3000:]
    assert TRUST_CHECKPOINTS_ENV in message, message[-3000:]
    assert not target.exists(), "unpickling ran the checkpoint's code"


def test_load_checkpoint_to_cpu_refuses_code(crafted):
    from fairseq import checkpoint_utils

    path, target = crafted
    with pytest.raises(UntrustedCheckpointError) as error:
        checkpoint_utils.load_checkpoint_to_cpu(str(path))
    assert_refused(str(error.value), path, target)


def test_hub_from_pretrained_refuses_code(crafted, trained):
    from fairseq_unilmv2.models.unilm_v2 import UniLMv2Model

    path, target = crafted
    with pytest.raises(UntrustedCheckpointError) as error:
        UniLMv2Model.from_pretrained(str(path.parent), checkpoint_file=path.name,
                                     data_name_or_path=str(trained[1]))
    assert_refused(str(error.value), path, target)


def test_broadcast_object_refuses_code(crafted):
    """Rank 0's restored state reaches the other ranks through ``torch.load`` of a buffer."""
    from fairseq.distributed import utils as distributed_utils

    buffer = io.BytesIO()
    torch.save({"payload": CreatesAFile(crafted[1])}, buffer)
    buffer.seek(0)
    with pytest.raises(UntrustedCheckpointError, match="io.open"):
        distributed_utils.torch.load(buffer, map_location="cpu")
    assert not crafted[1].exists()


def run(command, **env_vars) -> subprocess.CompletedProcess:
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1", **env_vars)
    return subprocess.run(list(map(str, command)), capture_output=True, text=True, env=env,
                          input="", timeout=600)


def loader_commands(path: Path, data: Path, work: Path):
    """{loader: command line} of every command-line loader, each pointed at ``path``."""
    task = ["--user-dir", USER_DIR, "--task", "pmlm"]
    script = [sys.executable, REPO / "scripts"]
    return {
        "fairseq-train --restore-file": [
            fairseq_cli("fairseq-train"), data, *task, "--criterion", "pmlm", *TINY_MODEL_ARGS,
            "--tokens-per-sample", "32", "--batch-size", "4", "--optimizer", "adam", "--lr",
            "1e-3", "--max-update", "4", "--restore-file", path, "--save-dir", work / "ckpt",
            "--cpu"],
        "fairseq-generate --path": [fairseq_cli("fairseq-generate"), data, *task, "--path", path,
                                    "--cpu"],
        "fairseq-interactive --path": [fairseq_cli("fairseq-interactive"), data, *task, "--path",
                                       path, "--cpu"],
        "fairseq-validate --path": [fairseq_cli("fairseq-validate"), data, *task, "--path",
                                    path, "--batch-size", "4", "--cpu"],
        "squad.py predict": [*script[:1], script[1] / "squad.py", "predict", "--path", path,
                             "--data", work / "dev.json", "--out", work / "predict"],
        "export_checkpoint.py": [*script[:1], script[1] / "export_checkpoint.py", "--checkpoint",
                                 path, "--dict", data / "dict.txt", "--out", work / "export"],
        "convert_checkpoint.py": [*script[:1], script[1] / "convert_checkpoint.py",
                                  "--checkpoint", path, "--config", work / "config.json",
                                  "--vocab", work / "vocab.txt", "--out", work / "convert"],
    }


@pytest.mark.parametrize("loader", ["fairseq-train --restore-file", "fairseq-generate --path",
                                    "fairseq-interactive --path", "fairseq-validate --path",
                                    "squad.py predict", "export_checkpoint.py",
                                    "convert_checkpoint.py"])
def test_command_line_loaders_refuse_code(loader, crafted, trained, tmp_path):
    path, target = crafted
    write_s2s_ft_release(tmp_path)  # config.json and vocab.txt for convert_checkpoint.py
    (tmp_path / "dev.json").write_text('{"version": "v2.0", "data": []}')  # for squad.py
    proc = run(loader_commands(path, trained[1], tmp_path)[loader])
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-3000:]
    assert str(path) in output and "io.open" in output, output[-3000:]
    if loader != "convert_checkpoint.py":  # reads state dicts only: no trust switch to offer
        assert TRUST_CHECKPOINTS_ENV in output, output[-3000:]
    assert not target.exists()


def test_the_trust_switch_unpickles_in_full(crafted, tmp_path):
    """The switch is real, and so is the crafted file: trusted, its code runs."""
    path, _ = crafted
    target = tmp_path / "created"
    state = torch.load(path, weights_only=False)
    state["extra_state"]["payload"] = CreatesAFile(target)
    trusted = tmp_path / "trusted.pt"
    torch.save(state, trusted)
    code = ("import sys, fairseq_unilmv2\nfrom fairseq import checkpoint_utils\n"
            "checkpoint_utils.load_checkpoint_to_cpu(sys.argv[1])\n")
    refused = run([sys.executable, "-c", code, trusted])
    assert refused.returncode != 0 and not target.exists()
    loaded = run([sys.executable, "-c", code, trusted], **{TRUST_CHECKPOINTS_ENV: "1"})
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    assert target.exists()


# ------------------------------------------------------------- every fairseq checkpoint kind
def test_resaved_checkpoint_with_omegaconf_containers_loads(trained, tmp_path):
    from fairseq import checkpoint_utils
    from omegaconf import DictConfig

    state = checkpoint_utils.load_checkpoint_to_cpu(str(trained[0]))
    assert isinstance(state["cfg"], DictConfig)
    resaved = tmp_path / "resaved.pt"
    torch.save(state, resaved)
    unsafe = set(torch.serialization.get_unsafe_globals_in_checkpoint(str(resaved)))
    assert {"omegaconf.dictconfig.DictConfig", "omegaconf.nodes.AnyNode", "typing.Any",
            "collections.defaultdict"} <= unsafe
    again = checkpoint_utils.load_checkpoint_to_cpu(str(resaved))
    assert again["cfg"] == state["cfg"]
    for name, value in state["model"].items():
        assert torch.equal(again["model"][name], value), name


def renamed_globals(path: Path, old: bytes, new: bytes, out: Path) -> Path:
    """``path`` with ``old`` renamed ``new`` in its pickle (e.g. NumPy 2's module of scalars
    named as NumPy 1 wrote it)."""
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename.endswith("data.pkl"):
                assert old in data
                data = data.replace(old, new)
            target.writestr(info, data)
    return out


@pytest.mark.parametrize("numpy_module", ["numpy._core.multiarray", "numpy.core.multiarray"])
def test_numpy_scalars_and_namespaces_load(trained, tmp_path, numpy_module):
    """NumPy scalars (meters, best scores) as NumPy 2 and NumPy 1 name them, and the
    ``argparse.Namespace`` of legacy ``args`` (older files, legacy-arguments architectures)."""
    from fairseq import checkpoint_utils

    state = torch.load(trained[0], weights_only=False)
    state["extra_state"]["best"] = np.float64(2.5)
    state["extra_state"]["count"] = np.int64(7)
    state["extra_state"]["legacy_args"] = argparse.Namespace(arch="lstm", dropout=0.1)
    path = tmp_path / "numpy2.pt"
    torch.save(state, path)
    scalar_module = np.float64(0).__reduce__()[0].__module__.encode()
    if numpy_module.encode() != scalar_module:
        path = renamed_globals(path, scalar_module + b"\nscalar", numpy_module.encode()
                               + b"\nscalar", tmp_path / "numpy1.pt")
    assert f"{numpy_module}.scalar" in torch.serialization.get_unsafe_globals_in_checkpoint(
        str(path))
    loaded = checkpoint_utils.load_checkpoint_to_cpu(str(path))["extra_state"]
    assert loaded["best"] == 2.5 and loaded["count"] == 7
    assert loaded["legacy_args"] == argparse.Namespace(arch="lstm", dropout=0.1)


def test_translation_with_legacy_arguments_trains_resumes_and_generates(tmp_path):
    """fairseq's own translation task, an architecture with legacy arguments (``lstm``): its
    checkpoints hold ``argparse.Namespace``, and resume and generation load them."""
    pairs = shared_file("nqg", "src-dev.txt").read_text(encoding="utf-8").splitlines()[:60]
    questions = shared_file("nqg", "tgt-dev.txt").read_text(encoding="utf-8").splitlines()[:60]
    raw = tmp_path / "raw"
    raw.mkdir()
    for split in ("train", "valid", "test"):
        (raw / f"{split}.src").write_text("\n".join(pairs) + "\n")
        (raw / f"{split}.tgt").write_text("\n".join(questions) + "\n")
    data = tmp_path / "bin"
    run_fairseq("fairseq-preprocess", ["-s", "src", "-t", "tgt", "--joined-dictionary",
                                       "--trainpref", raw / "train", "--validpref",
                                       raw / "valid", "--testpref", raw / "test", "--destdir",
                                       data, "--workers", "1", "--thresholdsrc", "3"])
    train = ["--user-dir", USER_DIR, "--task", "translation", "--arch", "lstm",
             "--encoder-embed-dim", "16", "--decoder-embed-dim", "16",
             "--encoder-hidden-size", "16", "--decoder-hidden-size", "16",
             "--decoder-out-embed-dim", "16", "--optimizer", "adam", "--lr", "1e-3",
             "--batch-size", "8", "--save-dir", tmp_path / "ckpt", "--no-epoch-checkpoints",
             "--disable-validation", "--num-workers", "0", "--cpu"]
    run_fairseq("fairseq-train", [data, *train, "--max-update", "2"], threads=1)
    checkpoint = tmp_path / "ckpt" / "checkpoint_last.pt"
    assert "argparse.Namespace" in torch.serialization.get_unsafe_globals_in_checkpoint(
        str(checkpoint))
    resumed = run_fairseq("fairseq-train", [data, *train, "--max-update", "4"], threads=1)
    assert "Loaded checkpoint" in resumed.stdout + resumed.stderr
    generated = run_fairseq("fairseq-generate", [data, "--user-dir", USER_DIR, "--path",
                                                 checkpoint, "--beam", "2", "--max-len-b", "5",
                                                 "--batch-size", "16", "--cpu"], threads=1)
    assert generated.stdout.count("\nH-") == 60
