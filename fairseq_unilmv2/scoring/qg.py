"""Question generation scored as the papers score it: Du et al.'s ``qgevalcap`` (xinyadu/nqg),
called the way UniLM's ``unilm-v1/src/qg/eval.py`` and ``eval_on_unilm_tokenized_ref.py`` call
it, with the scorers of the maintained ``pycocoevalcap`` package (the same COCO caption code,
ported to Python 3).

- BLEU-1..4: the COCO BLEU scorer, corpus level, "closest" reference length;
- METEOR 1.5: the Java jar ``pycocoevalcap`` ships (``-l en -norm``), run through ``java``;
- ROUGE-L: the COCO scorer, LCS F-measure with beta 1.2, averaged over examples.

Grouping (both UniLM scripts): each line of the key file (the model's input: Du et al.'s
sentence, or UniLM's ``passage [SEP] answer``), stripped and lower-cased, names one example;
identical key lines pool their questions as that example's references, and the example's
hypothesis is the last one read for the key (``res[key] = [pred]``).

Two reference tokenizations (``REFERENCE_TOKENIZATIONS``):

- ``unilm`` (``eval_on_unilm_tokenized_ref.py``, taken as the paper's): references are
  UniLM's WordPiece-tokenized questions, ``##`` pieces joined, lower-cased; hypotheses
  ``##``-joined and lower-cased. UniLM's README reports its headline figures this way; the
  UniLMv2 paper does not name its tokenization, and its code descends from UniLM's;
- ``du`` (``eval.py``): references are Du et al.'s PTB-tokenized questions, read as they are;
  hypotheses ``##``-joined, re-tokenized by UniLM's ``fix_tokenization`` (PTB brackets as
  ``-lrb-``, ``n't``, ``3,000``, ...), lower-cased. UniLM's figures read ~0.6 BLEU-4 lower
  this way (22.17 against 22.78, its README).
"""
import logging
import shutil
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

from .cnndm import fix_tokenization

logger = logging.getLogger(__name__)

REFERENCE_TOKENIZATIONS = ("unilm", "du")
SCORE_KEYS = ("bleu1", "bleu2", "bleu3", "bleu4", "meteor", "rougeL")
# UniLM's QG ``_tok_dict``: lower-case PTB brackets (Du et al.'s text is lower-cased), BERT's
# unknown token, and the HTML escapes of Du et al.'s files.
QG_TOKEN_MAP = {"(": "-lrb-", ")": "-rrb-", "[": "-lsb-", "]": "-rsb-", "{": "-lcb-",
                "}": "-rcb-", "[UNK]": "UNK", "&": "&amp;", "<": "&lt;", ">": "&gt;"}


def join_wordpieces(text: str) -> str:
    """``play ##ing`` -> ``playing`` (UniLM's ``detokenize``)."""
    words: List[str] = []
    for token in text.split():
        if token.startswith("##") and words:
            words[-1] += token[2:]
        else:
            words.append(token)
    return " ".join(words)


def prepare_hypothesis(line: str, reference_tokenization: str = "unilm") -> str:
    text = join_wordpieces(line.strip())
    if reference_tokenization == "du":
        text = fix_tokenization(text, QG_TOKEN_MAP)  # before lower(): "U . N ." needs case
    return text.lower()


def prepare_reference(line: str, reference_tokenization: str = "unilm") -> str:
    if reference_tokenization == "unilm":
        return join_wordpieces(line.strip()).lower()
    return line.strip()


def group_by_key(hypotheses: Sequence[str], references: Sequence[str], keys: Sequence[str],
                 reference_tokenization: str = "unilm"
                 ) -> Tuple[Dict[str, List[str]], Dict[str, List[str]]]:
    """(references by key, [hypothesis] by key) as the UniLM scripts build ``gts`` / ``res``."""
    if reference_tokenization not in REFERENCE_TOKENIZATIONS:
        raise ValueError(f"unknown reference tokenization {reference_tokenization!r}: "
                         f"choose one of {', '.join(REFERENCE_TOKENIZATIONS)}")
    if not len(hypotheses) == len(references) == len(keys):
        raise ValueError(f"{len(hypotheses)} hypotheses, {len(references)} references and "
                         f"{len(keys)} key lines: the three files must be aligned, one "
                         "question a line")
    gts: Dict[str, List[str]] = OrderedDict()
    res: Dict[str, List[str]] = {}
    for hyp, ref, key in zip(hypotheses, references, keys):
        key = key.strip().lower()
        res[key] = [prepare_hypothesis(hyp, reference_tokenization)]
        gts.setdefault(key, []).append(prepare_reference(ref, reference_tokenization))
    return gts, res


def meteor_score(gts: Dict[str, List[str]], res: Dict[str, List[str]]
                 ) -> Tuple[Optional[float], str]:
    """(METEOR 1.5, '') or (None, why it could not run): it needs ``java`` on the PATH."""
    if shutil.which("java") is None:
        return None, ("java is not on the PATH: METEOR 1.5 is a Java program (install a Java "
                      "runtime, e.g. apt-get install default-jre-headless)")
    from pycocoevalcap.meteor.meteor import Meteor

    scorer = None
    try:
        scorer = Meteor()
        score, _ = scorer.compute_score(gts, res)
    except (OSError, ValueError) as err:  # the jar did not start, or answered nothing
        if scorer is not None:  # its __del__ would wait for the lock compute_score holds
            scorer.meteor_p.kill()
            if scorer.lock.locked():
                scorer.lock.release()
        return None, f"the METEOR jar failed: {type(err).__name__}: {err}"
    del scorer  # stops the Java process
    return score, ""


def evaluate_qg(hypotheses: Sequence[str], references: Sequence[str], keys: Sequence[str],
                reference_tokenization: str = "unilm", meteor: bool = True
                ) -> Tuple[Dict[str, Optional[float]], str]:
    """(scores, why METEOR is missing or ''): BLEU-1..4, METEOR and ROUGE-L in percent (keys
    :data:`SCORE_KEYS`) of aligned hypothesis, reference and key lines; ``meteor`` is None
    when METEOR could not run or was not asked for."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.rouge.rouge import Rouge

    gts, res = group_by_key(hypotheses, references, keys, reference_tokenization)
    if not gts:
        raise ValueError("no questions to score: the files are empty")
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    rouge_l, _ = Rouge().compute_score(gts, res)
    scores: Dict[str, Optional[float]] = {f"bleu{n + 1}": 100 * float(b)
                                          for n, b in enumerate(bleu)}
    scores["meteor"], why = None, "not asked for"
    if meteor:
        value, why = meteor_score(gts, res)
        if value is not None:
            scores["meteor"] = 100 * value
    scores["rougeL"] = 100 * float(rouge_l)  # a NumPy scalar
    return scores, why


def qg_scores(hypotheses: Sequence[str], references: Sequence[str], keys: Sequence[str],
              reference_tokenization: str = "unilm", meteor: bool = True
              ) -> Dict[str, Optional[float]]:
    """:func:`evaluate_qg`'s scores alone; a missing METEOR is logged with its reason."""
    scores, why = evaluate_qg(hypotheses, references, keys, reference_tokenization, meteor)
    if meteor and scores["meteor"] is None:
        logger.warning(f"METEOR unavailable: {why}")
    return scores
