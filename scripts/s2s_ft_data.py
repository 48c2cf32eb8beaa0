#!/usr/bin/env python
"""s2s-ft's JSON-lines datasets -> the aligned WordPiece files that fairseq-preprocess reads.

s2s-ft (the authors' fine-tuning code) publishes its fine-tuning data (XSum, CNN/DailyMail,
question generation) as one JSON object a line, ``{"src": ..., "tgt": ...}``, each side either
text or a list of WordPiece tokens. Text is tokenized here with the model's ``vocab.txt`` (the
tokenizer of ``scripts/wordpiece.py`` and ``--bpe bert``); token lists are written as they are,
sentence markers such as ``[X_SEP]`` included, so that the model learns to write them and
``score.py --cnndm`` can split its summaries into sentences there.

    python scripts/s2s_ft_data.py --vocab $PRE/vocab.txt --input cnndm/train.json \\
        --output-prefix cnndm/bpe/train            # cnndm/bpe/train.src, cnndm/bpe/train.tgt
    python scripts/s2s_ft_data.py --vocab $PRE/vocab.txt --input cnndm/test.json \\
        --output-prefix cnndm/bpe/test --source-only   # inputs to decode: .src only

One example a line in, one line a side out, in the same order. A bad line stops the
conversion with its number: nothing is skipped, so source and target stay aligned.
"""
import argparse
import json
import os
import sys
from collections import Counter

from fairseq_unilmv2.convert import ConversionError
from fairseq_unilmv2.convert.vocab import read_wordpiece_vocab, wordpiece_tokenizer


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", required=True, help="s2s-ft JSON-lines file")
    parser.add_argument("--vocab", required=True,
                        help="the model's WordPiece vocab.txt (tokenizes text sides)")
    parser.add_argument("--output-prefix", required=True,
                        help="writes PREFIX.SRC_SUFFIX and PREFIX.TGT_SUFFIX")
    parser.add_argument("--source-suffix", default="src", help="extension of the source file")
    parser.add_argument("--target-suffix", default="tgt", help="extension of the target file")
    parser.add_argument("--source-only", action="store_true",
                        help="write the sources only (inputs to decode need no \"tgt\")")
    case = parser.add_mutually_exclusive_group()
    case.add_argument("--cased", dest="cased", action="store_true", default=None,
                      help="keep case (default: detected from the vocabulary)")
    case.add_argument("--uncased", dest="cased", action="store_false",
                      help="lowercase and strip accents (default: detected from the vocabulary)")
    return parser.parse_args(argv)


class BadExample(ValueError):
    pass


class WordPieces:
    """The tokenizer's ``encode``, and ``known``: the tokens of its vocabulary."""

    def __init__(self, tokenizer):
        self.encode = tokenizer.encode
        self.known = set(tokenizer.bert_tokenizer.vocab)


def side_tokens(example: dict, key: str, pieces: WordPieces, unknown: Counter) -> str:
    """One side of an example as space-separated WordPiece tokens; the given tokens that
    ``pieces`` does not know are counted into ``unknown``."""
    value = example.get(key)
    if isinstance(value, str):
        tokens = pieces.encode(value).split()
    elif isinstance(value, list) and all(isinstance(t, str) for t in value):
        tokens = value
        unknown.update(t for t in tokens if t not in pieces.known)
        spaced = [t for t in tokens if not t or t != t.strip() or len(t.split()) != 1]
        if spaced:
            raise BadExample(f'"{key}" has a token with white space or none at all: '
                             f"{spaced[0]!r} (tokens are separated by spaces downstream)")
    elif value is None:
        raise BadExample(f'no "{key}" field' + (" (for inputs to decode, pass --source-only)"
                                                if key == "tgt" else ""))
    else:
        raise BadExample(f'"{key}" is neither text nor a list of tokens: {type(value).__name__}')
    if not tokens:
        raise BadExample(f'"{key}" is empty')
    return " ".join(tokens)


def convert(lines, pieces: WordPieces, keys, unknown: Counter):
    """Yield, for each JSON line, its sides (in ``keys`` order) as token lines."""
    for number, line in enumerate(lines, start=1):
        try:
            example = json.loads(line)
            if not isinstance(example, dict):
                raise BadExample("not a JSON object")
            yield [side_tokens(example, key, pieces, unknown) for key in keys]
        except (json.JSONDecodeError, BadExample) as err:
            raise BadExample(f"line {number}: {err}") from None


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        read_wordpiece_vocab(args.vocab)
        tokenizer = wordpiece_tokenizer(args.vocab, args.cased)
    except (ConversionError, OSError) as err:
        print(f"s2s_ft_data.py: error: {err}", file=sys.stderr)
        return 2
    keys = ["src"] if args.source_only else ["src", "tgt"]
    suffixes = {"src": args.source_suffix, "tgt": args.target_suffix}
    paths = [f"{args.output_prefix}.{suffixes[key]}" for key in keys]
    os.makedirs(os.path.dirname(os.path.abspath(paths[0])), exist_ok=True)
    count, unknown = 0, Counter()
    try:
        with open(args.input, encoding="utf-8") as source:
            sinks = [open(path, "w", encoding="utf-8") for path in paths]
            try:
                for sides in convert(source, WordPieces(tokenizer), keys, unknown):
                    for sink, side in zip(sinks, sides):
                        sink.write(side + "\n")
                    count += 1
            finally:
                for sink in sinks:
                    sink.close()
    except BadExample as err:
        for path in paths:  # half a conversion would misalign a later run's files
            os.remove(path)
        print(f"s2s_ft_data.py: error: {args.input}, {err}", file=sys.stderr)
        return 2
    print(f"{count} examples: {', '.join(paths)}")
    if unknown:
        common = ", ".join(f"{token!r} ({n})" for token, n in unknown.most_common(5))
        print(f"warning: {sum(unknown.values())} given tokens are not in {args.vocab} and will "
              f"be <unk> in fairseq-preprocess; most frequent: {common}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
