"""The hydra configs of examples/*/config are the READMEs' fairseq-train commands.

Each config is checked twice against the fairseq-train command of its README (read from the
README itself, as tests/test_docs.py runs it, so that a changed README or config shows here):

- at full size, without running: the config composed as fairseq-hydra-train composes it (hydra's
  compose, then fairseq's ``add_defaults``) against the README's command line parsed as
  fairseq-train parses it (``parse_args_and_arch``, ``convert_namespace_to_omegaconf``,
  ``add_defaults``), with the user's overrides (data, restore file, computed schedule) set to the
  README's values;
- at tiny sizes, running: ``fairseq-hydra-train`` on the config and ``fairseq-train`` on the
  README's command, both with the same tiny overrides, one update each; the ``cfg`` that each
  stored in its checkpoint is then compared.

Only what may differ between two runs of one recipe is left out (the save directory, hydra's
logging set-up, the scorer that training never uses); every other field of the task, model,
criterion, optimizer, schedule, dataset, checkpoint and common settings must be equal. The
fields that the tiny runs override (sizes, precision) are the full-size comparison's. The runs
share one Python process (fairseq's own console-script entry points called in turn): starting
fairseq 31 times would cost far more than the runs.
"""
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import pytest
import torch
from helpers import REPO, write_lines, write_wordpiece_vocab
from omegaconf import OmegaConf
from test_docs import hydra_config, recorded_commands, write_squad_splits

Flags = Dict[str, object]  # flag -> value; True: present, False: absent


@dataclass
class Case:
    """One config and the README command it stands for."""
    config: str                     # examples/<recipe>/config/<name>.yaml
    readme: str                     # the README whose fairseq-train command it is
    save_dir: str                   # --save-dir of that command (picks it out of the README)
    data: str                       # which tiny data set the runs read: lm, pairs, glue,
                                    # sts_b, squad
    user: Dict[str, List[str]]      # overrides the user gives: hydra key -> the CLI flags it sets
    readme_edits: Flags = field(default_factory=dict)  # the README's edits for this variant
    tiny: Flags = field(default_factory=dict)          # tiny sizes of this task (CLI flags)

    @property
    def name(self) -> str:
        return str(Path(self.config).with_suffix("").relative_to("examples")).replace(
            "/config/", "/")


SEQ2SEQ_USER = {"checkpoint.restore_file": ["--restore-file"],
                "lr_scheduler.warmup_updates": ["--warmup-updates"],
                "optimization.max_update": ["--max-update", "--total-num-update"]}
SEQ2SEQ_TINY = {"--max-source-positions": 24, "--max-target-positions": 8,
                "--max-positions": 512}  # 512: the pre-trained tiny model's position table
GLUE_USER = {"checkpoint.restore_file": ["--restore-file"]}
SQUAD_USER = {**SEQ2SEQ_USER, "task.wordpiece_vocab": ["--wordpiece-vocab"]}
# The README's notes under its GLUE table (examples/glue/README.md, step 3).
GLUE_NOTES = {
    "STS-B": {"--regression-target": True, "--best-checkpoint-metric": "loss",
              "--maximize-best-checkpoint-metric": False, "--report-pearson-and-spearman": True},
    "CoLA": {"--report-mcc": True},
    "MRPC": {"--report-acc-and-f1": True},
    "QQP": {"--report-acc-and-f1": True},
}
GLUE_FILES = {"MNLI": "mnli", "QNLI": "qnli", "QQP": "qqp", "RTE": "rte", "SST-2": "sst_2",
              "MRPC": "mrpc", "CoLA": "cola", "STS-B": "sts_b"}


def glue_table() -> Dict[str, Flags]:
    """The README's GLUE table: task -> the flags its row sets in the RTE command."""
    text = (REPO / "examples/glue/README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| ([\w-]+) \| (\d+) \| ([\de.-]+) \| (\d+) \| (\d+) \| (\d+) \|$",
                      text, flags=re.M)
    assert {row[0] for row in rows} == set(GLUE_FILES), rows
    return {task: {"--num-classes": classes, "--lr": lr, "--batch-size": batch,
                   "--total-num-update": updates, "--warmup-updates": warmup,
                   "--save-dir": f"checkpoints/{task}", **GLUE_NOTES.get(task, {})}
            for task, classes, lr, batch, updates, warmup in rows}


def xsum_edits() -> Flags:
    """The flags of the README's 'XSum: the same with' comment under the CNN/DM command."""
    text = (REPO / "examples/summarization/README.md").read_text(encoding="utf-8")
    comment = text[text.index("# XSum: the same with"):]
    comment = comment[:comment.index("```")]
    edits = dict(re.findall(r"(--[\w-]+) (\S+)", comment))
    assert set(edits) == {"--max-source-positions", "--max-target-positions",
                          "--target-mask-prob", "--save-dir"}, edits
    return edits


def squad_v1_edits() -> Flags:
    """The flags of the README's 'SQuAD v1.1:' sentence under the v2.0 command (its file names
    and schedule are the user's values)."""
    text = (REPO / "examples/squad/README.md").read_text(encoding="utf-8")
    sentence = " ".join(text[text.index("SQuAD v1.1:"):].split("\n\n")[0].split())
    edits: Flags = {flag: False for flag in re.findall(r"no `(--[\w-]+)`", sentence)}
    edits.update(re.findall(r"`(--[\w-]+) (\S+)`", sentence))
    assert set(edits) == {"--version-2-with-negative", "--batch-size"}, sentence
    return edits


CASES = [
    Case("examples/pretraining/config/base.yaml", "examples/pretraining/README.md",
         "checkpoints/unilmv2-base", "lm", {}, tiny={"--tokens-per-sample": 32}),
    Case("examples/pretraining/config/large.yaml", "examples/pretraining/README.md",
         "checkpoints/unilmv2-large", "lm", {}, tiny={"--tokens-per-sample": 32}),
    Case("examples/summarization/config/cnndm.yaml", "examples/summarization/README.md",
         "checkpoints/cnndm", "pairs", SEQ2SEQ_USER, tiny=SEQ2SEQ_TINY),
    Case("examples/summarization/config/xsum.yaml", "examples/summarization/README.md",
         "checkpoints/cnndm", "pairs", SEQ2SEQ_USER, readme_edits=xsum_edits(),
         tiny=SEQ2SEQ_TINY),
    Case("examples/question_generation/config/qg.yaml",
         "examples/question_generation/README.md", "checkpoints/qg", "pairs", SEQ2SEQ_USER,
         tiny=SEQ2SEQ_TINY),
    *[Case(f"examples/glue/config/{GLUE_FILES[task]}.yaml", "examples/glue/README.md",
           "checkpoints/RTE", "sts_b" if task == "STS-B" else "glue", GLUE_USER,
           readme_edits=edits)
      for task, edits in glue_table().items()],
    Case("examples/squad/config/squad2.yaml", "examples/squad/README.md",
         "checkpoints/squad2", "squad", SQUAD_USER),
    Case("examples/squad/config/squad1.yaml", "examples/squad/README.md",
         "checkpoints/squad2", "squad", SQUAD_USER, readme_edits=squad_v1_edits()),
]
# Tiny sizes for every run (CLI flag -> value; the hydra side sets the same field).
TINY = {"--cpu": True, "--fp16": False, "--bf16": False, "--num-workers": 0, "--batch-size": 4,
        "--update-freq": 1, "--max-update": 1, "--encoder-layers": 1,
        "--encoder-embed-dim": 32, "--encoder-ffn-embed-dim": 64,
        "--encoder-attention-heads": 2}
HYDRA_KEYS = {
    "--cpu": "common.cpu", "--fp16": "common.fp16", "--bf16": "common.bf16",
    "--num-workers": "dataset.num_workers", "--batch-size": "dataset.batch_size",
    "--update-freq": "optimization.update_freq", "--max-update": "optimization.max_update",
    "--encoder-layers": "model.encoder_layers", "--encoder-embed-dim": "model.encoder_embed_dim",
    "--encoder-ffn-embed-dim": "model.encoder_ffn_embed_dim",
    "--encoder-attention-heads": "model.encoder_attention_heads",
    "--tokens-per-sample": "task.tokens_per_sample",
    "--max-source-positions": "task.max_source_positions",
    "--max-target-positions": "task.max_target_positions",
    "--max-positions": "model.max_positions", "--save-dir": "checkpoint.save_dir",
}
LIST_FIELDS = {"optimization.update_freq", "optimization.lr"}
# What may differ between two runs of one recipe: where they save, the logging set-up that
# fairseq-hydra-train passes on from hydra, and the scorer, which training never uses
# (fairseq-train's parser always sets one, bleu; fairseq's hydra defaults leave it null).
NOT_COMPARED = {"checkpoint.save_dir", "job_logging_cfg", "scoring"}


# ----------------------------------------------------------------------------- command lines
def with_flags(args: Sequence[str], flags: Flags) -> List[str]:
    """``args`` with each flag set to its value (True: present, False: absent)."""
    out = list(args)
    for flag, value in flags.items():
        if flag in out:
            at = out.index(flag)
            takes_value = at + 1 < len(out) and not out[at + 1].startswith("--")
            del out[at:at + 1 + takes_value]
        if value is True:
            out.append(flag)
        elif value is not False:
            out += [flag, str(value)]
    return out


def hydra_overrides(flags: Flags) -> List[str]:
    """The same settings as hydra overrides (``++``: set whether or not the config has it)."""
    out = []
    for flag, value in flags.items():
        key = HYDRA_KEYS[flag]
        if isinstance(value, bool):
            value = str(value).lower()
        elif key in LIST_FIELDS:
            value = f"[{value}]"
        out.append(f"++{key}={value}")
    return out


@pytest.fixture(scope="module")
def readme_commands(tmp_path_factory) -> Dict[str, List[str]]:
    """Each case's README command line (arguments after fairseq-train), as the README's shell
    code expands it."""
    commands = {}
    for readme in sorted({case.readme for case in CASES}):
        entries, _, output = recorded_commands(REPO / readme, tmp_path_factory.mktemp("doc"))
        for case in (c for c in CASES if c.readme == readme):
            found = [argv[1:] for _, argv in entries if argv[0] == "fairseq-train"
                     and argv[argv.index("--save-dir") + 1] == case.save_dir]
            assert len(found) == 1, f"{readme}: {len(found)} fairseq-train commands with " \
                                    f"--save-dir {case.save_dir}\n{output[-2000:]}"
            commands[case.name] = with_flags(found[0], case.readme_edits)
    return commands


def user_values(case: Case, args: Sequence[str]) -> Dict[str, str]:
    """The values of the user's overrides in a command line (hydra key -> value)."""
    values = {"task.data": args[0]}
    for key, flags in case.user.items():
        values[key] = args[args.index(flags[0]) + 1]
    return values


# ----------------------------------------------------------------------------- comparison
def resolved(cfg) -> dict:
    """A fairseq config as plain values, interpolations resolved."""
    return OmegaConf.to_container(OmegaConf.create(cfg), resolve=True)


def flatten(tree, prefix="") -> Dict[str, object]:
    if isinstance(tree, dict):
        out = {}
        for key, value in tree.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: tree}


def differences(hydra_cfg, cli_cfg) -> List[str]:
    """Fields whose values differ (a field only one side has counts too)."""
    a, b = flatten(resolved(hydra_cfg)), flatten(resolved(cli_cfg))
    out = []
    for key in sorted(set(a) | set(b)):
        if key in NOT_COMPARED or key.split(".")[0] in NOT_COMPARED:
            continue
        if a.get(key, "<absent>") != b.get(key, "<absent>"):
            out.append(f"{key}: config {a.get(key, '<absent>')!r}, "
                       f"README {b.get(key, '<absent>')!r}")
    return out


def composed_config(case: Case, overrides: Sequence[str]):
    """The config as fairseq-hydra-train composes it, fairseq's defaults added."""
    config = REPO / case.config
    cwd = os.getcwd()
    os.chdir(REPO)  # its common.user_dir, fairseq_unilmv2, is relative to the repository
    try:
        return hydra_config(config.parent, config.stem, list(overrides))
    finally:
        os.chdir(cwd)


def parsed_command(args: Sequence[str]):
    """The command line as fairseq-train turns it into its config."""
    from fairseq import options
    from fairseq.dataclass.initialize import add_defaults
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    cwd = os.getcwd()
    os.chdir(REPO)  # --user-dir fairseq_unilmv2 is relative to the repository
    try:
        cfg = convert_namespace_to_omegaconf(
            options.parse_args_and_arch(options.get_training_parser(), list(args)))
    finally:
        os.chdir(cwd)
    add_defaults(cfg)
    return cfg


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_config_composes_to_the_readme_command(case, readme_commands):
    args = readme_commands[case.name]
    overrides = [f"{key}={value}" for key, value in user_values(case, args).items()]
    problems = differences(composed_config(case, overrides), parsed_command(args))
    assert not problems, f"{case.config} against {case.readme}:\n" + "\n".join(problems)


# ----------------------------------------------------------------------------- tiny runs
WORDS = "the cat dog sat ran on in mat park and was is a".split()
# Runs fairseq's console-script entry points one after the other in this process: a list of
# (script, arguments) in a JSON file; writes the failures (script, arguments, error) to another.
DRIVER = r"""
import json, sys, traceback
from importlib.metadata import entry_points
from hydra.core.global_hydra import GlobalHydra

runs_file, failures_file = sys.argv[1:]
scripts = {e.name: e for e in entry_points(group="console_scripts")}
failures = []
for script, args in json.load(open(runs_file)):
    sys.argv = [script, *args]
    GlobalHydra.instance().clear()
    try:
        scripts[script].load()()
    except SystemExit as err:
        if err.code not in (0, None):
            failures.append([script, args, f"exit status {err.code}"])
    except Exception:
        failures.append([script, args, traceback.format_exc()[-3000:]])
json.dump(failures, open(failures_file, "w"))
"""


def sentences(rng, n: int, low: int = 6, high: int = 14) -> List[str]:
    return [" ".join(rng.choices(WORDS, k=rng.randint(low, high))) for _ in range(n)]


def data_runs(work: Path) -> List[Tuple[str, List[str]]]:
    """Tiny text, pairs, GLUE-style and SQuAD data and the fairseq-preprocess runs that
    binarize them with one dictionary."""
    import random

    rng = random.Random(0)
    write_lines(work / "lm.train", sentences(rng, 200))
    write_lines(work / "lm.valid", sentences(rng, 16))
    for split, n in (("train", 48), ("valid", 8)):
        write_lines(work / f"pairs.{split}.src", sentences(rng, n))
        write_lines(work / f"pairs.{split}.tgt", sentences(rng, n, 2, 4))
        write_lines(work / f"glue.{split}.input0", sentences(rng, n))
        write_lines(work / f"glue.{split}.label", [rng.choice(["0", "1"]) for _ in range(n)])
        (work / "data/sts_b/label").mkdir(parents=True, exist_ok=True)
        write_lines(work / f"data/sts_b/label/{split}.label",
                    [f"{rng.random():.3f}" for _ in range(n)])
    (work / "data/squad").mkdir(parents=True)
    write_squad_splits(work / "data/squad")
    write_wordpiece_vocab(work / "data/squad/vocab.txt")
    # the pre-training dictionary, which the first preprocess run below writes: the SQuAD runs
    # restore the tiny pre-trained model, whose embeddings are that dictionary's
    (work / "data/squad/dict.txt").symlink_to("../lm/dict.txt")
    dictionary = "data/lm/dict.txt"
    runs = [("fairseq-preprocess", ["--only-source", "--trainpref", "lm.train", "--validpref",
                                    "lm.valid", "--destdir", "data/lm", "--workers", "1"]),
            ("fairseq-preprocess", ["-s", "src", "-t", "tgt", "--srcdict", dictionary,
                                    "--tgtdict", dictionary, "--trainpref", "pairs.train",
                                    "--validpref", "pairs.valid", "--destdir", "data/pairs",
                                    "--workers", "1"])]
    for destdir in ("data/glue/input0", "data/sts_b/input0"):
        runs.append(("fairseq-preprocess", ["--only-source", "--srcdict", dictionary,
                                            "--trainpref", "glue.train.input0", "--validpref",
                                            "glue.valid.input0", "--destdir", destdir,
                                            "--workers", "1"]))
    runs.append(("fairseq-preprocess", ["--only-source", "--trainpref", "glue.train.label",
                                        "--validpref", "glue.valid.label", "--destdir",
                                        "data/glue/label", "--workers", "1"]))
    return runs


def tiny_user_values(case: Case, restore: str) -> Dict[str, str]:
    """The user's overrides for a tiny run (hydra key -> value)."""
    user = {"task.data": f"data/{case.data}"}
    if "checkpoint.restore_file" in case.user:
        user["checkpoint.restore_file"] = restore
    for key in ("lr_scheduler.warmup_updates", "optimization.max_update"):
        if key in case.user:
            user[key] = "1"
    if "task.wordpiece_vocab" in case.user:
        user["task.wordpiece_vocab"] = "data/squad/vocab.txt"
    return user


def hydra_command(case: Case, user: Dict[str, str], flags: Flags) -> List[str]:
    """fairseq-hydra-train's arguments: the config, the user's values, then ``flags``."""
    return ["--config-dir", str((REPO / case.config).parent), "--config-name",
            Path(case.config).stem, *[f"{k}={v}" for k, v in user.items()],
            *hydra_overrides(flags)]


def tiny_runs(case: Case, readme_args: Sequence[str], work: Path,
              restore: str) -> List[Tuple[str, List[str]]]:
    """fairseq-hydra-train on the config and fairseq-train on the README command, with the same
    tiny sizes and user values."""
    name = case.name.replace("/", "-")
    user = tiny_user_values(case, restore)
    tiny = {**TINY, **case.tiny}
    hydra_args = hydra_command(case, user, {**tiny, "--save-dir": f"runs/{name}-hydra"})
    cli_flags = {flag: user[key] for key, flags in case.user.items() for flag in flags}
    cli_args = with_flags([user["task.data"], *readme_args[1:]],
                          {**cli_flags, **tiny, "--save-dir": f"runs/{name}-cli"})
    return [("fairseq-hydra-train", hydra_args), ("fairseq-train", cli_args)]


TINY_PRETRAINED = "runs/pretraining-base-hydra/checkpoint_last.pt"


@pytest.fixture(scope="module")
def tiny_checkpoints(tmp_path_factory, readme_commands) -> Path:
    """Every config and its README command trained for one update at tiny sizes; the
    fine-tuning runs start from the tiny pre-trained model of the first run."""
    work = tmp_path_factory.mktemp("hydra_runs")
    (work / "fairseq_unilmv2").symlink_to(REPO / "fairseq_unilmv2")  # the configs' user_dir
    restore = TINY_PRETRAINED
    runs = data_runs(work)
    for case in CASES:
        runs += tiny_runs(case, readme_commands[case.name], work, restore)
    (work / "runs.json").write_text(json.dumps(runs))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", DRIVER, "runs.json", "failures.json"],
                          cwd=work, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    failures = json.loads((work / "failures.json").read_text())
    assert not failures, "\n\n".join(f"{script} {' '.join(args)}\n{error}"
                                     for script, args, error in failures) + \
        f"\n(output:\n{(proc.stdout + proc.stderr)[-3000:]})"
    return work


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_config_trains_like_the_readme_command(case, tiny_checkpoints):
    name = case.name.replace("/", "-")
    configs = []
    for side in ("hydra", "cli"):
        checkpoint = tiny_checkpoints / "runs" / f"{name}-{side}" / "checkpoint_last.pt"
        assert checkpoint.exists(), f"{side} run of {case.name} wrote no checkpoint"
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
        assert state["optimizer_history"][-1]["num_updates"] == 1
        configs.append(state["cfg"])
    problems = differences(*configs)
    assert not problems, f"{case.config} against {case.readme}, tiny runs:\n" + \
        "\n".join(problems)


# ----------------------------------------------------------------------------- two processes
FINE_TUNING_CASES = [c for c in CASES if c.config.startswith(("examples/glue/",
                                                              "examples/squad/"))]


@pytest.mark.parametrize("case", FINE_TUNING_CASES, ids=[c.name for c in FINE_TUNING_CASES])
def test_fine_tuning_config_trains_on_two_cpu_processes(case, tiny_checkpoints):
    """The GLUE and SQuAD configs leave fairseq's default DDP backend (pytorch_ddp) and set no
    find_unused_parameters: two gloo ranks train two updates from the tiny pre-trained model
    (DDP would stop at the second on a parameter without a gradient)."""
    import socket

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    name = case.name.replace("/", "-")
    user = {**tiny_user_values(case, TINY_PRETRAINED), "optimization.max_update": "2"}
    args = hydra_command(case, user, {**TINY, **case.tiny, "--max-update": 2,
                                      "--save-dir": f"runs/{name}-ddp"})
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    script = str(Path(sys.executable).parent / "fairseq-hydra-train")
    logs_out = [open(tiny_checkpoints / f"{name}-ddp{rank}.log", "w") for rank in range(2)]
    ranks = [subprocess.Popen(
        [script, *args, "distributed_training.distributed_world_size=2",
         f"distributed_training.distributed_rank={rank}",
         f"distributed_training.distributed_init_method=tcp://127.0.0.1:{port}",
         "distributed_training.distributed_backend=gloo",
         "distributed_training.distributed_no_spawn=true"],
        cwd=tiny_checkpoints, env=env, stdout=log, stderr=subprocess.STDOUT)
        for rank, log in enumerate(logs_out)]
    # Wait for both; a failed rank (or the time limit) stops the other, which would wait for
    # it in gloo forever.
    deadline = time.monotonic() + 600
    while any(p.poll() is None for p in ranks):
        if time.monotonic() > deadline or any(p.returncode for p in ranks):
            for p in ranks:
                if p.poll() is None:
                    p.kill()
        time.sleep(0.2)
    for log in logs_out:
        log.close()
    logs = [(tiny_checkpoints / f"{name}-ddp{r}.log").read_text() for r in range(2)]
    assert [p.returncode for p in ranks] == [0, 0], logs[0][-3000:] + logs[1][-3000:]
    assert "'ddp_backend': 'pytorch_ddp'" in logs[0] and "training on 2 devices" in logs[0]
    state = torch.load(tiny_checkpoints / "runs" / f"{name}-ddp" / "checkpoint_last.pt",
                       map_location="cpu", weights_only=False)
    assert state["optimizer_history"][-1]["num_updates"] == 2
