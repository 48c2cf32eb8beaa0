#!/usr/bin/env python
"""Export a fairseq unilm_v2 checkpoint to a Hugging Face BERT directory.

    python scripts/export_checkpoint.py --checkpoint DIR/model.pt --out hf_dir \\
        [--dict DIR/dict.txt] [--vocab DIR/vocab.txt]

writes hf_dir/{config.json, model.safetensors, vocab.txt, tokenizer_config.json};
transformers.BertForMaskedLM.from_pretrained(hf_dir) loads it (a relative position bias is kept
as bert.rel_pos_bias.weight, which BERT ignores and scripts/convert_checkpoint.py reads back).
"""
import argparse
import sys

import fairseq_unilmv2  # noqa: F401  (registers the model and tasks)
from fairseq_unilmv2.convert import export_checkpoint
from fairseq_unilmv2.convert.errors import run_cli


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="fairseq checkpoint (model.pt)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--dict", default=None,
                        help="the model's dict.txt (default: beside the checkpoint)")
    parser.add_argument("--vocab", default=None,
                        help="WordPiece vocab.txt fixing the row order of the export (e.g. the "
                        "released one); default: [PAD] first, then fairseq id order")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_cli("export_checkpoint.py", lambda: export_checkpoint(
        args.checkpoint, args.out, dict_path=args.dict, vocab=args.vocab))


if __name__ == "__main__":
    sys.exit(main())
