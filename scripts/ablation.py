#!/usr/bin/env python
"""The paper's objective ablation (its Table 6) on a budget: AE, AR, PAR, AE+AR, AE+PAR side by side.

    python scripts/ablation.py                    # the defaults (minutes per cell: the recipe)
    python scripts/ablation.py --quick            # tiny sizes, the same stages (a test runs it)
    python scripts/ablation.py --text botchan.txt --out ablation_botchan   # another corpus
    python scripts/ablation.py --mask-only        # every row without BERT's 80/10/10 rule
    python scripts/ablation.py --tasks qg question-match squad ...   # the GPU-scale tasks
    python scripts/ablation.py --jobs 1           # every cell in this process, one at a time

For every objective and seed: pre-train the same model (``fairseq-train --task pmlm
--objective O --seed S``) on the same text with the same updates and batch of texts (so the
objectives with a pseudo part read ~1.3x the tokens: each row reports its tokens read and wall
time). Then fine-tune every checkpoint, and the same model from random weights, on each task of
``--tasks``. The default tasks are made from paragraphs of ``--text`` held out of pre-training
(``fairseq_unilmv2/experiments/downstream.py``), one a fine-tuning family of the paper:

- ``backwards-word`` (generation, ``--task unilm_seq2seq``, beam search): a word written
  backwards in its context, to be written forwards; exact match;
- ``spelling`` (classification, fairseq's ``--task sentence_prediction``): a word as written,
  or with two neighbouring letters swapped; accuracy (``fairseq-validate`` on test);
- ``misspelled-word`` (span extraction, ``--task squad``): a run of words in which one word has
  two neighbouring letters swapped; the answer is that word, exact match by the SQuAD v1.1
  script's rules (``scripts/squad.py predict``).

Also made from --text, measured not to learn at the default sizes: ``word-order`` (a run of
words as written or with two neighbouring words swapped) and ``fill-blank`` (which of a few
words of the paragraph fills a blank).

For GPU-scale runs, ``qg`` (question generation on ../shared/data/nqg: Du & Cardie's SQuAD
sentence -> question pairs; BLEU-4 and ROUGE-L of ``scripts/score.py --qg``),
``question-match`` (was this question asked about this sentence, against the nearest other
sentence of its article) and ``squad`` (SQuAD v1.1 EM/F1 of ``--squad`` files).

Writes ``results.json`` and ``results.md`` (objective x task, mean +- std over seeds, beside the
trivial baseline and the from-scratch row, the ordering of the rows and which differences exceed
twice the larger standard deviation), ``pretraining_curves.png`` and ``finetuning_scores.png``.
Every stage prints its command; a finished cell (one stage of one objective and seed) leaves
``cells/<name>.json`` and is not rerun, so an interrupted study resumes where it stopped
(``--out`` the same folder). The sentencepiece, binarization and fairseq stages are
``fairseq_unilmv2/experiments/stages.py``'s, as the demo's.
"""
import argparse
import hashlib
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, List, Optional, Sequence, Tuple

from fairseq_unilmv2.experiments import downstream, stages
from fairseq_unilmv2.experiments.stages import cli, fresh_dir, read_lines, run, write_lines

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
OBJECTIVES = ("ae", "ar", "par", "ae+ar", "ae+par")
SCRATCH = "scratch"  # the row fine-tuned from random weights
BASELINE = "trivial baseline"


@dataclass(frozen=True)
class Task:
    """A downstream task of the study: how it is fine-tuned and which column decides whether a
    row learned it (``metric``; ``more``: other columns kept in results.json)."""
    name: str
    family: str
    metric: str
    title: str
    more: Tuple[str, ...] = ()
    own_text: bool = False  # made from held-out paragraphs of --text
    cost: float = 1.0       # fine-tuning and scoring, in units of an ``ae`` pre-training


TASKS = {task.name: task for task in (
    Task("backwards-word", "generation", "exact", "backwards word EM (%)", own_text=True,
         cost=0.9),
    Task("spelling", "classification", "accuracy", "spelling acc. (%)", own_text=True,
         cost=0.25),
    Task("misspelled-word", "span", "exact_match", "misspelled word EM (%)", ("f1",),
         own_text=True, cost=0.35),
    Task("word-order", "classification", "accuracy", "word order acc. (%)", own_text=True,
         cost=0.2),
    Task("fill-blank", "span", "exact_match", "fill-the-blank EM (%)", ("f1",), own_text=True,
         cost=0.3),
    Task("qg", "generation", "bleu4", "QG BLEU-4", ("rougeL",), cost=1.5),
    Task("question-match", "classification", "accuracy", "question/sentence acc. (%)", cost=1.0),
    Task("squad", "span", "f1", "SQuAD F1", ("exact_match",), cost=1.5),
)}
# One task a fine-tuning family, chosen because the default row learns each at the default sizes
# (examples/ablation/README.md: the choice and the alternatives tried).
DEFAULT_TASKS = ["backwards-word", "spelling", "misspelled-word"]


@dataclass
class AblationConfig:
    text: List[str] = field(default_factory=lambda: [
        str(SHARED / "wikitext2" / "valid.txt"), str(SHARED / "wikitext2" / "test.txt")],
        metadata={"help": "pre-training text (one paragraph a line; lower-cased here); every "
                          "--task-paragraph-every-th paragraph is held out for the tasks"})
    tasks: List[str] = field(default_factory=lambda: list(DEFAULT_TASKS), metadata={
        "help": "downstream tasks: backwards-word, spelling, misspelled-word, word-order, "
                "fill-blank (made from held-out paragraphs of --text), qg, question-match "
                "(--nqg), squad (--squad)"})
    nqg: str = field(default=str(SHARED / "nqg"), metadata={
        "help": "folder with src-dev.txt / tgt-dev.txt (sentence / question pairs) for the qg "
                "and question-match tasks"})
    squad: List[str] = field(default_factory=lambda: [
        str(SHARED / "squad" / "dev-v2.0-first3.json")], metadata={
        "help": "SQuAD JSON for the squad task: one file (its last article the test set, the "
                "one before it valid, the rest train) or two (train, test; every 10th train "
                "article valid); unanswerable questions are left out (v1.1 scoring)"})
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
    mask_only: bool = field(default=False, metadata={
        "help": "pre-train every row with --leave-unmasked-prob 0 --random-token-prob 0: every "
                "masked position shows <mask>, none keeps its token (BERT's 80/10/10 rule off), "
                "so the pseudo masks of par and ar cannot read a tenth of the originals"})
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
    task_paragraph_every: int = field(default=10, metadata={
        "help": "every this-many-th paragraph of --text is held out of pre-training for the "
                "tasks made from --text (a tenth of those to test, a tenth to valid, the rest to "
                "train)"})
    context_words: int = field(default=1, metadata={
        "help": "words on each side of the backwards word and of the blank"})
    example_every: int = field(default=3, metadata={
        "help": "one backwards-word pair, one spelling pair and one fill-the-blank question per "
                "this many words of a held-out paragraph"})
    candidates: int = field(default=3, metadata={
        "help": "words of four letters or more a misspelled-word passage holds, and words of a "
                "fill-the-blank passage (the answer among them)"})
    window_words: int = field(default=6, metadata={
        "help": "words of a word-order example"})
    backwards_word_updates: int = field(default=1500, metadata={
        "help": "backwards-word fine-tuning updates"})
    spelling_updates: int = field(default=500, metadata={"help": "spelling fine-tuning updates"})
    misspelled_word_updates: int = field(default=800, metadata={
        "help": "misspelled-word fine-tuning updates"})
    word_order_updates: int = field(default=400, metadata={
        "help": "word-order fine-tuning updates"})
    fill_blank_updates: int = field(default=400, metadata={
        "help": "fill-blank fine-tuning updates"})
    qg_updates: int = field(default=500, metadata={"help": "question-generation updates"})
    question_match_updates: int = field(default=300, metadata={
        "help": "question-match (question/sentence classification) updates"})
    squad_updates: int = field(default=500, metadata={"help": "squad fine-tuning updates"})
    finetune_batch_size: int = field(default=64, metadata={"help": "fine-tuning batch"})
    finetune_lr: float = field(default=1e-3, metadata={"help": "fine-tuning peak lr"})
    finetune_warmup: float = field(default=0.06, metadata={"help": "fine-tuning warm-up share"})
    max_source_positions: int = field(default=96, metadata={
        "help": "source budget of the generation tasks and sentence budget of question-match, "
                "in sentencepiece tokens (longer ones are truncated)"})
    max_target_positions: int = field(default=48, metadata={
        "help": "target budget of the generation tasks (training and generation), and the "
                "question budget of question-match and of the span tasks"})
    max_seq_length: int = field(default=64, metadata={
        "help": "window of the span tasks (--task squad): [CLS] question [SEP] passage [SEP]; "
                "its doc stride is half of it"})
    beam: int = field(default=3, metadata={"help": "beam size of the generation tasks"})
    lenpen: float = field(default=1.0, metadata={"help": "length penalty of generation"})
    validations: int = field(default=4, metadata={"help": "validations a training run"})
    max_test_examples: int = field(default=1000, metadata={
        "help": "test and valid examples of each task, at most (0 = all; question-match keeps "
                "twice as many: a positive and a negative a question)"})
    pretrain_paragraphs: int = field(default=0, metadata={
        "help": "use at most this many paragraphs of --text (0 = all)"})
    max_pairs: int = field(default=0, metadata={"help": "use at most this many nqg pairs (0 = all)"})


QUICK = dict(seeds=[1], encoder_ffn_embed_dim=128, pretrain_updates=20, pretrain_batch_size=16,
             backwards_word_updates=12, spelling_updates=12, misspelled_word_updates=12,
             word_order_updates=12, fill_blank_updates=12,
             qg_updates=12, question_match_updates=12, squad_updates=12, finetune_batch_size=16,
             validations=2, max_test_examples=12, pretrain_paragraphs=300, max_pairs=600, beam=1,
             max_source_positions=48, max_target_positions=24, max_seq_length=48)


def parse_args(argv: Optional[Sequence[str]] = None) -> AblationConfig:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    choices = {"objectives": OBJECTIVES, "tasks": tuple(TASKS)}
    for f in fields(AblationConfig):
        flag = flag_of(f.name)
        default = f.default_factory() if callable(f.default_factory) else f.default
        help_text = f.metadata["help"] + (f" (--quick: {QUICK[f.name]})" if f.name in QUICK else "")
        if f.type is bool:
            parser.add_argument(flag, action="store_true", help=help_text)
        elif isinstance(default, list):
            kind = int if f.name == "seeds" else str
            parser.add_argument(flag, nargs="+", type=kind, default=None,
                                choices=choices.get(f.name),
                                help=f"{help_text} [default: {' '.join(map(str, default))}]")
        else:
            parser.add_argument(flag, type=type(default), default=None,
                                help=f"{help_text} [default: {default}]")
    args = vars(parser.parse_args(argv))
    for f in fields(AblationConfig):
        if args[f.name] is None:
            args[f.name] = (QUICK[f.name] if args["quick"] and f.name in QUICK else
                            f.default_factory() if callable(f.default_factory) else f.default)
    if len(args["squad"]) > 2:
        parser.error("--squad takes one file (split by article) or two (train, test)")
    return AblationConfig(**args)


def flag_of(name: str) -> str:
    """The command-line flag of an AblationConfig field."""
    return "--" + name.replace("_", "-")


def updates_of(cfg: AblationConfig, task: str) -> int:
    return getattr(cfg, task.replace("-", "_") + "_updates")


# What a cell does not depend on: a folder holds cells of one set of the other settings.
NOT_IN_CELLS = ("out", "objectives", "seeds", "threads", "jobs", "skip_scratch", "quick")


def check_settings(cfg: AblationConfig, out: Path) -> None:
    """Finished cells are reused only under the settings that made them: --out of another
    study (other sizes or text) is refused rather than mixed into one table. A task's own
    number of updates is the exception: changed, only that task's cells are made again (the old
    ones are moved to ``cells/superseded/``), so one task can be tuned on the same checkpoints."""
    settings = {k: v for k, v in vars(cfg).items() if k not in NOT_IN_CELLS}
    path = out / "settings.json"
    if path.exists():
        before = json.loads(path.read_text())
        changed = sorted(k for k in set(before) | set(settings) if before.get(k) != settings.get(k))
        own = {f"{task.replace('-', '_')}_updates": task for task in TASKS}
        fixed = [k for k in changed if k not in own]
        if fixed:
            flags = ", ".join(flag_of(k) for k in fixed)
            raise SystemExit(f"ablation: {out} holds cells made with other settings ({flags}): "
                             "pass the same ones, or another --out")
        for key in changed:
            supersede_cells(out, own[key], f"{flag_of(key)} {before.get(key)} -> {settings[key]}")
    path.write_text(json.dumps(settings, indent=1))


def supersede_cells(out: Path, task: str, why: str) -> None:
    """Move a task's finished cells out of the way: they are made again."""
    cells = sorted((out / "cells").glob(f"{task}__*.json"))
    print(f"== {task}: {why}: its {len(cells)} finished cells are made again (the old ones: "
          f"{out / 'cells' / 'superseded'})", flush=True)
    for path in cells:
        (out / "cells" / "superseded").mkdir(exist_ok=True)
        path.rename(out / "cells" / "superseded" / path.name)


def check_inputs(cfg: AblationConfig) -> None:
    """At run time, not parse time: the default data is ../shared/data, absent on some clones."""
    needed = list(cfg.text)
    if {"qg", "question-match"} & set(cfg.tasks):
        needed += [Path(cfg.nqg) / "src-dev.txt", Path(cfg.nqg) / "tgt-dev.txt"]
    if "squad" in cfg.tasks:
        needed += cfg.squad
    missing = [str(p) for p in needed if not Path(p).is_file()]
    if missing:
        raise SystemExit(f"ablation: no such file: {', '.join(missing)} (the default data "
                         f"lives in {SHARED}; pass --text / --nqg / --squad)")


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
# pseudo part reads ~1.3x the tokens of one without (``ae``); each task's fine-tuning costs
# Task.cost (measured at the default sizes, in units of an ``ae`` pre-training).
PRETRAIN_COST = {"ae": 1.0}


# Set in a worker's environment: it makes its cells and leaves the table to the parent.
WORKER_ENV = "ABLATION_WORKER"


def share_rows(objectives: Sequence[str], scratch: bool, jobs: int,
               finetune_cost: float = 1.0) -> List[Dict]:
    """Split the rows between at most ``jobs`` workers (each gets at least one objective, so that
    each is an ``--objectives`` list): heaviest first, each to the least loaded worker; the
    from-scratch row (fine-tuning only) goes last, to the least loaded."""
    workers = [{"objectives": [], "scratch": False, "cost": 0.0}
               for _ in range(max(1, min(jobs, len(objectives))))]
    cost = {o: PRETRAIN_COST.get(o, 1.3) + finetune_cost for o in objectives}
    for objective in sorted(objectives, key=lambda o: -cost[o]):
        lightest = min(workers, key=lambda w: w["cost"])
        lightest["objectives"].append(objective)
        lightest["cost"] += cost[objective]
    if scratch:
        lightest = min(workers, key=lambda w: w["cost"])
        lightest["scratch"], lightest["cost"] = True, lightest["cost"] + finetune_cost
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
        if f.type is bool:
            argv += [flag] if value else []
        else:
            argv += [flag, *map(str, value)] if isinstance(value, list) else [flag, str(value)]
    return [*argv, "--objectives", *worker["objectives"], "--jobs", "1",
            *([] if worker["scratch"] else ["--skip-scratch"])]


def run_workers(cfg: AblationConfig, out: Path) -> None:
    """Run the rows' cells in ``cfg.jobs`` processes; each writes its cells under ``out``, which
    the table is then made from. Each worker's output goes to ``logs/worker<i>.log``."""
    workers = share_rows(cfg.objectives, not cfg.skip_scratch, cfg.jobs,
                         sum(TASKS[t].cost for t in cfg.tasks))
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
SPLITS = ("train", "valid", "test")


def paragraphs_of(cfg: AblationConfig) -> List[str]:
    """Paragraphs of --text (lines of 6 words or more), lower-cased."""
    paragraphs = [line.strip().lower() for path in cfg.text
                  for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
                  if len(line.split()) >= 6]
    return paragraphs[:cfg.pretrain_paragraphs] if cfg.pretrain_paragraphs else paragraphs


def pretraining_text(cfg: AblationConfig, text_dir: Path) -> List[str]:
    """Write the pre-training text; return the paragraphs held out of it for the tasks.

    Every --task-paragraph-every-th paragraph is held out; of the others every 20th goes to
    valid (at most 200), the rest to train (a valid paragraph repeated in the text is not also
    trained on).
    """
    paragraphs = paragraphs_of(cfg)
    held_out = [p for i, p in enumerate(paragraphs) if i % cfg.task_paragraph_every == 0]
    # A paragraph repeated in the text is held out wholly, not pre-trained on in another copy.
    held = set(held_out)
    kept = [p for i, p in enumerate(paragraphs) if i % cfg.task_paragraph_every and p not in held]
    valid = [p for i, p in enumerate(kept) if i % 20 == 0][:200]
    train = [p for i, p in enumerate(kept) if i % 20 or p not in valid]
    if not train or not valid or not held_out:
        raise SystemExit("ablation: --text gives too few paragraphs (lines of 6+ words) for "
                         "pre-training and the held-out tasks")
    write_lines(text_dir / "pretrain" / "train.txt", train)
    write_lines(text_dir / "pretrain" / "valid.txt", valid)
    return held_out


def held_out_split(index: int) -> str:
    """The split of the index-th held-out paragraph: a tenth test, a tenth valid."""
    return "test" if index % 10 == 0 else "valid" if index % 10 == 1 else "train"


def own_text_tasks(cfg: AblationConfig, held_out: Sequence[str], text_dir: Path) -> Dict[str, int]:
    """The examples of the tasks of ``cfg.tasks`` made from --text, split by held-out paragraph (no test paragraph is seen in pre-training or fine-tuning)."""
    builders = {
        "backwards-word": lambda p, rng: downstream.backwards_word_pairs(
            p, rng, cfg.context_words, cfg.example_every),
        "word-order": lambda p, rng: downstream.word_order_examples(p, rng, cfg.window_words),
        "fill-blank": lambda p, rng: downstream.fill_blank_questions(
            p, rng, cfg.context_words, cfg.example_every, cfg.candidates),
        "spelling": lambda p, rng: downstream.spelling_examples(p, rng, cfg.example_every),
        "misspelled-word": lambda p, rng: downstream.misspelled_word_questions(
            p, rng, cfg.candidates),
    }
    counts = {}
    for task in [t for t in cfg.tasks if TASKS[t].own_text]:
        rng = random.Random(task)  # one fixed stream a task: the same examples for every row
        examples = {split: [] for split in SPLITS}
        for i, paragraph in enumerate(held_out):
            examples[held_out_split(i)].extend(builders[task](paragraph, rng))
        if cfg.max_test_examples:
            # word-order's examples come in pairs (as written, swapped): keep whole pairs.
            paired = TASKS[task].family == "classification"
            keep = cfg.max_test_examples - (cfg.max_test_examples % 2 if paired else 0)
            examples["valid"], examples["test"] = (examples["valid"][:keep],
                                                   examples["test"][:keep])
        empty = [split for split, rows in examples.items() if not rows]
        if empty:
            raise SystemExit(f"ablation: the held-out paragraphs give no {task} examples for "
                             f"{', '.join(empty)}: give more --text")
        write_task(TASKS[task].family, examples, text_dir / task)
        counts.update({f"{task}_{split}": len(rows) for split, rows in examples.items()})
    return counts


def write_task(family: str, examples: Dict[str, List], task_dir: Path) -> None:
    for split, rows in examples.items():
        if family == "generation":
            write_lines(task_dir / f"{split}.src", [source for source, _ in rows])
            write_lines(task_dir / f"{split}.tgt", [answer for _, answer in rows])
        elif family == "classification":
            write_lines(task_dir / f"{split}.input0", [text for text, _ in rows])
            write_lines(task_dir / f"{split}.label", [label for _, label in rows])
        else:
            write_json(task_dir / f"{split}.json",
                       downstream.squad_json(rows, split, split))


def write_json(path: Path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, ensure_ascii=False), encoding="utf-8")


def split_of(sentence: str) -> str:
    """train / valid / test by a hash of the source sentence: all questions of a sentence in
    one split, so that no test sentence was seen in fine-tuning."""
    bucket = int(hashlib.md5(sentence.encode()).hexdigest(), 16) % 20
    return "test" if bucket < 2 else "valid" if bucket < 3 else "train"


def nqg_tasks(cfg: AblationConfig, text_dir: Path) -> Dict[str, int]:
    """Question generation pairs and question/sentence classification examples.

    question-match: each (sentence, question) pair gives a positive and, with the nearest other
    sentence of the file (the same article: nqg keeps SQuAD's order), a negative example.
    """
    nqg = Path(cfg.nqg)
    sources = [s.strip() for s in read_lines(nqg / "src-dev.txt")]
    questions = [q.strip() for q in read_lines(nqg / "tgt-dev.txt")]
    if cfg.max_pairs:
        sources, questions = sources[:cfg.max_pairs], questions[:cfg.max_pairs]
    qg = {s: [] for s in SPLITS}
    match = {s: [] for s in SPLITS}
    for i, (sentence, question) in enumerate(zip(sources, questions)):
        split = split_of(sentence)
        qg[split].append((sentence, question))
        neighbour = nearest_other_sentence(sources, i)
        if neighbour is not None:
            match[split].append((sentence, question, "yes"))
            match[split].append((neighbour, question, "no"))
    if cfg.max_test_examples:
        for split in ("valid", "test"):
            qg[split] = qg[split][:cfg.max_test_examples]
        # Validation runs several times a fine-tuning: keep it as small (as many questions).
        match["valid"] = match["valid"][:2 * cfg.max_test_examples]
    counts = {}
    if "qg" in cfg.tasks:
        for split, pairs in qg.items():
            write_lines(text_dir / "qg" / f"{split}.src", [s for s, _ in pairs])
            write_lines(text_dir / "qg" / f"{split}.tgt", [q for _, q in pairs])
        counts.update({f"qg_{s}": len(v) for s, v in qg.items()})
    if "question-match" in cfg.tasks:
        for split, examples in match.items():
            # The question first: --shorten-method truncate cuts the end of a long pair.
            folder = text_dir / "question-match"
            write_lines(folder / f"{split}.input0", [q for _, q, _ in examples])
            write_lines(folder / f"{split}.input1", [s for s, _, _ in examples])
            write_lines(folder / f"{split}.label", [y for _, _, y in examples])
        counts.update({f"question-match_{s}": len(v) for s, v in match.items()})
    return counts


def nearest_other_sentence(sources: List[str], i: int) -> Optional[str]:
    for distance in range(1, 50):
        for j in (i + distance, i - distance):
            if 0 <= j < len(sources) and sources[j] != sources[i]:
                return sources[j]
    return None


def squad_task(cfg: AblationConfig, text_dir: Path) -> Dict[str, int]:
    """SQuAD articles split into train / valid / test, lower-cased (the sentencepiece model is
    trained on lower-cased text), answerable questions only (SQuAD v1.1)."""
    files = [json.loads(Path(p).read_text(encoding="utf-8"))["data"] for p in cfg.squad]
    if len(files) == 1:
        articles = files[0]
        if len(articles) < 3:
            raise SystemExit(f"ablation: {cfg.squad[0]} has {len(articles)} article(s); one "
                             "--squad file is split by article and needs at least 3")
        splits = {"train": articles[:-2], "valid": articles[-2:-1], "test": articles[-1:]}
    else:
        train, test = files
        splits = {"train": [a for i, a in enumerate(train) if i % 10 != 9],
                  "valid": [a for i, a in enumerate(train) if i % 10 == 9] or train[-1:],
                  "test": test}
    counts = {}
    for split, articles in splits.items():
        kept = [answerable_lower_cased(a) for a in articles]
        write_json(text_dir / "squad" / f"{split}.json", {"version": "1.1", "data": kept})
        counts[f"squad_{split}"] = sum(len(p["qas"]) for a in kept for p in a["paragraphs"])
    return counts


def lower_same_length(text: str) -> str:
    """Lower case where it keeps every character one character (answer offsets stay valid)."""
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in text)


def answerable_lower_cased(article: Dict) -> Dict:
    paragraphs = []
    for paragraph in article["paragraphs"]:
        qas = [{"id": qa["id"], "question": lower_same_length(qa["question"]),
                "answers": [dict(a, text=lower_same_length(a["text"])) for a in qa["answers"]]}
               for qa in paragraph["qas"] if qa.get("answers") and not qa.get("is_impossible")]
        if qas:
            paragraphs.append({"context": lower_same_length(paragraph["context"]), "qas": qas})
    return {"title": article.get("title", ""), "paragraphs": paragraphs}


def encode_all(spm_model: Path, text_dir: Path, spm_dir: Path) -> None:
    """Every text file of the study (not labels, not SQuAD JSON) into sentencepiece pieces."""
    stages.encode_sentencepiece(spm_model, [
        (text_dir / rel, spm_dir / rel) for rel in sorted(
            p.relative_to(text_dir) for p in text_dir.rglob("*")
            if p.is_file() and p.suffix not in (".label", ".json"))])


def trim_pairs(cfg: AblationConfig, folder: Path) -> None:
    """question-match pairs within the fine-tuning budgets: the question at
    --max-target-positions, the sentence at --max-source-positions tokens (their ends cut), as
    question generation cuts them. Untrimmed, a few long sentences make the padded batches of
    sentence_prediction several times longer than the average pair."""
    for split in SPLITS:
        for column, budget in (("input0", cfg.max_target_positions),
                               ("input1", cfg.max_source_positions)):
            path = folder / f"{split}.{column}"
            write_lines(path, [" ".join(line.split()[:budget]) for line in read_lines(path)])


def prepare(cfg: AblationConfig, out: Path) -> Dict:
    """Text, sentencepiece (trained on the pre-training text), binarized data: one dictionary
    (the pre-training one) for every task; the span tasks' SQuAD JSON beside a copy of it."""
    def compute():
        text_dir, spm_dir = fresh_dir(out / "text"), fresh_dir(out / "spm")
        bin_dir = fresh_dir(out / "data-bin")
        held_out = pretraining_text(cfg, text_dir)
        counts = {"held_out_paragraphs": len(held_out), **own_text_tasks(cfg, held_out, text_dir)}
        if {"qg", "question-match"} & set(cfg.tasks):
            counts.update(nqg_tasks(cfg, text_dir))
        if "squad" in cfg.tasks:
            counts.update(squad_task(cfg, text_dir))
        spm_model = stages.train_sentencepiece(text_dir / "pretrain" / "train.txt",
                                               spm_dir / "spm", cfg.vocab_size)
        encode_all(spm_model, text_dir, spm_dir)
        stages.preprocess(bin_dir / "pretrain", spm_dir / "pretrain" / "{}.txt")
        dictionary = bin_dir / "pretrain" / "dict.txt"
        for task in cfg.tasks:
            binarize(cfg, task, text_dir, spm_dir, bin_dir, dictionary)
        return dict(counts, spm_model=str(spm_model),
                    unigram_entropy=stages.unigram_entropy(bin_dir / "pretrain"))
    return cell(out, "prepare", compute)


def binarize(cfg: AblationConfig, task: str, text_dir: Path, spm_dir: Path, bin_dir: Path,
             dictionary: Path) -> None:
    """One task's data where its fairseq task reads it, with the pre-training dictionary."""
    family = TASKS[task].family
    if family == "generation":
        stages.preprocess(bin_dir / task, spm_dir / task / "{}", SPLITS, dictionary,
                          pairs=("src", "tgt"))
    elif family == "classification":
        if task == "question-match":
            trim_pairs(cfg, spm_dir / task)
        columns = ["input0", "input1"] if task == "question-match" else ["input0"]
        for column in columns:
            stages.preprocess(bin_dir / task / column, spm_dir / task / f"{{}}.{column}",
                              SPLITS, dictionary)
        stages.preprocess(bin_dir / task / "label", text_dir / task / "{}.label", SPLITS,
                          workers=1)
    else:  # span: --task squad tokenizes the JSON itself, with --spm-model
        (bin_dir / task).mkdir(parents=True, exist_ok=True)
        for split in SPLITS:
            shutil.copyfile(text_dir / task / f"{split}.json", bin_dir / task / f"{split}.json")
        shutil.copyfile(dictionary, bin_dir / task / "dict.txt")


# ----------------------------------------------------------------------------- stages
# BERT's 80/10/10 rule off: every masked position shows <mask> (--mask-only).
MASK_ONLY_ARGS = ["--leave-unmasked-prob", "0", "--random-token-prob", "0"]


def pretrain_cell(cfg: AblationConfig, out: Path, objective: str, seed: int) -> Dict:
    """One pre-training: its final valid losses, loss curves, input tokens read, wall time."""
    name = f"pretrain/{objective}/seed{seed}"
    save_dir = out / "checkpoints" / "pretrain" / objective.replace("+", "_") / f"seed{seed}"
    log = out / "logs" / f"{name.replace('/', '__')}.log"

    def compute():
        log.parent.mkdir(parents=True, exist_ok=True)
        stages.pretrain(SimpleNamespace(**vars(cfg), seed=seed), out / "data-bin" / "pretrain",
                        save_dir, log, extra_args=["--objective", objective,
                                                   *(MASK_ONLY_ARGS if cfg.mask_only else [])])
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


def finetune_cell(cfg: AblationConfig, out: Path, task: str, row: str, seed: int,
                  pretrained: Optional[str], spm_model: Path) -> Dict:
    """Fine-tune one row's checkpoint (or random weights) on one task and score it on test."""
    tag = f"{row.replace('+', '_')}_seed{seed}"
    paths = SimpleNamespace(data=out / "data-bin" / task,
                            save_dir=out / "checkpoints" / task / tag,
                            log=out / "logs" / f"{task}__{tag}.log",
                            results=out / "predictions" / task / tag, text=out / "text" / task)
    restore = [] if pretrained is None else [
        "--restore-file", pretrained, "--reset-optimizer", "--reset-dataloader", "--reset-meters"]
    family = TASKS[task].family
    runner = {"generation": generation_scores, "classification": classification_scores,
              "span": span_scores}[family]
    return cell(out, f"{task}/{row}/seed{seed}",
                lambda: runner(cfg, task, seed, paths, restore, pretrained, spm_model))


def finetune_args(cfg: AblationConfig, seed: int, updates: int) -> SimpleNamespace:
    """stages.finetune's settings for one fine-tuning run."""
    return SimpleNamespace(**dict(vars(cfg), seed=seed, finetune_updates=updates))


def generation_scores(cfg, task, seed, paths, restore, pretrained, spm_model) -> Dict:
    """``--task unilm_seq2seq`` fine-tuning, beam search on test, scored."""
    qcfg = finetune_args(cfg, seed, updates_of(cfg, task))
    checkpoint = stages.finetune(qcfg, paths.data, pretrained and Path(pretrained),
                                 paths.save_dir, paths.log)
    hyp = stages.generate(qcfg, paths.data, checkpoint, spm_model, fresh_dir(paths.results),
                          paths.results.with_suffix(".hyp"))
    return dict(generation_metrics(task, hyp, paths.text / "test.tgt",
                                   paths.results.with_suffix(".scores.json")),
                hypotheses=str(hyp))


def generation_metrics(task: str, hypotheses: Path, references: Path, scores: Path) -> Dict:
    """backwards-word: exact match (``scripts/score.py``). qg: BLEU-4 and ROUGE-L from
    ``scripts/score.py --qg`` (Du et al.'s qgevalcap: COCO BLEU, ROUGE-L with beta 1.2) on Du et
    al.'s reference tokenization (the nqg files), with ``test.src`` beside ``references`` as the
    key file that pools the questions of one sentence; METEOR is left out (its Java scorer is
    the slow part)."""
    if task == "qg":
        result = stages.score(hypotheses, references, scores, extra_args=[
            "--qg", "--qg-references", "du", "--no-meteor", "--src",
            references.with_suffix(".src")])
        return {"bleu4": result["bleu4"], "rougeL": result["rougeL"]}
    return {"exact": stages.score(hypotheses, references, scores)["exact"]}


def classification_scores(cfg, task, seed, paths, restore, pretrained, spm_model) -> Dict:
    """fairseq's sentence_prediction; test accuracy of the checkpoint best on valid."""
    schedule = stages.schedule_args(updates_of(cfg, task), cfg.finetune_lr,
                                    cfg.finetune_warmup, cfg.validations)
    positions = 512  # the model's (--max-positions sets it): a pre-trained one has 512
    # As RoBERTa's GLUE recipe: <s> first (its features classify) and, for a pair, </s> between
    # the two texts, so that the model can tell where one ends.
    inputs = ["--num-classes", "2", "--init-token", "0", "--separator-token", "2",
              "--max-positions", positions, "--shorten-method", "truncate"]
    run([cli("fairseq-train"), paths.data, *stages.model_args(cfg), *restore,
         "--task", "sentence_prediction", "--criterion", "sentence_prediction", *inputs,
         "--batch-size", cfg.finetune_batch_size,
         *schedule, "--best-checkpoint-metric", "accuracy",
         "--maximize-best-checkpoint-metric", "--save-dir", fresh_dir(paths.save_dir),
         "--seed", seed], log=paths.log)
    output = run([cli("fairseq-validate"), paths.data, "--user-dir", stages.USER_DIR,
                  "--task", "sentence_prediction", *inputs,
                  "--path", paths.save_dir / "checkpoint_best.pt",
                  "--valid-subset", "test", "--batch-size", "64"])
    match = re.search(r"valid on 'test' subset.*\| accuracy ([\d.]+)", output)
    if not match:
        raise SystemExit(f"ablation: no test accuracy in fairseq-validate's output ({task})")
    return {"accuracy": float(match.group(1))}


def span_scores(cfg, task, seed, paths, restore, pretrained, spm_model) -> Dict:
    """``--task squad`` fine-tuning; ``scripts/squad.py predict`` of the checkpoint best on
    valid, scored on test by the SQuAD v1.1 script's rules (exact match, F1)."""
    window = ["--max-seq-length", cfg.max_seq_length, "--doc-stride", cfg.max_seq_length // 2,
              "--max-query-length", cfg.max_target_positions]
    run([cli("fairseq-train"), paths.data, *stages.model_args(cfg), *restore,
         "--task", "squad", "--criterion", "squad_span", "--spm-model", spm_model, *window,
         "--batch-size", cfg.finetune_batch_size,
         *stages.schedule_args(updates_of(cfg, task), cfg.finetune_lr, cfg.finetune_warmup,
                               cfg.validations),
         "--save-dir", fresh_dir(paths.save_dir), "--seed", seed], log=paths.log)
    run([sys.executable, REPO / "scripts" / "squad.py", "predict",
         "--path", paths.save_dir / "checkpoint_best.pt", "--data", paths.data / "test.json",
         "--out", fresh_dir(paths.results), "--dict-dir", paths.data, "--batch-size", "64"],
        log=paths.results.with_suffix(".log"), show=False)
    scores = json.loads((paths.results / "scores.json").read_text())
    return {"exact_match": scores["exact_match"], "f1": scores["f1"]}


def baselines(cfg: AblationConfig, out: Path) -> Dict[str, Dict]:
    """Each task's trivial system: generation, the most frequent training answer for every test
    example; classification, the majority class of the training labels; span, a fixed place of
    the passage (``SPAN_BASELINES``)."""
    def compute():
        return {task: trivial_scores(task, out) for task in cfg.tasks}
    return cell(out, "baseline", compute)


def trivial_scores(task: str, out: Path) -> Dict:
    from fairseq_unilmv2.scoring.squad import squad_v1_scores

    text = out / "text" / task
    family = TASKS[task].family
    if family == "generation":
        hyp = out / "predictions" / task / "baseline.hyp"
        hyp.parent.mkdir(parents=True, exist_ok=True)
        answer = stages.baseline(text / "train.tgt", text / "test.src", hyp)
        return dict(generation_metrics(task, hyp, text / "test.tgt",
                                       hyp.with_suffix(".scores.json")), answer=answer)
    if family == "classification":
        labels = read_lines(text / "train.label")
        majority = max(sorted(set(labels)), key=labels.count)
        test = read_lines(text / "test.label")
        return {"accuracy": 100.0 * test.count(majority) / len(test), "answer": majority}
    articles = json.loads((text / "test.json").read_text(encoding="utf-8"))["data"]
    first, answer = SPAN_BASELINES[task]
    predictions = {qa["id"]: first(p["context"]) for a in articles for p in a["paragraphs"]
                   for qa in p["qas"]}
    return dict(squad_v1_scores(articles, predictions), answer=answer)


def first_word(context: str) -> str:
    return context.split()[0]


def first_candidate(context: str) -> str:
    """The first word that could be an answer (four letters or more, punctuation off)."""
    return next((m.group(2) for m in map(downstream.ANSWER.match, context.split()) if m),
                context.split()[0])


# Each span task's trivial system: a fixed place of the passage, and how the table names it.
SPAN_BASELINES = {
    "fill-blank": (first_word, "the first word (the passage's order is random)"),
    "misspelled-word": (first_candidate, "the first word of four letters or more"),
    "squad": (downstream.first_sentence, "the first sentence"),
}


# ----------------------------------------------------------------------------- report
PRETRAIN_COLUMNS = [("valid_loss", "pre-training valid loss (bits)"),
                    ("input_mtokens", "tokens read (M)"), ("train_min", "pre-training (min)")]


def mean_std(values: Sequence[float]) -> Dict:
    values = [v for v in values if v is not None]
    if not values:
        return {}
    return {"mean": statistics.mean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0, "n": len(values),
            "values": values}


def metric_keys(task: str) -> List[str]:
    return [TASKS[task].metric, *TASKS[task].more]


def summarize(rows: Dict[str, Dict[int, Dict]], baseline: Dict, tasks: Sequence[str]) -> Dict:
    table = {}
    for row, seeds in rows.items():
        pre = [cells["pretrain"] for cells in seeds.values() if "pretrain" in cells]
        table[row] = {
            "valid_loss": {n: mean_std([p["final_valid"][n] for p in pre])
                           for n in (pre[0]["final_valid"] if pre else {})},
            "input_mtokens": mean_std([p["input_tokens"] / 1e6 for p in pre if p["input_tokens"]]),
            "train_min": mean_std([p["wall_s"] / 60 for p in pre]),
        }
        for task in tasks:
            table[row][task] = {key: mean_std([cells[task].get(key) for cells in seeds.values()
                                               if task in cells]) for key in metric_keys(task)}
    table[BASELINE] = {task: {key: {"mean": baseline[task][key], "std": 0.0, "n": 1}
                              for key in metric_keys(task)} for task in tasks}
    return table


def clearly_above(a: Dict, b: Dict) -> bool:
    """a's mean exceeds b's by more than twice the larger of their standard deviations."""
    return bool(a) and bool(b) and a["mean"] - b["mean"] > 2 * max(a["std"], b["std"])


def comparisons(table: Dict, tasks: Sequence[str]) -> Dict[str, Dict]:
    """Per task, on its deciding column: the rows from best to worst, the pairs whose difference
    exceeds twice the larger standard deviation, and the rows that learned the task (clearly
    above the from-scratch row, and above the trivial baseline)."""
    result = {}
    for task in tasks:
        metric = TASKS[task].metric
        stats = {row: table[row][task][metric] for row in table if table[row][task][metric]}
        order = sorted(stats, key=lambda row: -stats[row]["mean"])
        models = [row for row in order if row != BASELINE]
        clear = [[a, b] for i, a in enumerate(order) for b in order[i + 1:]
                 if clearly_above(stats[a], stats[b])]
        learned = [row for row in models if row != SCRATCH
                   and (SCRATCH not in stats or clearly_above(stats[row], stats[SCRATCH]))
                   and stats[row]["mean"] > stats[BASELINE]["mean"]]
        result[task] = {"metric": metric, "order": order, "clearly_above": clear,
                        "learned": learned}
    return result


def fmt(stat: Dict, digits: int = 2) -> str:
    if not stat:
        return "-"
    if "mean" not in stat:  # per-loss dict
        return ", ".join(f"{name.replace('_loss', '')} {fmt(s)}" for name, s in stat.items())
    return (f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}" if stat["n"] > 1
            else f"{stat['mean']:.{digits}f}")


def markdown(table: Dict, compared: Dict, tasks: Sequence[str], seeds: Sequence[int]) -> str:
    titles = [title for _, title in PRETRAIN_COLUMNS] + [TASKS[t].title for t in tasks]
    lines = [f"Mean ± standard deviation over seeds {', '.join(map(str, seeds))} "
             "(one value: one run).", "", "| objective | " + " | ".join(titles) + " |",
             "|" + "---|" * (len(titles) + 1)]
    for row, stats in table.items():
        values = [fmt(stats.get(key, {})) for key, _ in PRETRAIN_COLUMNS]
        values += [fmt(stats[t][TASKS[t].metric]) for t in tasks]
        lines.append(f"| {row} | " + " | ".join(values) + " |")
    lines.append("")
    for task in tasks:
        c = compared[task]
        stats = {row: table[row][task][c["metric"]] for row in c["order"]}
        order = " > ".join(f"{row} {stats[row]['mean']:.2f}" for row in c["order"])
        clear = ", ".join(f"{a} > {b}" for a, b in c["clearly_above"]) or "none"
        lines += [f"- **{TASKS[task].title}** ({TASKS[task].family}): {order}. "
                  f"Differences beyond 2 sd: {clear}. "
                  f"Learned (beyond 2 sd of scratch, above the baseline): "
                  f"{', '.join(c['learned']) or 'no row'}."]
    return "\n".join(lines) + "\n"


def cell_minutes(out: Path, tasks: Sequence[str]) -> Dict[str, Dict]:
    """Median wall time of each kind of cell, over the cells in ``out``: pre-training with and
    without a pseudo part, and each task's fine-tuning and scoring."""
    kinds: Dict[str, List[float]] = {}
    for path in (out / "cells").glob("*.json"):
        stage, *rest = path.stem.split("__")
        if not rest:
            continue
        kind = (("pretrain ae" if rest[0] == "ae" else "pretrain with pseudo masks")
                if stage == "pretrain" else f"{stage} fine-tuning and scoring")
        if stage == "pretrain" or stage in tasks:
            kinds.setdefault(kind, []).append(json.loads(path.read_text())["wall_s"] / 60)
    return {kind: {"median": round(statistics.median(v), 2), "cells": len(v)}
            for kind, v in sorted(kinds.items())}


def plot(rows: Dict[str, Dict[int, Dict]], table: Dict, tasks: Sequence[str], entropy: float,
         out: Path) -> None:
    import logging
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts = [part for part in ("ae_loss", "par_loss", "ar_loss")
             if any(f"valid_{part}" in cells.get("pretrain", {}).get("curves", {})
                    for seeds in rows.values() for cells in seeds.values())]
    fig, axes = plt.subplots(1, max(1, len(parts)), figsize=(5 * max(1, len(parts)), 4),
                             sharey=True, squeeze=False)
    colors = {row: f"C{i}" for i, row in enumerate(rows)}
    for ax, part in zip(axes[0], parts):
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

    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 4), squeeze=False)
    names = list(table)
    for ax, task in zip(axes[0], tasks):
        stats = [table[n][task][TASKS[task].metric] for n in names]
        ax.bar(range(len(names)), [s.get("mean", 0.0) for s in stats],
               yerr=[s.get("std", 0.0) for s in stats], capsize=3,
               color=[colors.get(n, "gray") for n in names])
        ax.set_xticks(range(len(names)), names, rotation=30, fontsize=8)
        ax.set(title=TASKS[task].title)
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
        for row in [*cfg.objectives, *scratch]:
            pre = pretrain_cell(cfg, out, row, seed) if row != SCRATCH else None
            checkpoint = pre and pre["checkpoint"]
            rows[row][seed] = dict({"pretrain": pre} if pre else {}, **{
                task: finetune_cell(cfg, out, task, row, seed, checkpoint, spm_model)
                for task in cfg.tasks})
    if os.environ.get(WORKER_ENV):
        return {}
    baseline = baselines(cfg, out)
    table = summarize(rows, baseline, cfg.tasks)
    compared = comparisons(table, cfg.tasks)
    md = markdown(table, compared, cfg.tasks, cfg.seeds)
    results = {"config": vars(cfg), "data": {k: v for k, v in prepared.items()
                                             if k != "spm_model"},
               "table": table, "comparisons": compared, "cells": rows, "baseline": baseline,
               "cell_minutes": cell_minutes(out, cfg.tasks),
               "minutes": round((time.time() - start) / 60, 2)}
    (out / "results.json").write_text(json.dumps(results, indent=1))
    (out / "results.md").write_text(md)
    plot(rows, table, cfg.tasks, prepared["unigram_entropy"], out)
    times = ", ".join(f"{kind} {t['median']:.1f}" for kind, t in results["cell_minutes"].items())
    print(f"\n== ablation table (unigram entropy of the valid text: "
          f"{prepared['unigram_entropy']:.2f} bits)\n\n{md}", flush=True)
    print(f"results: {out / 'results.json'}  {out / 'results.md'}\n"
          f"plots:   {out / 'pretraining_curves.png'}  {out / 'finetuning_scores.png'}\n"
          f"minutes a cell (median): {times}\n"
          f"this run: {results['minutes']} min (finished cells kept from earlier runs count "
          "as 0)", flush=True)
    return results


if __name__ == "__main__":
    main()
