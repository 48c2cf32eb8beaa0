#!/usr/bin/env python
"""Convert released UniLMv2 / UniLMv1 / MiniLM / BERT weights into a fairseq checkpoint.

    python scripts/convert_checkpoint.py --checkpoint unilm2-base-uncased.bin \\
        --config unilm2-base-uncased-config.json --vocab unilm2-base-uncased-vocab.txt \\
        --out checkpoints/unilm2-base-uncased [--max-positions 1024]

writes OUT/model.pt (fairseq checkpoint), OUT/dict.txt (fairseq dictionary) and OUT/vocab.txt.
The library behind it is fairseq_unilmv2.convert.
"""
import argparse
import sys

import fairseq_unilmv2  # noqa: F401  (registers the model and tasks)
from fairseq_unilmv2.convert import convert_checkpoint
from fairseq_unilmv2.convert.errors import run_cli
from fairseq_unilmv2.convert.checkpoint import DEFAULT_TASK


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True,
                        help="state dict: .bin / .pt (PyTorch) or .safetensors")
    parser.add_argument("--config", required=True,
                        help="its config.json (BERT fields, plus rel_pos_bins, max_rel_pos, "
                        "source_type_id, target_type_id for UniLM releases)")
    parser.add_argument("--vocab", required=True, help="its WordPiece vocab.txt")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--max-positions", type=int, default=None,
                        help="rows of the position table in the output; above the checkpoint's "
                        "the rows are copied cyclically (row 512+k = row k), as s2s-ft does")
    parser.add_argument("--task", default=DEFAULT_TASK,
                        help="fairseq task stored in the checkpoint's cfg (used by "
                        "from_pretrained); default: %(default)s")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_cli("convert_checkpoint.py", lambda: convert_checkpoint(
        args.checkpoint, args.config, args.vocab, args.out, max_positions=args.max_positions,
        task=args.task))


if __name__ == "__main__":
    sys.exit(main())
