#!/usr/bin/env python
"""UniLMv2 from raw text to a model that has learned something, every stage a plain command.

    python scripts/quickstart.py                       # built-in corpus (figures: docs/results.md)
    python scripts/quickstart.py --compare-scratch     # also fine-tune from random weights
    python scripts/quickstart.py --quick               # same stages, tiny sizes (1-3 minutes)
    python scripts/quickstart.py --text a.txt b.txt --out my_run

Stages (each prints its command, then shows the command's own output live):

 1. text       paragraphs of the CPython documentation shipped with Python (``pydoc_data``), or
               of ``--text`` files (paragraphs separated by blank lines, one file = one document);
               every paragraph is assigned to train / valid / test, test paragraphs are never
               seen in pre-training;
 2. spm        train a small sentencepiece model (a few hundred pieces: characters and frequent
               words) on the pre-training text, encode every file;
 3. binarize   ``fairseq-preprocess`` the pre-training text (its dict.txt is THE vocabulary),
               then the seq2seq pairs with ``--srcdict/--tgtdict`` = that dict.txt, so one
               embedding serves pre-training and fine-tuning;
 4. pretrain   ``fairseq-train --task pmlm --criterion pmlm`` (AE + PAR losses), compared with
               the unigram entropy of the validation text under the training counts: what a
               model that ignores the context can reach;
 5. finetune   a task built from the same text whose answers anyone can check: a word of a
               passage is written backwards between brackets, the target is the word
               (``"the [eulav] of the"`` -> ``"value"``), ``fairseq-train --task
               unilm_seq2seq --restore-file``; with ``--compare-scratch`` the same fine-tuning
               again from random weights;
 6. generate   ``fairseq-generate`` the test set with beam search, detokenized by sentencepiece;
 7. score      ``scripts/score.py`` (exact match, ROUGE, BLEU) of the hypotheses and of a trivial
               baseline (the most frequent training answer for every example), saved as JSON,
               with five test examples printed;
 8. plot       train and valid loss curves parsed from fairseq's ``--log-format json`` lines,
               the unigram entropy drawn as a line, saved as a PNG plus the series as JSON.
"""
import argparse
import json
import logging
import random
import re
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from fairseq_unilmv2.experiments.downstream import backwards_word_pairs
from fairseq_unilmv2.experiments.stages import (
    baseline, encode_sentencepiece, finetune, fresh_dir, generate, loss_series, preprocess,
    pretrain, read_lines, score, train_sentencepiece, unigram_entropy, write_lines)


@dataclass
class QuickstartConfig:
    text: List[str] = field(default_factory=list, metadata={
        "help": "plain-text files to use instead of the built-in CPython documentation "
                "(paragraphs separated by blank lines; each file is one document)"})
    out: str = field(default="demo_out", metadata={
        "help": "output folder; the stages' previous results in it are replaced"})
    quick: bool = field(default=False, metadata={
        "help": "reduced sizes (tiny model, few updates, few test inputs): the same stages in "
                "about a minute; explicit size flags still win"})
    compare_scratch: bool = field(default=False, metadata={
        "help": "also fine-tune the same model from random weights (same data, schedule and "
                "seed) and print both results side by side: what pre-training buys"})
    vocab_size: int = field(default=128, metadata={
        "help": "sentencepiece vocabulary size (a small one: characters and the most frequent "
                "words, which a small model learns to predict from context within minutes)"})
    encoder_layers: int = field(default=2, metadata={"help": "Transformer layers"})
    encoder_embed_dim: int = field(default=64, metadata={"help": "hidden size"})
    encoder_ffn_embed_dim: int = field(default=256, metadata={"help": "feed-forward size"})
    encoder_attention_heads: int = field(default=4, metadata={"help": "attention heads"})
    tokens_per_sample: int = field(default=16, metadata={
        "help": "pre-training block length in sentencepiece tokens (short blocks: a small model "
                "learns to use the neighbours of a masked token sooner)"})
    pretrain_updates: int = field(default=2000, metadata={"help": "pre-training updates"})
    pretrain_batch_size: int = field(default=128, metadata={
        "help": "pre-training blocks a batch"})
    pretrain_lr: float = field(default=2e-3, metadata={
        "help": "pre-training peak learning rate"})
    pretrain_warmup: float = field(default=0.03, metadata={
        "help": "fraction of the pre-training updates spent warming the learning rate up"})
    finetune_updates: int = field(default=1200, metadata={"help": "fine-tuning updates"})
    finetune_batch_size: int = field(default=64, metadata={"help": "fine-tuning pairs a batch"})
    finetune_lr: float = field(default=1e-3, metadata={"help": "fine-tuning peak learning rate"})
    finetune_warmup: float = field(default=0.06, metadata={
        "help": "fraction of the fine-tuning updates spent warming the learning rate up"})
    context_words: int = field(default=2, metadata={
        "help": "words of context on each side of the backwards word of an example"})
    example_every: int = field(default=3, metadata={
        "help": "one example (one backwards word) per this many words of a paragraph"})
    max_source_positions: int = field(default=48, metadata={
        "help": "source budget of fine-tuning in tokens (longer sources are truncated)"})
    max_target_positions: int = field(default=16, metadata={
        "help": "target budget of fine-tuning and maximum generated length"})
    beam: int = field(default=5, metadata={"help": "beam size of fairseq-generate"})
    lenpen: float = field(default=1.0, metadata={"help": "length penalty of fairseq-generate"})
    validations: int = field(default=8, metadata={
        "help": "validations (each followed by a checkpoint save) per training run"})
    max_test_examples: int = field(default=200, metadata={
        "help": "decode at most this many test pairs, and validate on at most this many valid "
                "pairs (0 = all)"})
    seed: int = field(default=1, metadata={"help": "seed of the splits and of fairseq"})


# What --quick changes: every value the test needs to finish in well under a minute or two.
QUICK = dict(encoder_ffn_embed_dim=128, pretrain_batch_size=32, pretrain_updates=30,
             finetune_batch_size=16, finetune_updates=30, validations=3, max_test_examples=13)
# Examples printed at the end, from the test set.
SHOWN_EXAMPLES = 5

HEADING_UNDERLINE = set("*=-~^#")


# ----------------------------------------------------------------------------- command line
def parse_args(argv: Optional[Sequence[str]] = None) -> QuickstartConfig:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for f in fields(QuickstartConfig):
        flag = "--" + f.name.replace("_", "-")
        default = f.default_factory() if f.name == "text" else f.default
        help_text = f.metadata["help"] + (f" (--quick: {QUICK[f.name]})" if f.name in QUICK else "")
        if f.type is bool:
            parser.add_argument(flag, action="store_true", help=help_text)
        elif f.name == "text":
            parser.add_argument(flag, nargs="+", metavar="FILE", default=default,
                                help=f"{help_text} [default: the CPython documentation]")
        else:
            # default None: lets --quick fill in only what the user did not set.
            parser.add_argument(flag, type=type(default), default=None,
                                help=f"{help_text} [default: {default}]")
    args = vars(parser.parse_args(argv))
    for name, value in args.items():
        if value is None:
            args[name] = QUICK[name] if args["quick"] and name in QUICK \
                else QuickstartConfig.__dataclass_fields__[name].default
    for name, value in args.items():
        # Sizes must be positive (fairseq reads --max-update 0 as "no limit"); 0 is allowed
        # only where it means "all" or is a seed.
        lowest = 0 if name in ("max_test_examples", "seed") else 1e-12
        if type(value) in (int, float) and value < lowest:
            parser.error(f"--{name.replace('_', '-')} must be {'>= 0' if lowest == 0 else '> 0'}")
    missing = [path for path in args["text"] if not Path(path).is_file()]
    if missing:
        parser.error(f"--text: no such file: {', '.join(missing)}")
    return QuickstartConfig(**args)


# ----------------------------------------------------------------------------- stage 1: text
def builtin_documents() -> List[str]:
    """The CPython documentation topics that ship with every Python (``help('if')``)."""
    from pydoc_data.topics import topics
    return [topics[name] for name in sorted(topics)]


def prose_paragraphs(document: str) -> List[str]:
    """The prose paragraphs of a document, each on one line.

    Drops headings (a line underlined with ``***``), code and grammar blocks (mostly symbols)
    and fragments too short to be a sentence.
    """
    paragraphs = []
    for block in re.split(r"\n\s*\n", document):
        lines = [line.strip() for line in block.strip("\n").split("\n")]
        if len(lines) >= 2 and lines[1] and set(lines[1]) <= HEADING_UNDERLINE:
            continue
        text = " ".join(line for line in lines if line)
        if len(text.split()) < 6 or text.startswith((">>>", "...")):
            continue
        wordlike = sum(c.isalpha() or c.isspace() for c in text) / len(text)
        if wordlike >= 0.85:
            paragraphs.append(text)
    return paragraphs


def build_text(cfg: QuickstartConfig, text_dir: Path) -> Dict[str, int]:
    """Write the pre-training text and the backwards-word pairs, split by paragraph.

    Paragraph i (counted over all documents, repeated paragraphs dropped) goes to test when
    i % 10 == 0, to valid when i % 10 == 1, to train otherwise, so test paragraphs are never seen
    in pre-training. The pairs of each split are shuffled with the seed.
    """
    if cfg.text:
        documents = [Path(p).read_text(encoding="utf-8", errors="replace") for p in cfg.text]
    else:
        documents = builtin_documents()
    rng = random.Random(cfg.seed)
    pretrain = {"train": [], "valid": []}
    pairs = {"train": [], "valid": [], "test": []}
    index, seen = 0, set()
    for document in documents:
        # The CPython topics repeat some paragraphs: keep the first copy only, so that no test
        # paragraph is also a pre-training or fine-tuning paragraph.
        paragraphs = [p for p in prose_paragraphs(document) if not (p in seen or seen.add(p))]
        splits = [("test", "valid", "train")[min((index + i) % 10, 2)]
                  for i in range(len(paragraphs))]
        index += len(paragraphs)
        for split in ("train", "valid"):
            doc = [p for p, s in zip(paragraphs, splits) if s == split]
            if doc:  # fairseq's convention: one line a sentence, a blank line between documents
                pretrain[split].extend(doc + [""])
        for paragraph, split in zip(paragraphs, splits):
            pairs[split].extend(backwards_word_pairs(paragraph, rng, cfg.context_words,
                                                     cfg.example_every))
    for split in pairs:
        rng.shuffle(pairs[split])
    if cfg.max_test_examples:
        pairs["test"] = pairs["test"][:cfg.max_test_examples]
        pairs["valid"] = pairs["valid"][:cfg.max_test_examples]
    too_small = [s for s in ("train", "valid", "test") if not pairs[s]] + \
        [f"pretrain-{s}" for s in pretrain if not pretrain[s]]
    if too_small:
        raise SystemExit(f"quickstart: the text gives no {', '.join(too_small)} examples: give "
                         f"more text (paragraphs of several sentences separated by blank lines)")
    for split, lines in pretrain.items():
        write_lines(text_dir / "pretrain" / f"{split}.txt", lines)
    for split, split_pairs in pairs.items():
        write_lines(text_dir / "seq2seq" / f"{split}.src", [src for src, _ in split_pairs])
        write_lines(text_dir / "seq2seq" / f"{split}.tgt", [tgt for _, tgt in split_pairs])
    counts = {f"pretrain_{s}_paragraphs": sum(1 for line in v if line) for s, v in pretrain.items()}
    counts.update({f"seq2seq_{s}_pairs": len(v) for s, v in pairs.items()})
    print("text: " + ", ".join(f"{k}={v}" for k, v in counts.items()), flush=True)
    return counts


# ----------------------------------------------------------------------------- stage 2: spm
def sentencepiece(cfg: QuickstartConfig, text_dir: Path, spm_dir: Path) -> Path:
    model = train_sentencepiece(text_dir / "pretrain" / "train.txt", spm_dir / "spm",
                                cfg.vocab_size)
    files = [(text_dir / "pretrain" / f"{split}.txt", spm_dir / "pretrain" / f"{split}.txt")
             for split in ("train", "valid")]
    files += [(text_dir / "seq2seq" / f"{split}.{lang}", spm_dir / "seq2seq" / f"{split}.{lang}")
              for split in ("train", "valid", "test") for lang in ("src", "tgt")]
    encode_sentencepiece(model, files)
    return model


# ----------------------------------------------------------------------------- stage 3: binarize
def binarize(spm_dir: Path, bin_dir: Path) -> Tuple[Path, Path]:
    """The pre-training text, then the pairs with its dict.txt: one vocabulary for both."""
    pretrain_bin = preprocess(bin_dir / "pretrain", spm_dir / "pretrain" / "{}.txt")
    seq2seq_bin = preprocess(bin_dir / "seq2seq", spm_dir / "seq2seq" / "{}",
                             ("train", "valid", "test"), dictionary=pretrain_bin / "dict.txt",
                             pairs=("src", "tgt"))
    return pretrain_bin, seq2seq_bin


# ----------------------------------------------------------------------------- stage 8: plot
def plot(logs: Dict[str, Path], entropy: float, png: Path, sidecar: Path) -> Dict:
    """Loss curves of every training run in ``logs`` (pretrain, finetune, maybe scratch), with
    the unigram entropy and the level 1 bit below it drawn on the pre-training panel."""
    logging.getLogger("matplotlib").setLevel(logging.WARNING)  # fairseq's logging set DEBUG
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = {stage: loss_series(log, ["ae_loss", "par_loss"] if stage == "pretrain" else ["loss"])
              for stage, log in logs.items()}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for stage, series in curves.items():
        ax = axes[0 if stage == "pretrain" else 1]
        for name, points in sorted(series.items()):
            xs, ys = zip(*points)
            ax.plot(xs, ys, marker="o" if name.startswith("valid") else None, markersize=3,
                    linestyle="--" if stage == "scratch" else "-",
                    label=name if stage == "pretrain" else f"{stage} {name}")
    axes[0].axhline(entropy, color="gray", label=f"unigram entropy of valid text {entropy:.2f}")
    axes[0].axhline(entropy - 1, color="gray", linestyle=":", label="1 bit below it")
    axes[0].set(title="pre-training (PMLM)")
    axes[1].set(title="fine-tuning (read the backwards word)")
    for ax in axes:
        ax.set(xlabel="update", ylabel="loss in bits (as fairseq logs it)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
    sidecar.write_text(json.dumps(dict(curves, unigram_entropy=entropy), indent=1),
                       encoding="utf-8")
    return curves


# ----------------------------------------------------------------------------- reports
def pretraining_report(curves: Dict, entropy: float) -> Dict[str, float]:
    """Print the last validation AE and PAR losses beside the unigram entropy."""
    final = {name: curves["pretrain"][f"valid_{name}"][-1][1] for name in ("ae_loss", "par_loss")}
    gap = {name: entropy - value for name, value in final.items()}
    learned = min(gap.values()) >= 1.0
    print(f"""
pre-training, last validation, bits per predicted token:
  AE loss {final['ae_loss']:.2f}   PAR loss {final['par_loss']:.2f}   unigram entropy {entropy:.2f} \
(the valid text's tokens under the training counts: a model that ignores the context)
  AE is {gap['ae_loss']:.2f} and PAR {gap['par_loss']:.2f} bits below it: """
          + ("the model predicts masked tokens from their context" if learned else
             "less than 1 bit, the model has not learned much beyond token frequencies; "
             "more updates (--pretrain-updates) or a higher --pretrain-lr"), flush=True)
    return dict(final, unigram_entropy=entropy, bits_below_unigram=min(gap.values()))


def finetuning_report(scores: Dict[str, Dict], answer: str, text_dir: Path,
                      hypotheses: Dict[str, Path]) -> None:
    """Print exact match of every system side by side, then five test examples."""
    names = {"finetune": "fine-tuned from pre-training", "scratch": "fine-tuned from random "
             "weights", "baseline": f'baseline: always "{answer}"'}
    sources = read_lines(text_dir / "seq2seq" / "test.src")
    references = read_lines(text_dir / "seq2seq" / "test.tgt")
    n = len(references)
    print(f"\nread the backwards word, {n} test examples (from paragraphs never seen in "
          f"training):")
    print(f"  {'system':<36} {'exact match':>11} {'x baseline':>10}")
    base = scores["baseline"]["exact"]
    for system, result in scores.items():
        ratio = f"{result['exact'] / base:>9.1f}x" if base else f"{'-':>10}"
        print(f"  {names[system]:<36} {result['exact']:>10.1f}% {ratio}")
    outputs = {system: read_lines(path) for system, path in hypotheses.items()}
    print(f"\n{SHOWN_EXAMPLES} test examples:")
    for i in range(min(SHOWN_EXAMPLES, n)):
        print(f"  source     {sources[i]}\n  reference  {references[i]}")
        for system, lines in outputs.items():
            label = "hypothesis" if system == "finetune" else system
            print(f"  {label:<10} {lines[i]}")
        print()


# ----------------------------------------------------------------------------- main
def main(argv: Optional[Sequence[str]] = None) -> Dict:
    cfg = parse_args(argv)
    start = time.time()
    out = Path(cfg.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    text_dir, spm_dir = fresh_dir(out / "text"), fresh_dir(out / "spm")
    logs, results = fresh_dir(out / "logs"), fresh_dir(out / "results")
    print(f"== quickstart: all results go to {out}", flush=True)

    print("\n== 1/8 text: paragraphs, splits and backwards-word pairs", flush=True)
    counts = build_text(cfg, text_dir)
    print("\n== 2/8 sentencepiece: train and encode", flush=True)
    spm_model = sentencepiece(cfg, text_dir, spm_dir)
    print("\n== 3/8 fairseq-preprocess: binarize (one dictionary for both tasks)", flush=True)
    pretrain_bin, seq2seq_bin = binarize(spm_dir, fresh_dir(out / "data-bin"))
    print("\n== 4/8 fairseq-train --task pmlm: pre-training", flush=True)
    pretrained = pretrain(cfg, pretrain_bin, out / "checkpoints" / "pretrain",
                          logs / "pretrain.log")
    entropy = unigram_entropy(pretrain_bin)
    pretraining = pretraining_report({"pretrain": loss_series(
        logs / "pretrain.log", ["ae_loss", "par_loss"])}, entropy)
    runs = [("finetune", pretrained)] + ([("scratch", None)] if cfg.compare_scratch else [])
    hypotheses = {}
    for name, init in runs:
        print("\n== 5/8 fairseq-train --task unilm_seq2seq: fine-tuning "
              + ("from the pre-trained checkpoint" if init else "from random weights"), flush=True)
        checkpoint = finetune(cfg, seq2seq_bin, init, out / "checkpoints" / name,
                              logs / f"{name}.log")
        print(f"\n== 6/8 fairseq-generate: decode the test set ({name})", flush=True)
        hypotheses[name] = generate(cfg, seq2seq_bin, checkpoint, spm_model,
                                    out / "generate" / name,
                                    out / ("test.hyp" if name == "finetune" else f"{name}.hyp"))
    print("\n== 7/8 score: exact match (and ROUGE, BLEU) against the held-out answers",
          flush=True)
    answer = baseline(text_dir / "seq2seq" / "train.tgt", text_dir / "seq2seq" / "test.src",
                      out / "baseline.hyp")
    scores = {name: score(path, text_dir / "seq2seq" / "test.tgt", results / f"{name}.json")
              for name, path in dict(hypotheses, baseline=out / "baseline.hyp").items()}
    scores["baseline"]["answer"] = answer
    (out / "scores.json").write_text(json.dumps(scores, indent=1), encoding="utf-8")
    finetuning_report(scores, answer, text_dir, hypotheses)
    print("\n== 8/8 plot: loss curves from fairseq's json logs", flush=True)
    curves = plot({stage: logs / f"{stage}.log" for stage in ["pretrain", *hypotheses]}, entropy,
                  out / "loss_curves.png", out / "loss_curves.json")

    summary = {
        "minutes": round((time.time() - start) / 60, 2),
        "data": counts,
        "pretraining": pretraining,
        "final": {stage: {name: points[-1][1] for name, points in series.items()}
                  for stage, series in curves.items()},
        "scores": scores,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    print(f"""
== done in {summary['minutes']} minutes
sentencepiece model    {spm_model}
binarized data         {pretrain_bin}  {seq2seq_bin}
pre-trained checkpoint {pretrained}
fine-tuned checkpoint  {out / 'checkpoints' / 'finetune' / 'checkpoint_best.pt'}
hypotheses             {hypotheses['finetune']}  (fairseq output: {out / 'generate' / 'finetune' / 'generate-test.txt'})
references             {text_dir / 'seq2seq' / 'test.tgt'}
scores (JSON)          {out / 'scores.json'}
loss curves            {out / 'loss_curves.png'}  (series: {out / 'loss_curves.json'})
logs                   {logs}
summary                {out / 'summary.json'}""", flush=True)
    return summary


if __name__ == "__main__":
    main()
