#!/usr/bin/env python
"""Score a hypothesis file against a reference file, one example a line.

    python scripts/score.py --hyp hyps.txt --ref refs.txt [--json]
    python scripts/score.py --cnndm --hyp hyps.txt --ref test.target [--trunc-len 60]

Prints ROUGE-1/2/L F1 (rouge-score, stemming on), BLEU-4 (sacrebleu) and exact match (lines
equal to their reference) as percentages; with ``--json``, one JSON object with the keys
rouge1, rouge2, rougeL, bleu, exact. The figures come from
``fairseq_unilmv2.scoring.rouge``, the module behind ``fairseq-generate --scoring rouge``.

``--cnndm`` scores as s2s-ft's ``evaluations/eval_for_cnndm.py``
(``fairseq_unilmv2.scoring.cnndm``): hypotheses split into sentences at [X_SEP], Penn Treebank
re-tokenization, near-duplicate sentences dropped, 60 tokens kept; references split at
<S_SEP>; ROUGE-1/2 and sentence-level ROUGE-L F1 (keys rouge1, rouge2, rougeL; no BLEU).
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fairseq_unilmv2.scoring.cnndm import cnndm_scores  # noqa: E402
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
    parser.add_argument("--cnndm", action="store_true",
                        help="s2s-ft's CNN/DailyMail evaluation: post-processed hypotheses, "
                             "sentence-level ROUGE-L")
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
    hyps, refs = read_lines(args.hyp), read_lines(args.ref)
    if len(hyps) != len(refs):
        parser.error(f"--hyp has {len(hyps)} lines but --ref has {len(refs)}: "
                     "they must be aligned, one example a line")
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


if __name__ == "__main__":
    main()
