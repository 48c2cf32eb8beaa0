#!/usr/bin/env python
"""The paper's objective ablation (its Table 6) on a budget: AE, AR, PAR, AE+AR, AE+PAR side by side.

    python scripts/ablation.py                    # defaults: 77 min measured, 2 busy cores
    python scripts/ablation.py --quick            # tiny sizes, the same stages (a test runs it)
    python scripts/ablation.py --objectives ae ae+par --seeds 1 2 --pretrain-updates 3000
    python scripts/ablation.py --text a.txt b.txt --encoder-layers 12 ... --threads 8   # bigger
    python scripts/ablation.py --jobs 1          # every cell in this process, one at a time

For every objective and seed: pre-train the same model (``fairseq-train --task pmlm
--objective O --seed S``) on the same text with the same updates and batch of texts (so the
objectives with a pseudo part read ~1.3x the tokens: each row reports its tokens read and wall
time). Then fine-tune every checkpoint, and the same model from random weights, on

- generation: question generation on ../shared/data/nqg (the SQuAD sentence -> question pairs
  of Du & Cardie's dev set, split here by source sentence into train / valid / test),
  ``--task unilm_seq2seq``, decoded with beam search, BLEU-4 and ROUGE-L from scripts/score.py;
- understanding: "was this question asked about this sentence?" against the nearest other
  sentence of the same article (balanced classes; the trivial baseline is 50%), with fairseq's
  own ``--task sentence_prediction``, accuracy on a held-out test split (fairseq-validate).

Writes ``results.json`` and ``results.md`` (objective x task, mean +- std over seeds, beside the
trivial baseline and the from-scratch row), ``pretraining_curves.png`` and
``finetuning_scores.png``. Every stage prints its command; a finished cell (one stage of one
objective and seed) leaves ``cells/<name>.json`` and is not rerun, so an interrupted study
resumes where it stopped (``--out`` the same folder). The sentencepiece, binarization and
fairseq stages are ``fairseq_unilmv2/experiments/stages.py``'s, as the demo's.
"""
import argparse
import hashlib
import json
import os
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, List, Optional, Sequence

from fairseq_unilmv2.experiments import stages
from fairseq_unilmv2.experiments.stages import cli, fresh_dir, read_lines, run, write_lines

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
OBJECTIVES = ("ae", "ar", "par", "ae+ar", "ae+par")
SCRATCH = "scratch"  # the row fine-tuned from random weights


@dataclass
class AblationConfig:
    text: List[str] = field(default_factory=lambda: [
        str(SHARED / "wikitext2" / "valid.txt"), str(SHARED / "wikitext2" / "test.txt")],
        metadata={"help": "pre-training text (one paragraph a line; lower-cased here, as the "
                          "nqg data is)"})
    nqg: str = field(default=str(SHARED / "nqg"), metadata={
        "help": "folder with src-dev.txt / tgt-dev.txt (sentence / question pairs)"})
    out: str = field(default="ablation_out", metadata={
        "help": "output folder; finished cells in it are kept (resume)"})
    objectives: List[str] = field(default_factory=lambda: list(OBJECTIVES), metadata={
        "help": "pre-training objectives to compare"})
    seeds: List[int] = field(default_factory=lambda: [1, 2, 3], metadata={
        "help": "seeds: one pre-training and one fine-tuning of each task per objective and seed"})
    skip_scratch: bool = field(default=False, metadata={
        "help": "leave out the from-scratch row: to split one study over processes that share "
                "--out (e.g. --objectives ae ar par in one, ae+ar ae+par --skip-scratch in "
                "another), then one run with every objective makes the table from their cells"})
    quick: bool = field(default=False, metadata={
        "help": "tiny sizes and few examples, the same stages (minutes); explicit flags win"})
    threads: int = field(default=1, metadata={
        "help": "OMP_NUM_THREADS of every fairseq run (a tiny model gains nothing from more "
                "on a shared machine; raise it with the model)"})
    jobs: int = field(default=2, metadata={
        "help": "worker processes, each running the cells of its share of the rows (objectives "
                "and the from-scratch row), --threads each; 1 runs every cell in this process. "
                "At most one worker per objective"})
    vocab_size: int = field(default=128, metadata={"help": "sentencepiece vocabulary size"})
    encoder_layers: int = field(default=2, metadata={"help": "Transformer layers"})
    encoder_embed_dim: int = field(default=64, metadata={"help": "hidden size"})
    encoder_ffn_embed_dim: int = field(default=256, metadata={"help": "feed-forward size"})
    encoder_attention_heads: int = field(default=4, metadata={"help": "attention heads"})
    tokens_per_sample: int = field(default=16, metadata={
        "help": "pre-training block length (short blocks: a small model leaves the unigram "
                "plateau sooner)"})
    pretrain_updates: int = field(default=1000, metadata={"help": "pre-training updates"})
    pretrain_batch_size: int = field(default=128, metadata={"help": "pre-training blocks a batch"})
    pretrain_lr: float = field(default=2e-3, metadata={"help": "pre-training peak lr"})
    pretrain_warmup: float = field(default=0.03, metadata={"help": "pre-training warm-up share"})
    qg_updates: int = field(default=500, metadata={"help": "question-generation updates"})
    cls_updates: int = field(default=300, metadata={"help": "classification updates"})
    finetune_batch_size: int = field(default=32, metadata={"help": "fine-tuning batch"})
    finetune_lr: float = field(default=1e-3, metadata={"help": "fine-tuning peak lr"})
    finetune_warmup: float = field(default=0.06, metadata={"help": "fine-tuning warm-up share"})
    max_source_positions: int = field(default=96, metadata={
        "help": "source budget of question generation and sentence budget of classification, "
                "in sentencepiece tokens (longer ones are truncated)"})
    max_target_positions: int = field(default=48, metadata={
        "help": "question budget (question generation's training and generation, and the "
                "classification's question)"})
    beam: int = field(default=3, metadata={"help": "beam size of question generation"})
    lenpen: float = field(default=1.0, metadata={"help": "length penalty of generation"})
    validations: int = field(default=4, metadata={"help": "validations a training run"})
    max_test_examples: int = field(default=300, metadata={
        "help": "question-generation test pairs decoded and valid pairs validated, and "
                "classification valid questions (0 = all)"})
    pretrain_paragraphs: int = field(default=0, metadata={
        "help": "use at most this many pre-training paragraphs (0 = all)"})
    max_pairs: int = field(default=0, metadata={"help": "use at most this many nqg pairs (0 = all)"})


QUICK = dict(seeds=[1], encoder_ffn_embed_dim=128, pretrain_updates=20, pretrain_batch_size=16,
             qg_updates=12, cls_updates=12, finetune_batch_size=16, validations=2,
             max_test_examples=12, pretrain_paragraphs=300, max_pairs=600, beam=1,
             max_source_positions=48, max_target_positions=24)


def parse_args(argv: Optional[Sequence[str]] = None) -> AblationConfig:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for f in fields(AblationConfig):
        flag = flag_of(f.name)
        default = f.default_factory() if callable(f.default_factory) else f.default
        help_text = f.metadata["help"] + (f" (--quick: {QUICK[f.name]})" if f.name in QUICK else "")
        if f.type is bool:
            parser.add_argument(flag, action="store_true", help=help_text)
        elif isinstance(default, list):
            kind = int if f.name == "seeds" else str
            parser.add_argument(flag, nargs="+", type=kind, default=None,
                                choices=OBJECTIVES if f.name == "objectives" else None,
                                help=f"{help_text} [default: {' '.join(map(str, default))}]")
        else:
            parser.add_argument(flag, type=type(default), default=None,
                                help=f"{help_text} [default: {default}]")
    args = vars(parser.parse_args(argv))
    for f in fields(AblationConfig):
        if args[f.name] is None:
            args[f.name] = (QUICK[f.name] if args["quick"] and f.name in QUICK else
                            f.default_factory() if callable(f.default_factory) else f.default)
    return AblationConfig(**args)


def flag_of(name: str) -> str:
    """The command-line flag of an AblationConfig field."""
    return "--" + name.replace("_", "-")


# What a cell does not depend on: a folder holds cells of one set of the other settings.
NOT_IN_CELLS = ("out", "objectives", "seeds", "threads", "jobs", "skip_scratch", "quick")


def check_settings(cfg: AblationConfig, out: Path) -> None:
    """Finished cells are reused only under the settings that made them: --out of another
    study (other sizes, text or updates) is refused rather than mixed into one table."""
    settings = {k: v for k, v in vars(cfg).items() if k not in NOT_IN_CELLS}
    path = out / "settings.json"
    if path.exists():
        before = json.loads(path.read_text())
        changed = sorted(k for k in set(before) | set(settings) if before.get(k) != settings.get(k))
        if changed:
            flags = ", ".join(flag_of(k) for k in changed)
            raise SystemExit(f"ablation: {out} holds cells made with other settings ({flags}): "
                             "pass the same ones, or another --out")
    else:
        path.write_text(json.dumps(settings, indent=1))


def check_inputs(cfg: AblationConfig) -> None:
    """At run time, not parse time: the default data is ../shared/data, absent on some clones."""
    missing = [p for p in [*cfg.text, Path(cfg.nqg) / "src-dev.txt", Path(cfg.nqg) / "tgt-dev.txt"]
               if not Path(p).is_file()]
    if missing:
        raise SystemExit(f"ablation: no such file: {', '.join(map(str, missing))} (the default "
                         f"data lives in {SHARED}; pass --text / --nqg)")


# ----------------------------------------------------------------------------- cells (resume)
def cell(out: Path, name: str, compute) -> Dict:
    """The result of one stage of one row: read back when its file exists, else computed and
    written (only once it is complete, so an interrupted cell is rerun)."""
    path = out / "cells" / f"{name.replace('/', '__')}.json"
    if path.exists():
        print(f"\n== {name}: done before, kept ({path})", flush=True)
        return json.loads(path.read_text())
    print(f"\n== {name}", flush=True)
    start = time.time()
    result = dict(compute(), wall_s=round(time.time() - start, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    return result


# ----------------------------------------------------------------------------- workers
# Relative cost of a row's cells, to share rows fairly between workers: a pre-training with a
# pseudo part reads ~1.3x the tokens of one without; each row is fine-tuned on two tasks.
PRETRAIN_COST = {"ae": 1.0}
FINETUNE_COST = 3.0


# Set in a worker's environment: it makes its cells and leaves the table to the parent.
WORKER_ENV = "ABLATION_WORKER"


def share_rows(objectives: Sequence[str], scratch: bool, jobs: int) -> List[Dict]:
    """Split the rows between at most ``jobs`` workers (each gets at least one objective, so that
    each is an ``--objectives`` list): heaviest first, each to the least loaded worker; the
    from-scratch row (fine-tuning only) goes last, to the least loaded."""
    workers = [{"objectives": [], "scratch": False, "cost": 0.0}
               for _ in range(max(1, min(jobs, len(objectives))))]
    cost = {o: PRETRAIN_COST.get(o, 1.3) + FINETUNE_COST for o in objectives}
    for objective in sorted(objectives, key=lambda o: -cost[o]):
        lightest = min(workers, key=lambda w: w["cost"])
        lightest["objectives"].append(objective)
        lightest["cost"] += cost[objective]
    if scratch:
        lightest = min(workers, key=lambda w: w["cost"])
        lightest["scratch"], lightest["cost"] = True, lightest["cost"] + FINETUNE_COST
    for worker in workers:  # the table's order, not the sharing order
        worker["objectives"].sort(key=list(objectives).index)
    return workers


def worker_argv(cfg: AblationConfig, worker: Dict) -> List[str]:
    """This study's command line for one worker: every setting as given, its rows, one job."""
    argv = []
    for f in fields(AblationConfig):
        value = getattr(cfg, f.name)
        if f.name in ("objectives", "skip_scratch", "jobs", "quick"):
            continue
        flag = flag_of(f.name)
        argv += [flag, *map(str, value)] if isinstance(value, list) else [flag, str(value)]
    return [*argv, "--objectives", *worker["objectives"], "--jobs", "1",
            *([] if worker["scratch"] else ["--skip-scratch"])]


def run_workers(cfg: AblationConfig, out: Path) -> None:
    """Run the rows' cells in ``cfg.jobs`` processes; each writes its cells under ``out``, which
    the table is then made from. Each worker's output goes to ``logs/worker<i>.log``."""
    workers = share_rows(cfg.objectives, not cfg.skip_scratch, cfg.jobs)
    running = []
    for i, worker in enumerate(workers):
        argv = [sys.executable, str(Path(__file__).resolve()), *worker_argv(cfg, worker)]
        log = out / "logs" / f"worker{i}.log"
        print(f"\n== worker {i}: {' '.join(worker['objectives'])}"
              f"{' scratch' if worker['scratch'] else ''} (output: {log})\n$ "
              + " ".join(argv), flush=True)
        sink = open(log, "w")
        running.append((i, log, sink, subprocess.Popen(
            argv, stdout=sink, stderr=subprocess.STDOUT, env={**os.environ, WORKER_ENV: "1"})))
    failed = []
    for i, log, sink, proc in running:
        proc.wait()
        sink.close()
        print(f"== worker {i}: exit status {proc.returncode}", flush=True)
        if proc.returncode != 0:
            failed.append((i, log))
    for i, log in failed:
        sys.stdout.write(f"\n== worker {i} failed; the end of {log}:\n"
                         + log.read_text(encoding="utf-8")[-3000:])
    if failed:
        raise SystemExit(f"ablation: {len(failed)} worker(s) failed (logs above); finished cells "
                         "are kept: rerun the same command to resume")


# ----------------------------------------------------------------------------- data
def pretraining_text(cfg: AblationConfig, text_dir: Path) -> None:
    """Paragraphs of --text, lower-cased; every 20th to valid (at most 200), the rest train."""
    paragraphs = [line.strip().lower() for path in cfg.text
                  for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
                  if len(line.split()) >= 6]
    if cfg.pretrain_paragraphs:
        paragraphs = paragraphs[:cfg.pretrain_paragraphs]
    valid = [p for i, p in enumerate(paragraphs) if i % 20 == 0][:200]
    train = [p for i, p in enumerate(paragraphs) if i % 20 or p not in valid]
    if not train or not valid:
        raise SystemExit("ablation: --text gives no pre-training paragraphs (lines of 6+ words)")
    write_lines(text_dir / "pretrain" / "train.txt", train)
    write_lines(text_dir / "pretrain" / "valid.txt", valid)


def split_of(sentence: str) -> str:
    """train / valid / test by a hash of the source sentence: all questions of a sentence in
    one split, so that no test sentence was seen in fine-tuning."""
    bucket = int(hashlib.md5(sentence.encode()).hexdigest(), 16) % 20
    return "test" if bucket < 2 else "valid" if bucket < 3 else "train"


def task_data(cfg: AblationConfig, text_dir: Path) -> Dict[str, int]:
    """Question generation pairs and question/sentence classification examples.

    Classification: each (sentence, question) pair gives a positive and, with the nearest other
    sentence of the file (the same article: nqg keeps SQuAD's order), a negative example;
    which of the two comes first in the files alternates, so neither order is a cue.
    """
    nqg = Path(cfg.nqg)
    sources = [s.strip() for s in read_lines(nqg / "src-dev.txt")]
    questions = [q.strip() for q in read_lines(nqg / "tgt-dev.txt")]
    if cfg.max_pairs:
        sources, questions = sources[:cfg.max_pairs], questions[:cfg.max_pairs]
    qg = {s: [] for s in ("train", "valid", "test")}
    cls = {s: [] for s in ("train", "valid", "test")}
    for i, (sentence, question) in enumerate(zip(sources, questions)):
        split = split_of(sentence)
        qg[split].append((sentence, question))
        neighbour = nearest_other_sentence(sources, i)
        if neighbour is not None:
            cls[split].append((sentence, question, "yes"))
            cls[split].append((neighbour, question, "no"))
    if cfg.max_test_examples:
        for split in ("valid", "test"):
            qg[split] = qg[split][:cfg.max_test_examples]
        # Validation runs several times a fine-tuning: keep it as small (as many questions).
        cls["valid"] = cls["valid"][:2 * cfg.max_test_examples]
    for split, pairs in qg.items():
        write_lines(text_dir / "qg" / f"{split}.src", [s for s, _ in pairs])
        write_lines(text_dir / "qg" / f"{split}.tgt", [q for _, q in pairs])
    for split, examples in cls.items():
        # The question first: --shorten-method truncate cuts the end of a long pair.
        write_lines(text_dir / "cls" / f"{split}.input0", [q for _, q, _ in examples])
        write_lines(text_dir / "cls" / f"{split}.input1", [s for s, _, _ in examples])
        write_lines(text_dir / "cls" / f"{split}.label", [y for _, _, y in examples])
    counts = {f"qg_{s}": len(v) for s, v in qg.items()}
    counts.update({f"cls_{s}": len(v) for s, v in cls.items()})
    return counts


def nearest_other_sentence(sources: List[str], i: int) -> Optional[str]:
    for distance in range(1, 50):
        for j in (i + distance, i - distance):
            if 0 <= j < len(sources) and sources[j] != sources[i]:
                return sources[j]
    return None


def encode_all(spm_model: Path, text_dir: Path, spm_dir: Path) -> None:
    stages.encode_sentencepiece(spm_model, [
        (text_dir / rel, spm_dir / rel) for rel in sorted(
            p.relative_to(text_dir) for p in text_dir.rglob("*")
            if p.is_file() and not p.name.endswith(".label"))])


def trim_pairs(cfg: AblationConfig, cls_dir: Path) -> None:
    """Classification pairs within the fine-tuning budgets: the question at
    --max-target-positions, the sentence at --max-source-positions tokens (their ends cut), as
    question generation cuts them. Untrimmed, a few long sentences make the padded batches of
    sentence_prediction several times longer than the average pair."""
    for split in ("train", "valid", "test"):
        for column, budget in (("input0", cfg.max_target_positions),
                               ("input1", cfg.max_source_positions)):
            path = cls_dir / f"{split}.{column}"
            write_lines(path, [" ".join(line.split()[:budget]) for line in read_lines(path)])


def prepare(cfg: AblationConfig, out: Path) -> Dict:
    """Text, sentencepiece (trained on the pre-training text), binarized data: one dictionary
    (the pre-training one) for every task."""
    def compute():
        text_dir, spm_dir = fresh_dir(out / "text"), fresh_dir(out / "spm")
        bin_dir = fresh_dir(out / "data-bin")
        pretraining_text(cfg, text_dir)
        counts = task_data(cfg, text_dir)
        spm_model = stages.train_sentencepiece(text_dir / "pretrain" / "train.txt",
                                               spm_dir / "spm", cfg.vocab_size)
        encode_all(spm_model, text_dir, spm_dir)
        trim_pairs(cfg, spm_dir / "cls")
        splits = ("train", "valid", "test")
        stages.preprocess(bin_dir / "pretrain", spm_dir / "pretrain" / "{}.txt")
        dictionary = bin_dir / "pretrain" / "dict.txt"
        stages.preprocess(bin_dir / "qg", spm_dir / "qg" / "{}", splits, dictionary,
                          pairs=("src", "tgt"))
        for column in ("input0", "input1"):
            stages.preprocess(bin_dir / "cls" / column, spm_dir / "cls" / f"{{}}.{column}",
                              splits, dictionary)
        stages.preprocess(bin_dir / "cls" / "label", text_dir / "cls" / "{}.label", splits,
                          workers=1)
        return dict(counts, spm_model=str(spm_model),
                    unigram_entropy=stages.unigram_entropy(bin_dir / "pretrain"))
    return cell(out, "prepare", compute)


# ----------------------------------------------------------------------------- stages
def pretrain_cell(cfg: AblationConfig, out: Path, objective: str, seed: int) -> Dict:
    """One pre-training: its final valid losses, loss curves, input tokens read, wall time."""
    name = f"pretrain/{objective}/seed{seed}"
    save_dir = out / "checkpoints" / "pretrain" / objective.replace("+", "_") / f"seed{seed}"
    log = out / "logs" / f"{name.replace('/', '__')}.log"

    def compute():
        log.parent.mkdir(parents=True, exist_ok=True)
        stages.pretrain(SimpleNamespace(**vars(cfg), seed=seed), out / "data-bin" / "pretrain",
                            save_dir, log, extra_args=["--objective", objective])
        losses = loss_names(objective)
        curves = stages.loss_series(log, ["loss", *losses])
        text = log.read_text(encoding="utf-8")
        return {
            "checkpoint": str(save_dir / "checkpoint_last.pt"),
            "final_valid": {n: curves[f"valid_{n}"][-1][1] for n in losses},
            "curves": {k: v for k, v in curves.items() if k.startswith("valid_")},
            # Tokens the model read, pseudo part included (the criterion's input_tokens).
            "input_tokens": sum(train_totals(text, "input_tokens")),
            "train_s": stages.done_training_s(text),
        }
    return cell(out, name, compute)


def loss_names(objective: str) -> List[str]:
    return [f"{part}_loss" for part in objective.split("+")]


TRAIN_LINE = re.compile(r"\| train \| (\{.*\})\s*$")


def train_totals(text: str, key: str) -> List[float]:
    """Per-epoch totals of ``key`` from fairseq's end-of-epoch (``| train |``) json lines."""
    totals = []
    for line in text.splitlines():
        match = TRAIN_LINE.search(line)
        if match:
            stats = json.loads(match.group(1))
            if f"train_{key}" in stats:
                totals.append(float(stats[f"train_{key}"]))
    return totals


def finetune_args(cfg: AblationConfig, seed: int, updates: int) -> SimpleNamespace:
    """stages.finetune's settings for one fine-tuning run."""
    return SimpleNamespace(**dict(vars(cfg), seed=seed, finetune_updates=updates))


def qg_metrics(hypotheses: Path, references: Path, scores: Path) -> Dict[str, float]:
    """BLEU-4 and ROUGE-L of question generation from ``scripts/score.py --qg`` (Du et al.'s
    qgevalcap: COCO BLEU, ROUGE-L with beta 1.2) on Du et al.'s reference tokenization (the nqg
    files), with ``test.src`` beside ``references`` as the key file that pools the questions of
    one sentence. METEOR is left out: the table does not report it and its Java scorer is the
    slow part."""
    result = stages.score(hypotheses, references, scores, extra_args=[
        "--qg", "--qg-references", "du", "--no-meteor", "--src", references.with_suffix(".src")])
    return {"bleu4": result["bleu4"], "rougeL": result["rougeL"]}


def qg_cell(cfg: AblationConfig, out: Path, row: str, seed: int,
            pretrained: Optional[str], spm_model: Path) -> Dict:
    name = f"qg/{row}/seed{seed}"
    tag = f"{row.replace('+', '_')}_seed{seed}"

    def compute():
        qcfg = finetune_args(cfg, seed, cfg.qg_updates)
        data = out / "data-bin" / "qg"
        checkpoint = stages.finetune(qcfg, data, pretrained and Path(pretrained),
                                         out / "checkpoints" / "qg" / tag,
                                         out / "logs" / f"qg__{tag}.log")
        hyp = stages.generate(qcfg, data, checkpoint, spm_model, out / "generate" / tag,
                                  out / "generate" / f"{tag}.hyp")
        scores = qg_metrics(hyp, out / "text" / "qg" / "test.tgt", out / "generate" /
                            f"{tag}.scores.json")
        return dict(scores, hypotheses=str(hyp))
    return cell(out, name, compute)


def cls_cell(cfg: AblationConfig, out: Path, row: str, seed: int,
             pretrained: Optional[str]) -> Dict:
    """fairseq's sentence_prediction on (sentence, question) pairs; test accuracy of the
    checkpoint that did best on valid."""
    name = f"cls/{row}/seed{seed}"
    tag = f"{row.replace('+', '_')}_seed{seed}"

    def compute():
        data, save_dir = out / "data-bin" / "cls", out / "checkpoints" / "cls" / tag
        log = out / "logs" / f"cls__{tag}.log"
        restore = [] if pretrained is None else [
            "--restore-file", pretrained, "--reset-optimizer", "--reset-dataloader",
            "--reset-meters"]
        schedule = stages.schedule_args(cfg.cls_updates, cfg.finetune_lr,
                                            cfg.finetune_warmup, cfg.validations)
        positions = 512  # the model's (--max-positions sets it): a pre-trained one has 512
        # As RoBERTa's GLUE recipe: <s> first (its features classify), </s> between the
        # question and the sentence, so that the model can tell where one ends.
        run([cli("fairseq-train"), data, *stages.model_args(cfg), *restore,
             "--task", "sentence_prediction", "--criterion", "sentence_prediction",
             "--num-classes", "2", "--init-token", "0", "--separator-token", "2",
             "--max-positions", positions, "--shorten-method", "truncate",
             "--batch-size", cfg.finetune_batch_size,
             *schedule, "--best-checkpoint-metric", "accuracy",
             "--maximize-best-checkpoint-metric", "--save-dir", fresh_dir(save_dir),
             "--seed", seed], log=log)
        output = run([cli("fairseq-validate"), data, "--user-dir", stages.USER_DIR,
                      "--task", "sentence_prediction", "--num-classes", "2",
                      "--init-token", "0", "--separator-token", "2",
                      "--max-positions", positions,
                      "--shorten-method", "truncate", "--path", save_dir / "checkpoint_best.pt",
                      "--valid-subset", "test", "--batch-size", "64"])
        match = re.search(r"valid on 'test' subset.*\| accuracy ([\d.]+)", output)
        if not match:
            raise SystemExit(f"ablation: no test accuracy in fairseq-validate's output ({name})")
        return {"accuracy": float(match.group(1))}
    return cell(out, name, compute)


def baselines(out: Path) -> Dict:
    """Trivial systems: the most frequent training question for every test sentence, and the
    majority class of the classification's training labels."""
    def compute():
        text = out / "text"
        hyp = out / "generate" / "baseline.hyp"
        hyp.parent.mkdir(parents=True, exist_ok=True)
        answer = stages.baseline(text / "qg" / "train.tgt", text / "qg" / "test.src", hyp)
        qg = qg_metrics(hyp, text / "qg" / "test.tgt", out / "generate" / "baseline.scores.json")
        labels = read_lines(text / "cls" / "train.label")
        majority = max(set(labels), key=labels.count)
        test = read_lines(text / "cls" / "test.label")
        return dict(qg, question=answer, accuracy=100.0 * test.count(majority) / len(test))
    return cell(out, "baseline", compute)


# ----------------------------------------------------------------------------- report
COLUMNS = [("pretrain", "valid_loss", "pre-training valid loss (bits)"),
           ("pretrain", "input_mtokens", "tokens read (M)"),
           ("pretrain", "train_min", "pre-training (min)"),
           ("qg", "bleu4", "QG BLEU-4"), ("qg", "rougeL", "QG ROUGE-L"),
           ("cls", "accuracy", "question/sentence acc. (%)")]


def mean_std(values: Sequence[float]) -> Dict:
    values = [v for v in values if v is not None]
    if not values:
        return {}
    return {"mean": statistics.mean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0, "n": len(values),
            "values": values}


def summarize(rows: Dict[str, Dict[int, Dict]], baseline: Dict) -> Dict[str, Dict]:
    table = {}
    for row, seeds in rows.items():
        def collect(stage, key):
            return [cells[stage].get(key) for cells in seeds.values() if stage in cells]
        pre = [cells["pretrain"] for cells in seeds.values() if "pretrain" in cells]
        table[row] = {
            "valid_loss": {n: mean_std([p["final_valid"][n] for p in pre])
                           for n in (pre[0]["final_valid"] if pre else {})},
            "input_mtokens": mean_std([p["input_tokens"] / 1e6 for p in pre if p["input_tokens"]]),
            "train_min": mean_std([p["wall_s"] / 60 for p in pre]),
            "bleu4": mean_std(collect("qg", "bleu4")), "rougeL": mean_std(collect("qg", "rougeL")),
            "accuracy": mean_std(collect("cls", "accuracy")),
        }
    table["trivial baseline"] = {"bleu4": {"mean": baseline["bleu4"], "std": 0.0, "n": 1},
                                 "rougeL": {"mean": baseline["rougeL"], "std": 0.0, "n": 1},
                                 "accuracy": {"mean": baseline["accuracy"], "std": 0.0, "n": 1}}
    return table


def fmt(stat: Dict, digits: int = 2) -> str:
    if not stat:
        return "-"
    if "mean" not in stat:  # per-loss dict
        return ", ".join(f"{name.replace('_loss', '')} {fmt(s)}" for name, s in stat.items())
    return (f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}" if stat["n"] > 1
            else f"{stat['mean']:.{digits}f}")


def markdown(table: Dict[str, Dict], seeds: Sequence[int]) -> str:
    header = "| objective | " + " | ".join(title for _, _, title in COLUMNS) + " |"
    lines = [f"Mean ± standard deviation over seeds {', '.join(map(str, seeds))} "
             "(one value: one run).", "", header, "|" + "---|" * (len(COLUMNS) + 1)]
    for row, stats in table.items():
        lines.append(f"| {row} | " + " | ".join(fmt(stats.get(key, {})) for _, key, _ in COLUMNS)
                     + " |")
    return "\n".join(lines) + "\n"


def plot(rows: Dict[str, Dict[int, Dict]], table: Dict, entropy: float, out: Path) -> None:
    import logging
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts = [part for part in ("ae_loss", "par_loss", "ar_loss")
             if any(f"valid_{part}" in cells.get("pretrain", {}).get("curves", {})
                    for seeds in rows.values() for cells in seeds.values())]
    fig, axes = plt.subplots(1, len(parts), figsize=(5 * len(parts), 4), sharey=True,
                             squeeze=False)
    axes = axes[0]
    colors = {row: f"C{i}" for i, row in enumerate(rows)}
    for ax, part in zip(axes, parts):
        for row, seeds in rows.items():
            for seed, cells in seeds.items():
                points = cells.get("pretrain", {}).get("curves", {}).get(f"valid_{part}")
                if points:
                    xs, ys = zip(*points)
                    ax.plot(xs, ys, marker="o", markersize=3, color=colors[row],
                            label=row if seed == min(seeds) else None)
        ax.axhline(entropy, color="gray", linestyle=":", label=f"unigram entropy {entropy:.2f}")
        ax.set(title=f"valid {part.replace('_', ' ')}", xlabel="update",
               ylabel="bits per masked token")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "pretraining_curves.png", dpi=100)
    plt.close(fig)

    metrics = [("bleu4", "QG BLEU-4"), ("rougeL", "QG ROUGE-L"), ("accuracy", "classification acc.")]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    names = list(table)
    for ax, (key, title) in zip(axes, metrics):
        means = [table[n].get(key, {}).get("mean", 0.0) for n in names]
        stds = [table[n].get(key, {}).get("std", 0.0) for n in names]
        ax.bar(range(len(names)), means, yerr=stds, capsize=3,
               color=[colors.get(n, "gray") for n in names])
        ax.set_xticks(range(len(names)), names, rotation=30, fontsize=8)
        ax.set(title=title)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "finetuning_scores.png", dpi=100)
    plt.close(fig)


# ----------------------------------------------------------------------------- main
def main(argv: Optional[Sequence[str]] = None) -> Dict:
    cfg = parse_args(argv)
    check_inputs(cfg)
    os.environ["OMP_NUM_THREADS"] = str(cfg.threads)
    start = time.time()
    out = Path(cfg.out).resolve()
    (out / "logs").mkdir(parents=True, exist_ok=True)
    check_settings(cfg, out)
    print(f"== ablation: all results go to {out}", flush=True)
    prepared = prepare(cfg, out)
    spm_model = Path(prepared["spm_model"])
    if cfg.jobs > 1 and len(cfg.objectives) > 1:
        run_workers(cfg, out)  # every cell below is then read back
    scratch = [] if cfg.skip_scratch else [SCRATCH]
    rows: Dict[str, Dict[int, Dict]] = {row: {} for row in [*cfg.objectives, *scratch]}
    for seed in cfg.seeds:
        for objective in cfg.objectives:
            pre = pretrain_cell(cfg, out, objective, seed)
            rows[objective][seed] = {
                "pretrain": pre,
                "qg": qg_cell(cfg, out, objective, seed, pre["checkpoint"], spm_model),
                "cls": cls_cell(cfg, out, objective, seed, pre["checkpoint"])}
        if scratch:
            rows[SCRATCH][seed] = {"qg": qg_cell(cfg, out, SCRATCH, seed, None, spm_model),
                                   "cls": cls_cell(cfg, out, SCRATCH, seed, None)}
    if os.environ.get(WORKER_ENV):
        return {}
    baseline = baselines(out)
    table = summarize(rows, baseline)
    md = markdown(table, cfg.seeds)
    results = {"config": vars(cfg), "data": {k: v for k, v in prepared.items()
                                             if k != "spm_model"},
               "table": table, "cells": rows, "baseline": baseline,
               "minutes": round((time.time() - start) / 60, 2)}
    (out / "results.json").write_text(json.dumps(results, indent=1))
    (out / "results.md").write_text(md)
    plot(rows, table, prepared["unigram_entropy"], out)
    print(f"\n== ablation table (unigram entropy of the valid text: "
          f"{prepared['unigram_entropy']:.2f} bits)\n\n{md}", flush=True)
    print(f"results: {out / 'results.json'}  {out / 'results.md'}\n"
          f"plots:   {out / 'pretraining_curves.png'}  {out / 'finetuning_scores.png'}\n"
          f"this run: {results['minutes']} min (finished cells kept from earlier runs count "
          "as 0)", flush=True)
    return results


if __name__ == "__main__":
    main()
