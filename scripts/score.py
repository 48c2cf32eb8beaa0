#!/usr/bin/env python
"""Score a hypothesis file against a reference file, one example a line.

    python scripts/score.py --hyp hyps.txt --ref refs.txt [--json]
    python scripts/score.py --cnndm --hyp hyps.txt --ref test.target [--trunc-len 60]
    python scripts/score.py --qg --hyp hyps.txt --ref test.ref --src test.key [--json]

Prints ROUGE-1/2/L F1 (rouge-score, stemming on), BLEU-4 (sacrebleu) and exact match (lines
equal to their reference) as percentages; with ``--json``, one JSON object with the keys
rouge1, rouge2, rougeL, bleu, exact. The figures come from
``fairseq_unilmv2.scoring.rouge``, the module behind ``fairseq-generate --scoring rouge``.

``--cnndm`` scores as s2s-ft's ``evaluations/eval_for_cnndm.py``
(``fairseq_unilmv2.scoring.cnndm``): hypotheses split into sentences at [X_SEP], Penn Treebank
re-tokenization, near-duplicate sentences dropped, 60 tokens kept; references split at
<S_SEP>; ROUGE-1/2 and sentence-level ROUGE-L F1 (keys rouge1, rouge2, rougeL; no BLEU).

``--qg`` scores question generation as the papers do (``fairseq_unilmv2.scoring.qg``): Du et
al.'s qgevalcap (pycocoevalcap's COCO BLEU-1..4, METEOR 1.5 through java, ROUGE-L beta 1.2),
after UniLM's grouping: the lines of --src (the model's inputs) that are identical, once
stripped and lower-cased, are one example whose references are all their questions, and whose
hypothesis is the last one. Keys bleu1..bleu4, meteor, rougeL. The paper's figures (UniLMv2
24.43 / 26.34 / 51.97) are taken to assume UniLM's references (--qg-references unilm, the
default; UniLM reports its own headline figures so): its WordPiece-tokenized questions, ##
joined, lower-cased, as scripts/prepare_data.py squad writes them.
--qg-references du scores against Du et al.'s PTB-tokenized questions (nqg's tgt-*.txt), the
hypotheses re-tokenized by UniLM's fix_tokenization first (UniLM's own outputs read 0.6
BLEU-4 lower that way).
Without java, METEOR is reported unavailable (with the reason) and the rest still prints.
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fairseq_unilmv2.scoring.cnndm import cnndm_scores  # noqa: E402
from fairseq_unilmv2.scoring.qg import REFERENCE_TOKENIZATIONS, evaluate_qg  # noqa: E402
from fairseq_unilmv2.scoring.rouge import corpus_scores  # noqa: E402


def read_lines(path: str):
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hyp", required=True, help="hypotheses, one example a line")
    parser.add_argument("--ref", required=True, help="references, one example a line, aligned")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--no-stemmer", action="store_true",
                        help="score ROUGE without Porter stemming")
    benchmark = parser.add_mutually_exclusive_group()
    benchmark.add_argument("--cnndm", action="store_true",
                           help="s2s-ft's CNN/DailyMail evaluation: post-processed "
                                "hypotheses, sentence-level ROUGE-L")
    benchmark.add_argument("--qg", action="store_true",
                           help="question generation as Du et al.'s qgevalcap (BLEU-1..4, "
                                "METEOR, ROUGE-L) with UniLM's grouping by --src")
    parser.add_argument("--src", help="with --qg (required): the key file, one model input a "
                                      "line, aligned with --hyp (test.key of prepare_data.py: "
                                      "Du et al.'s sentences or UniLM's passage [SEP] answer)")
    parser.add_argument("--qg-references", choices=REFERENCE_TOKENIZATIONS, default="unilm",
                        help="with --qg: the tokenization of --ref. unilm (default, the "
                             "paper's figures): WordPiece questions, ## joined and lower-cased"
                             " here; du: Du et al.'s PTB-tokenized questions, hypotheses "
                             "re-tokenized by UniLM's fix_tokenization")
    parser.add_argument("--no-meteor", action="store_true",
                        help="with --qg: skip METEOR (the Java jar takes ~10 s to start)")
    parser.add_argument("--trunc-len", type=int, default=60,
                        help="with --cnndm: tokens kept of each hypothesis (s2s-ft's "
                             "--trunc_len; 0 keeps all)")
    parser.add_argument("--duplicate-rate", type=float, default=0.7,
                        help="with --cnndm: drop a hypothesis sentence when more than this "
                             "share of its words appeared before (s2s-ft's --duplicate_rate; "
                             "0 or 1 keeps all)")
    return parser


def parse_args(argv=None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.qg and not args.src:
        parser.error("--qg needs --src, the key file (the model's inputs, one a line)")
    if args.src and not args.qg:
        parser.error("--src is read only with --qg")
    hyps, refs = read_lines(args.hyp), read_lines(args.ref)
    if len(hyps) != len(refs):
        parser.error(f"--hyp has {len(hyps)} lines but --ref has {len(refs)}: "
                     "they must be aligned, one example a line")
    if args.qg:
        return score_qg(parser, args, hyps, refs)
    if args.cnndm:
        scores = cnndm_scores(hyps, refs, trunc_len=args.trunc_len,
                              duplicate_rate=args.duplicate_rate,
                              use_stemmer=not args.no_stemmer)
    else:
        scores = corpus_scores(hyps, refs, use_stemmer=not args.no_stemmer)
    if args.json:
        print(json.dumps({key: round(value, 4) for key, value in scores.items()}))
    elif args.cnndm:
        print(f"ROUGE-1 {scores['rouge1']:.2f}  ROUGE-2 {scores['rouge2']:.2f}  "
              f"ROUGE-L {scores['rougeL']:.2f} (sentence level)  ({len(hyps)} lines, "
              "s2s-ft CNN/DailyMail post-processing)")
    else:
        print(f"ROUGE-1 {scores['rouge1']:.2f}  ROUGE-2 {scores['rouge2']:.2f}  "
              f"ROUGE-L {scores['rougeL']:.2f}  BLEU-4 {scores['bleu']:.2f}  "
              f"exact {scores['exact']:.2f}  ({len(hyps)} lines)")


def score_qg(parser, args, hyps, refs):
    keys = read_lines(args.src)
    if len(keys) != len(hyps):
        parser.error(f"--src has {len(keys)} lines but --hyp has {len(hyps)}: "
                     "they must be aligned, one question a line")
    scores, why = evaluate_qg(hyps, refs, keys, args.qg_references, meteor=not args.no_meteor)
    if scores["meteor"] is None and not args.no_meteor:
        print(f"METEOR unavailable: {why}", file=sys.stderr)
    if args.json:
        print(json.dumps({key: None if value is None else round(value, 4)
                          for key, value in scores.items()}))
        return
    meteor = "n/a" if scores["meteor"] is None else f"{scores['meteor']:.2f}"
    examples = len({key.strip().lower() for key in keys})
    print(f"BLEU-1 {scores['bleu1']:.2f}  BLEU-2 {scores['bleu2']:.2f}  "
          f"BLEU-3 {scores['bleu3']:.2f}  BLEU-4 {scores['bleu4']:.2f}  METEOR {meteor}  "
          f"ROUGE-L {scores['rougeL']:.2f}  ({len(hyps)} questions, {examples} examples, "
          f"{args.qg_references} references)")


if __name__ == "__main__":
    main()
