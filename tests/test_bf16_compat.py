"""``--bf16`` and ``--memory-efficient-bf16`` without ``--tpu`` (compat fix 8, fairseq issue 4696).

fairseq 0.12's option parsing turns ``--bf16`` into ``--tpu``; the trainer then asks torch_xla
for the device (``AttributeError: 'NoneType' object has no attribute 'xla_device'`` when it is
not installed). On the CPU the same happens with ``--cpu --bf16``, so the whole path (parse,
config, Trainer with fairseq's bf16 optimizer wrapper, a few updates) is exercised here; only
the CUDA device itself needs a GPU.

The CLIs import the plugin through ``--user-dir`` *during* the parse of their own command line,
so the checks that matter run in a fresh interpreter that imports ``fairseq_cli.*`` first and
the plugin only through ``--user-dir``, exactly as ``fairseq-train`` does.
"""
import json
import os
import subprocess
import sys

import pytest
from fairseq import options

from helpers import REPO, TINY_MODEL_ARGS, USER_DIR, binarize_text, run_fairseq

TEXT = ["the cat sat on the mat and the dog ran in the park"] * 40


@pytest.fixture(scope="module")
def data_bin(tmp_path_factory):
    return binarize_text(TEXT, tmp_path_factory.mktemp("bf16") / "data-bin")


def common_args(data_bin, *extra):
    """What fairseq-train, fairseq-validate and fairseq-generate all accept."""
    return [str(data_bin), "--user-dir", USER_DIR, "--task", "pmlm", "--tokens-per-sample",
            "16", "--batch-size", "4", *extra]


TRAIN_ONLY = ["--criterion", "pmlm", *TINY_MODEL_ARGS, "--optimizer", "adam", "--lr", "1e-4"]


def train_args(data_bin, *extra):
    return common_args(data_bin, *TRAIN_ONLY, *extra)


# In a fresh interpreter: the CLI modules first, then each CLI's own cli_main on a command line
# in sys.argv (the plugin arrives through --user-dir inside the parse), stopped where the CLI
# hands over its config; for train the config then builds fairseq's Trainer.
CLI_CONFIGS = r"""
import json, sys
import torch
from fairseq import tasks
from fairseq.distributed import utils as distributed_utils
from fairseq.trainer import Trainer
from fairseq_cli import generate, train, validate

common, train_only = json.loads(sys.argv[1]), json.loads(sys.argv[2])
seen = {}

class Handover(Exception):
    pass

def capture(name):
    def handover(cfg, *args, **kwargs):
        seen[name] = cfg
        raise Handover()
    return handover

distributed_utils.call_main = capture("call_main")
generate._main = capture("generate")
result = {}
for cli, extra in (("train", train_only), ("validate", ["--path", "none.pt"]),
                   ("generate", ["--path", "none.pt"])):
    sys.argv = ["fairseq-" + cli, *common, *extra]
    try:
        getattr(sys.modules["fairseq_cli." + cli], "cli_main")()
    except Handover:
        pass
    cfg = seen.pop("generate" if cli == "generate" else "call_main")
    result[cli] = {"tpu": cfg.common.tpu, "bf16": cfg.common.bf16,
                   "distributed_tpu": cfg.distributed_training.tpu}
    if cli == "train":
        train_cfg = cfg

if not train_cfg.common.tpu:
    task = tasks.setup_task(train_cfg.task)
    model = task.build_model(train_cfg.model)
    criterion = task.build_criterion(train_cfg.criterion)
    trainer = Trainer(train_cfg, task, model, criterion)
    result["optimizer"] = type(trainer.optimizer).__name__
    result["model_dtypes"] = sorted({str(p.dtype) for p in trainer.model.parameters()})
    result["device"] = str(trainer.device)
print("RESULT " + json.dumps(result))
"""


def cli_configs(data_bin, *flags):
    common = common_args(data_bin, "--cpu", *flags)
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", CLI_CONFIGS, json.dumps(common),
                           json.dumps([*TRAIN_ONLY, "--max-update", "1"])],
                          capture_output=True, text=True, env=env, cwd=str(data_bin),
                          timeout=600)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return json.loads(lines[-1][len("RESULT "):])


@pytest.mark.parametrize("flag, wrapper", [("--bf16", "FP16Optimizer"),
                                           ("--memory-efficient-bf16",
                                            "MemoryEfficientFP16Optimizer")])
def test_cli_bf16_keeps_tpu_off_and_builds_the_bf16_trainer(data_bin, flag, wrapper):
    result = cli_configs(data_bin, flag)
    for cli in ("train", "validate", "generate"):
        assert result[cli] == {"tpu": False, "bf16": True, "distributed_tpu": False}, cli
    assert result["optimizer"] == wrapper
    assert result["model_dtypes"] == ["torch.bfloat16"]
    assert result["device"] == "cpu"


def test_cli_tpu_request_is_kept(data_bin):
    result = cli_configs(data_bin, "--tpu", "--bf16")
    for cli in ("train", "validate", "generate"):
        assert result[cli]["tpu"] is True, cli


def test_parse_after_plugin_import_settles_tpu(data_bin):
    """Later parses (programmatic ones, fairseq-validate's override parser) are settled at
    parse_args_and_arch already; an explicit --tpu stays, with or without --bf16."""
    def parse(*flags):
        return options.parse_args_and_arch(options.get_training_parser(),
                                           train_args(data_bin, *flags))

    assert (parse("--bf16").tpu, parse("--bf16").bf16) == (False, True)
    args = parse("--memory-efficient-bf16")
    assert (args.tpu, args.bf16, args.memory_efficient_bf16) == (False, True, True)
    assert parse("--tpu", "--bf16").tpu is True
    assert parse("--tpu").tpu is True
    assert parse().tpu is False


def test_fairseq_train_cpu_bf16_runs(data_bin, tmp_path):
    """The real CLI: before the fix this died in Trainer.__init__ reaching for torch_xla."""
    proc = run_fairseq("fairseq-train", train_args(
        data_bin, "--cpu", "--bf16", "--max-update", "2", "--no-save", "--disable-validation",
        "--log-format", "simple", "--log-interval", "1"), cwd=tmp_path, threads=1)
    log = proc.stdout + proc.stderr
    assert "num_updates=2" in log, log[-3000:]
