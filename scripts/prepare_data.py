#!/usr/bin/env python
"""The paper's generation benchmarks from their public releases -> aligned one-example-a-line
files for fairseq-preprocess (directly or through scripts/wordpiece.py) and score.py.

    # SQuAD question generation, Du et al.'s sentence-level setting (xinyadu/nqg)
    python scripts/prepare_data.py nqg --input nqg/data/processed --output qg
    # ... UniLM's passage [SEP] answer setting (the paper's), SQuAD v1.1 JSON + nqg's doclists
    python scripts/prepare_data.py squad --squad train-v1.1.json dev-v1.1.json \\
        --doclists nqg/data --vocab $PRE/vocab.txt \\
        --reference-vocab bert-large-cased/vocab.txt --output qg_pa
    # CNN/DailyMail: See et al.'s .story folders in the order of a URL list, or CSV / JSON lines
    python scripts/prepare_data.py cnndm --input cnn/stories dailymail/stories \\
        --url-list url_lists/all_test.txt --vocab $PRE/vocab.txt --output cnndm/test
    # XSum: the release's bbc-summary-data folder and its id split
    python scripts/prepare_data.py xsum --input bbc-summary-data \\
        --split-file XSum-TRAINING-DEV-TEST-SPLIT-90-5-5.json --output xsum
    # A Project Gutenberg book, one paragraph a line (--text of scripts/ablation.py)
    python scripts/prepare_data.py gutenberg --input botchan.txt --output botchan.paragraphs.txt

Files (fairseq_unilmv2/prepare/): .src / .tgt text pairs; for QG the key (--src of
score.py --qg) and reference files of each evaluated split (.key / .ref), in the reference
tokenization the scorer expects (nqg: Du et al.'s, --qg-references du; squad: UniLM's
WordPiece questions, the default); for CNN/DailyMail .ref (sentences joined by <S_SEP>, for
score.py --cnndm) and .id; for XSum .id (ids in the split file's order). With --vocab, the
WordPiece files too (bpe/), which fairseq-preprocess reads directly. Everything is written to
temporary files and renamed at the end: a bad input stops the command with its file and line,
and nothing is half-written.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fairseq_unilmv2.prepare.cnndm import S2S_FT_MAX_SOURCE_PIECES, prepare_cnndm  # noqa: E402
from fairseq_unilmv2.prepare.common import run_command  # noqa: E402
from fairseq_unilmv2.prepare.gutenberg import prepare_gutenberg  # noqa: E402
from fairseq_unilmv2.prepare.qg import prepare_nqg, prepare_squad  # noqa: E402
from fairseq_unilmv2.prepare.xsum import prepare_xsum  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    nqg = commands.add_parser("nqg", help="Du et al.'s sentence-level QG files (xinyadu/nqg)")
    nqg.add_argument("--input", required=True, type=Path,
                     help="nqg's data/processed folder ({src,tgt}-{train,dev,test}.txt)")
    nqg.add_argument("--output", required=True, type=Path,
                     help="folder for {train,valid,test}.{src,tgt} and {valid,test}.{key,ref}")

    squad = commands.add_parser("squad", help="UniLM's passage [SEP] answer QG files (the "
                                              "paper's setting) from SQuAD JSON")
    squad.add_argument("--squad", required=True, nargs="+", type=Path,
                       help="SQuAD JSON files (train-v1.1.json dev-v1.1.json; v2.0 files "
                            "work, their unanswerable questions skipped)")
    squad.add_argument("--doclists", required=True, type=Path,
                       help="folder with nqg's doclist-{train,dev,test}.txt (article titles)")
    squad.add_argument("--vocab", required=True, type=Path,
                       help="the model's WordPiece vocab.txt (bpe/ files, and references "
                            "without --reference-vocab)")
    squad.add_argument("--reference-vocab", type=Path,
                       help="WordPiece vocab.txt to tokenize the references (.ref) with, as "
                            "UniLM's test.q.tok.txt was: bert-large-cased's vocab.txt (cased, "
                            "accents kept), which the paper's figures are taken to assume "
                            "[default: --vocab]")
    squad.add_argument("--output", required=True, type=Path,
                       help="folder for {split}.{src,tgt,key,ref} and bpe/{split}.{src,tgt}")

    cnndm = commands.add_parser("cnndm", help="CNN/DailyMail from .story files or CSV / JSON "
                                              "lines (one split a run)")
    cnndm.add_argument("--input", required=True, nargs="+", type=Path,
                       help=".story folders or files, or .csv / .jsonl files with article "
                            "and highlights")
    cnndm.add_argument("--url-list", type=Path,
                       help="See et al.'s url_lists/all_{train,val,test}.txt: the split's "
                            "stories, in its order (default: every .story, by name)")
    cnndm.add_argument("--output", required=True,
                       help="prefix: writes PREFIX.src, .tgt, .ref, .id")
    cnndm.add_argument("--vocab", type=Path,
                       help="WordPiece vocab.txt: also write the WordPiece files, the article "
                            "truncated as s2s-ft does")
    cnndm.add_argument("--bpe-output",
                       help="prefix of the WordPiece files (default: bpe/ beside --output)")
    cnndm.add_argument("--max-source-pieces", type=int, default=S2S_FT_MAX_SOURCE_PIECES,
                       help="article WordPiece tokens kept (s2s-ft's max_source_seq_length "
                            "608 minus [CLS] and [SEP])")

    xsum = commands.add_parser("xsum", help="XSum from EdinburghNLP/XSum's release")
    xsum.add_argument("--input", required=True, type=Path,
                      help="folder of <id>.summary files (bbc-summary-data)")
    xsum.add_argument("--split-file", required=True, type=Path,
                      help="XSum-TRAINING-DEV-TEST-SPLIT-90-5-5.json")
    xsum.add_argument("--output", required=True, type=Path,
                      help="folder for {train,valid,test}.{src,tgt,id}")
    gutenberg = commands.add_parser("gutenberg", help="a Project Gutenberg book as one paragraph "
                                    "a line (licence dropped, wrapped lines joined)")
    gutenberg.add_argument("--input", required=True, type=Path, help="the book's plain text")
    gutenberg.add_argument("--output", required=True, type=Path, help="file to write")
    gutenberg.add_argument("--width", type=int, default=0,
                           help="the book's wrap width (0: the longest of the lines around "
                           "each line)")
    return parser


def parse_args(argv=None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def run(args: argparse.Namespace) -> None:
    if args.command == "nqg":
        prepare_nqg(args.input, args.output)
    elif args.command == "squad":
        prepare_squad(args.squad, args.doclists, args.vocab, args.output, args.reference_vocab)
    elif args.command == "cnndm":
        prepare_cnndm(args.input, args.output, args.url_list, args.vocab, args.bpe_output,
                      args.max_source_pieces)
    elif args.command == "gutenberg":
        prepare_gutenberg(args.input, args.output, args.width)
    else:
        prepare_xsum(args.input, args.split_file, args.output)


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_command(f"prepare_data.py {args.command}", lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
