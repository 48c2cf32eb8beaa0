#!/usr/bin/env python
"""Raw text <-> WordPiece tokens with a released vocab.txt (the tokenizer of fairseq --bpe bert).

    python scripts/wordpiece.py encode --vocab DIR/vocab.txt < train.src > train.bpe.src
    python scripts/wordpiece.py decode --vocab DIR/vocab.txt < hyp.bpe > hyp.txt

encode lowercases (and strips accents) when the vocabulary is uncased, which is detected from
the vocabulary itself (an uncased one holds no upper-case piece; override with --cased /
--uncased), and writes space-separated pieces, continuation pieces prefixed with ##. decode
merges the ## pieces back into words. One line in, one line out. It is the same tokenizer as
fairseq's ``--bpe bert --bpe-vocab-file vocab.txt`` (with ``--bpe-cased`` for cased
vocabularies), so ``fairseq-generate`` / ``fairseq-interactive`` with those flags print
detokenized text directly.
"""
import argparse
import os
import sys

from fairseq_unilmv2.convert import ConversionError
from fairseq_unilmv2.convert.vocab import wordpiece_tokenizer


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["encode", "decode"])
    parser.add_argument("--vocab", required=True, help="WordPiece vocab.txt")
    case = parser.add_mutually_exclusive_group()
    case.add_argument("--cased", dest="cased", action="store_true", default=None,
                      help="keep case (default: detected from the vocabulary)")
    case.add_argument("--uncased", dest="cased", action="store_false",
                      help="lowercase and strip accents (default: detected from the vocabulary)")
    parser.add_argument("--input", default="-", help="input file (default: stdin)")
    parser.add_argument("--output", default="-",
                        help="output file, its folder created if missing (default: stdout)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        tokenizer = wordpiece_tokenizer(args.vocab, args.cased)
    except ConversionError as err:
        print(f"wordpiece.py: error: {err}", file=sys.stderr)
        return 2
    convert = tokenizer.encode if args.command == "encode" else tokenizer.decode
    source = sys.stdin if args.input == "-" else open(args.input, encoding="utf-8")
    if args.output != "-":
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    sink = sys.stdout if args.output == "-" else open(args.output, "w", encoding="utf-8")
    with source, sink:
        for line in source:
            sink.write(convert(line.rstrip("\n")) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
