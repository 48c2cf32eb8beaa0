"""Stages of the experiment scripts, each one command printed before it runs.

``scripts/quickstart.py``, ``scripts/ablation.py`` and ``scripts/squad_study.py`` are built from
these: every stage is a plain command line (``sentencepiece``, ``fairseq-preprocess``,
``fairseq-train``, ``fairseq-generate``, ``scripts/score.py``) that is printed, so that a reader
can copy and rerun it by hand, and whose output is shown live and/or kept in a log.
"""
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

# The plugin's directory (fairseq's --user-dir), and the clone whose scripts/ the stages run:
# the one around the plugin (an editable install, or PYTHONPATH), else the current directory
# (a `pip install .` copy, the scripts run from the clone's root as the README runs them).
USER_DIR = Path(__file__).resolve().parents[1]
REPO = USER_DIR.parent if (USER_DIR.parent / "scripts" / "score.py").is_file() else Path.cwd()


# ----------------------------------------------------------------------------- running commands
def cli(name: str) -> str:
    """A console script (fairseq-train, ...) of the running Python environment."""
    script = Path(sys.executable).parent / name
    return str(script) if script.exists() else name


def run(cmd: Sequence, log: Optional[Path] = None, stdout_file: Optional[Path] = None,
        show: bool = True, env: Optional[Mapping[str, str]] = None) -> str:
    """Print the command, run it from the repository root, and fail with a clear message.

    ``show``: the output is shown live (and, with ``log``, also copied there: shown as
    ``| tee``); without it the output goes to ``log`` only (shown as ``>``) and its end is
    printed if the command fails. ``stdout_file``: the command's standard output goes to that
    file instead (shown as ``>``; its standard error is shown). ``env``: variables set on top of
    this process's. Returns the captured output.
    """
    cmd = [str(c) for c in cmd]
    shown = shlex.join(cmd)
    if stdout_file is not None:
        shown += f" > {shlex.quote(str(stdout_file))}"
    if log is not None:
        shown += (" 2>&1 | tee " if show else " > ") + shlex.quote(str(log)) + \
            ("" if show else " 2>&1")
    print(f"\n$ {shown}", flush=True)
    environment = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    lines = []
    # stderr joins the output, except where stdout is the command's result file.
    stderr = None if stdout_file is not None else subprocess.STDOUT
    sink = open(log, "w", encoding="utf-8") if log is not None and not show else None
    try:
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, text=True,
                              env=environment, cwd=REPO) as proc:
            for line in proc.stdout:
                if show:
                    print(line, end="", flush=True)
                elif sink is not None:
                    sink.write(line)
                    sink.flush()
                lines.append(line)
    finally:
        if sink is not None:
            sink.close()
    output = "".join(lines)
    if log is not None and show:
        log.write_text(output, encoding="utf-8")
    if stdout_file is not None:
        stdout_file.write_text(output, encoding="utf-8")
    if proc.returncode != 0:
        if not show:
            sys.stdout.write(output[-3000:])
        program = Path(sys.argv[0]).stem or "stage"
        raise SystemExit(f"\n{program}: this command failed with exit code {proc.returncode}:\n"
                         f"  {shown}\nIts output is above"
                         + (f" and in {log}." if log else "."))
    return output


def fresh_dir(path: Path) -> Path:
    """An empty folder: a stage always starts clean, so fairseq never resumes an old run."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def write_lines(path: Path, lines: Sequence[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def read_lines(path: Path) -> List[str]:
    return path.read_text(encoding="utf-8").splitlines()


# ----------------------------------------------------------------------------- sentencepiece
SPM_TRAIN = 'import sys, sentencepiece as spm; spm.SentencePieceTrainer.train(" ".join(sys.argv[1:]))'
SPM_ENCODE = """import sys, sentencepiece as spm
sp = spm.SentencePieceProcessor(model_file=sys.argv[1])
for src, dst in zip(sys.argv[2::2], sys.argv[3::2]):
    with open(src, encoding="utf-8") as fin, open(dst, "w", encoding="utf-8") as fout:
        fout.writelines(" ".join(sp.encode(line.strip(), out_type=str)) + "\\n" for line in fin)"""


def train_sentencepiece(text: Path, prefix: Path, vocab_size: int,
                        hard_vocab_limit: bool = False, **run_kw) -> Path:
    """A unigram sentencepiece model of ``text`` (``prefix``.model); without
    ``hard_vocab_limit`` a small text may give fewer pieces than ``vocab_size``."""
    run([sys.executable, "-c", SPM_TRAIN, f"--input={text}", f"--model_prefix={prefix}",
         f"--vocab_size={vocab_size}", "--model_type=unigram", "--character_coverage=1.0",
         *([] if hard_vocab_limit else ["--hard_vocab_limit=false"]), "--minloglevel=1"],
        **run_kw)
    return Path(f"{prefix}.model")


def encode_sentencepiece(model: Path, files: Sequence[Tuple[Path, Path]], **run_kw) -> None:
    """Encode each (raw text, pieces) pair of files with ``model``, one line for a line."""
    for _, encoded in files:
        Path(encoded).parent.mkdir(parents=True, exist_ok=True)
    run([sys.executable, "-c", SPM_ENCODE, model, *[f for pair in files for f in pair]], **run_kw)


# ----------------------------------------------------------------------------- fairseq-preprocess
def preprocess(destdir: Path, pattern: str, splits: Sequence[str] = ("train", "valid"),
               dictionary: Optional[Path] = None, pairs: Optional[Tuple[str, str]] = None,
               workers: int = 2, **run_kw) -> Path:
    """``fairseq-preprocess`` of the files ``pattern.format(split)`` for the ``splits`` (of
    train, valid, test): one text a line
    (``--only-source``), or, with ``pairs=(source, target)``, the files ending in those
    suffixes. ``dictionary``: given to ``--srcdict`` (and ``--tgtdict``), else one is built."""
    prefixes = [arg for split in splits for arg in (f"--{split}pref", str(pattern).format(split))]
    if pairs is None:
        kind = ["--only-source"] + ([] if dictionary is None else ["--srcdict", dictionary])
    else:
        kind = ["--source-lang", pairs[0], "--target-lang", pairs[1]] + (
            [] if dictionary is None else ["--srcdict", dictionary, "--tgtdict", dictionary])
    run([cli("fairseq-preprocess"), *kind, *prefixes, "--destdir", destdir,
         "--workers", workers], **run_kw)
    return Path(destdir)


# ----------------------------------------------------------------------------- fairseq-train
def model_args(cfg) -> List:
    """The model flags of ``cfg`` (encoder_layers, encoder_embed_dim, ...)."""
    return ["--user-dir", USER_DIR, "--arch", "unilm_v2_base",
            "--encoder-layers", cfg.encoder_layers, "--encoder-embed-dim", cfg.encoder_embed_dim,
            "--encoder-ffn-embed-dim", cfg.encoder_ffn_embed_dim,
            "--encoder-attention-heads", cfg.encoder_attention_heads]


def schedule_args(updates: int, lr: float, warmup_ratio: float, validations: int) -> List:
    """Adam with linear warm-up then linear decay, as the paper.

    Validation (and a save, so checkpoint_best.pt follows it) a fixed number of times a run
    rather than every epoch: epochs of a small corpus are short, so per-epoch validation
    would cost more than the training and would give a quick run a single point.
    """
    every = max(1, updates // max(1, validations))
    return ["--optimizer", "adam", "--adam-betas", "(0.9, 0.98)", "--adam-eps", "1e-6",
            "--weight-decay", "0.01", "--clip-norm", "1.0", "--lr", lr,
            "--lr-scheduler", "polynomial_decay", "--total-num-update", max(updates, 1),
            "--warmup-updates", max(1, int(updates * warmup_ratio)), "--max-update", updates,
            "--validate-interval", "1000000", "--validate-interval-updates", every,
            "--save-interval-updates", every, "--keep-interval-updates", "1",
            "--no-epoch-checkpoints", "--log-format", "json",
            "--log-interval", max(1, min(10, updates // 20)), "--num-workers", "0"]


def pretrain(cfg, data: Path, save_dir: Path, log: Path, extra_args: Sequence = ()) -> Path:
    """``fairseq-train --task pmlm`` with ``cfg``'s model, block length, batch and schedule
    (``pretrain_updates``, ``pretrain_lr``, ...); ``extra_args``: more flags (--objective)."""
    run([cli("fairseq-train"), data, *model_args(cfg), *extra_args,
         "--task", "pmlm", "--criterion", "pmlm",
         "--tokens-per-sample", cfg.tokens_per_sample, "--batch-size", cfg.pretrain_batch_size,
         *schedule_args(cfg.pretrain_updates, cfg.pretrain_lr, cfg.pretrain_warmup,
                        cfg.validations),
         "--save-dir", fresh_dir(save_dir), "--seed", cfg.seed], log=log)
    return save_dir / "checkpoint_last.pt"


def finetune(cfg, data: Path, pretrained: Optional[Path], save_dir: Path, log: Path) -> Path:
    """``fairseq-train --task unilm_seq2seq`` from ``pretrained``, or from random weights when
    it is None."""
    restore = [] if pretrained is None else [
        "--restore-file", pretrained, "--reset-optimizer", "--reset-dataloader", "--reset-meters"]
    run([cli("fairseq-train"), data, *model_args(cfg),
         "--task", "unilm_seq2seq", "--criterion", "unilm_seq2seq", *restore,
         "--max-source-positions", cfg.max_source_positions,
         "--max-target-positions", cfg.max_target_positions,
         "--batch-size", cfg.finetune_batch_size,
         *schedule_args(cfg.finetune_updates, cfg.finetune_lr, cfg.finetune_warmup,
                        cfg.validations),
         "--save-dir", fresh_dir(save_dir), "--seed", cfg.seed], log=log)
    return save_dir / "checkpoint_best.pt"


def done_training_s(text: str) -> Optional[float]:
    """fairseq-train's own training time ("done training in N seconds") from its output."""
    match = re.search(r"done training in ([\d.]+) seconds", text)
    return float(match.group(1)) if match else None


STATS_LINE = re.compile(r"\| (train_inner|valid) \| (\{.*\})\s*$")


def loss_series(log: Path, names: Sequence[str]) -> Dict[str, List[Tuple[int, float]]]:
    """(update, value) series of train and valid metrics from fairseq's json log lines.

    fairseq prints ``... | train_inner | {"loss": "9.1", "num_updates": "10", ...}`` every
    ``--log-interval`` updates and ``... | valid | {"valid_loss": ...}`` at each validation.
    """
    series: Dict[str, List[Tuple[int, float]]] = {}
    for line in log.read_text(encoding="utf-8").splitlines():
        match = STATS_LINE.search(line)
        if not match:
            continue
        tag, stats = match.group(1), json.loads(match.group(2))
        prefix = "train" if tag == "train_inner" else "valid"
        key_prefix = "" if tag == "train_inner" else "valid_"
        updates = stats.get(f"{key_prefix}num_updates")
        for name in names:
            value = stats.get(key_prefix + name)
            if value is not None and updates is not None:
                series.setdefault(f"{prefix}_{name}", []).append((int(updates), float(value)))
    return series


def unigram_entropy(data: Path, split: str = "valid") -> float:
    """Cross-entropy in bits of the ``split`` text's tokens (specials excluded: PMLM never masks
    them) under the unigram distribution of the training counts (``dict.txt``, add-one
    smoothing): the loss a model reaches that predicts masked tokens without their context."""
    import numpy as np
    from fairseq.data import Dictionary, data_utils

    dictionary = Dictionary.load(str(data / "dict.txt"))
    counts = np.asarray(dictionary.count, dtype=np.float64)[dictionary.nspecial:] + 1.0
    probs = counts / counts.sum()
    text = data_utils.load_indexed_dataset(str(data / split), dictionary)
    tokens = np.concatenate([text[i].numpy() for i in range(len(text))])
    tokens = tokens[tokens >= dictionary.nspecial] - dictionary.nspecial
    return float(-np.log2(probs[tokens]).mean())


# ----------------------------------------------------------------------------- decode and score
def generate(cfg, data: Path, checkpoint: Path, spm_model: Path, results: Path,
             hypotheses: Path) -> Path:
    """``fairseq-generate`` of the test split, detokenized by sentencepiece; the hypotheses in
    test order, one a line, in ``hypotheses``."""
    run([cli("fairseq-generate"), data, "--user-dir", USER_DIR, "--task", "unilm_seq2seq",
         "--path", checkpoint, "--gen-subset", "test", "--beam", cfg.beam, "--lenpen", cfg.lenpen,
         "--max-len-b", cfg.max_target_positions,
         "--max-source-positions", cfg.max_source_positions,
         "--max-target-positions", cfg.max_target_positions,
         "--batch-size", "64", "--bpe", "sentencepiece", "--sentencepiece-model", spm_model,
         "--results-path", fresh_dir(results)])
    output = results / "generate-test.txt"
    # D-<id> lines are the sentencepiece-decoded hypotheses; ids are test line numbers.
    detok = {}
    for line in output.read_text(encoding="utf-8").splitlines():
        if line.startswith("D-"):
            sample_id, _score, text = (line.split("\t") + [""])[:3]
            detok[int(sample_id[2:])] = text
    write_lines(hypotheses, [detok.get(i, "") for i in range(len(detok))])
    print(f"wrote {len(detok)} detokenized hypotheses to {hypotheses}", flush=True)
    return hypotheses


def score(hypotheses: Path, references: Path, scores: Path, extra_args: Sequence = ()) -> Dict:
    """``scripts/score.py --json`` (exact match, ROUGE, BLEU; ``extra_args``: --qg ...)."""
    output = run([sys.executable, REPO / "scripts" / "score.py", *extra_args,
                  "--hyp", hypotheses, "--ref", references, "--json"], stdout_file=scores)
    return json.loads(output.strip().splitlines()[-1])


def baseline(train_targets: Path, test_sources: Path, hypotheses: Path) -> str:
    """The trivial system: the most frequent training answer for every test example."""
    answers = Counter(read_lines(train_targets))
    answer = answers.most_common(1)[0][0]
    write_lines(hypotheses, [answer] * len(read_lines(test_sources)))
    return answer


# ----------------------------------------------------------------------------- SQuAD windows
def squad_training_windows(data_dir: Path, tokenizer_flags: Sequence, max_seq_length: int,
                           doc_stride: int, max_query_length: int, split: str = "train") -> int:
    """The windows one epoch of ``--task squad`` trains on: the task itself, set up with these
    flags, loads ``data_dir/<split>.json`` and its dataset is counted."""
    from fairseq_unilmv2.tasks.squad import SquadConfig, SquadTask

    flag, path = tokenizer_flags
    keyword = {"--spm-model": "spm_model", "--wordpiece-vocab": "wordpiece_vocab"}[str(flag)]
    cfg = SquadConfig(data=str(data_dir), max_seq_length=max_seq_length, doc_stride=doc_stride,
                      max_query_length=max_query_length, seed=1, **{keyword: str(path)})
    task = SquadTask.setup_task(cfg)
    task.load_dataset(split)
    return len(task.dataset(split))
