"""Start / end logits of every window -> one answer per question (BERT's ``write_predictions``).

For each question, over all its windows: the ``n_best_size`` best start and end positions of
each window, kept as a candidate span when both lie on context pieces, start <= end, the span is
at most ``max_answer_length`` pieces and the start piece is scored in this window (max context).
Candidates are ranked by start + end logit. The null score is the lowest ``[CLS]`` start + end
logit over the windows. The best non-null span is the best-scored one whose text is not empty
(a span can cover no character: sentencepiece's lone "\u2581" piece); "" only comes out as "no
answer". For v2.0 the answer is "" when ``null - best non-null`` exceeds
``null_score_diff_threshold``, and that difference is the question's null odds
(``null_odds.json``, the official script's ``--na-prob-file``). The answer text is the
context's own characters from the first piece's start to the last piece's end.
"""
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np

from .squad_examples import SquadExample
from .squad_features import NULL_POSITION, SquadWindow


@dataclass
class SpanCandidate:
    text: str
    char_start: int
    char_end: int
    score: float        # start logit + end logit
    start_logit: float
    end_logit: float


@dataclass
class QuestionPrediction:
    qid: str
    text: str                    # "" for no answer
    char_start: Optional[int]
    char_end: Optional[int]
    score: Optional[float]       # best non-null span's start + end logit
    null_score: float
    null_odds: Optional[float]   # null score - best non-null score (None without candidates)
    nbest: List[SpanCandidate]


def _top(logits: np.ndarray, n: int) -> np.ndarray:
    return np.argsort(-logits, kind="stable")[:n]


def window_candidates(window: SquadWindow, context: str, start_logits: np.ndarray,
                      end_logits: np.ndarray, n_best_size: int,
                      max_answer_length: int) -> List[SpanCandidate]:
    length = len(window.tokens)
    start_logits, end_logits = start_logits[:length], end_logits[:length]
    on_context = window.offsets[:, 0] >= 0
    out = []
    for s in _top(start_logits, n_best_size):
        if not (on_context[s] and window.max_context[s]):
            continue
        for e in _top(end_logits, n_best_size):
            if not on_context[e] or e < s or e - s + 1 > max_answer_length:
                continue
            char_start, char_end = int(window.offsets[s, 0]), int(window.offsets[e, 1])
            out.append(SpanCandidate(context[char_start:char_end], char_start, char_end,
                                     float(start_logits[s] + end_logits[e]),
                                     float(start_logits[s]), float(end_logits[e])))
    return out


def predict_question(example: SquadExample, windows: Sequence[SquadWindow],
                     logits: Sequence[np.ndarray], n_best_size: int = 20,
                     max_answer_length: int = 30, version_2: bool = False,
                     null_score_diff_threshold: float = 0.0) -> QuestionPrediction:
    """``logits[i]`` is the (T, 2) start / end logits of ``windows[i]``."""
    candidates: List[SpanCandidate] = []
    null_score = None
    for window, window_logits in zip(windows, logits):
        starts, ends = window_logits[:, 0], window_logits[:, 1]
        score = float(starts[NULL_POSITION] + ends[NULL_POSITION])
        null_score = score if null_score is None else min(null_score, score)
        candidates += window_candidates(window, example.context, starts, ends, n_best_size,
                                        max_answer_length)
    candidates.sort(key=lambda c: -c.score)
    # One entry per distinct text, as BERT's n-best list keeps.
    nbest, seen = [], set()
    for candidate in candidates:
        if candidate.text in seen:
            continue
        seen.add(candidate.text)
        nbest.append(candidate)
        if len(nbest) == n_best_size:
            break
    # The best span with a non-empty text (as BERT's ``best_non_null_entry`` and Hugging
    # Face's ``utils_qa.py``): a span of pieces that cover no character (sentencepiece's lone
    # "\u2581") is never the answer while a span with text exists.
    best = next((c for c in candidates if c.text.strip()), None)
    null_odds = None if best is None else null_score - best.score
    if best is None or (version_2 and null_odds > null_score_diff_threshold):
        return QuestionPrediction(example.qid, "", None, None,
                                  None if best is None else best.score, null_score,
                                  null_odds, nbest)
    return QuestionPrediction(example.qid, best.text, best.char_start, best.char_end,
                              best.score, null_score, null_odds, nbest)


def predict_all(examples: Sequence[SquadExample], windows: Sequence[SquadWindow],
                logits: Sequence[np.ndarray], **options) -> Dict[str, QuestionPrediction]:
    """Every question of ``examples`` gets a prediction; ``windows[i]`` / ``logits[i]`` may
    come in any order (grouped here by their example)."""
    by_example: Dict[int, list] = {}
    for window, window_logits in zip(windows, logits):
        by_example.setdefault(window.example_index, []).append((window, window_logits))
    out = {}
    for index, example in enumerate(examples):
        pairs = by_example.get(index, [])
        if not pairs:
            raise ValueError(f"question id {example.qid} has no window with logits: every "
                             "question must be predicted")
        out[example.qid] = predict_question(example, [w for w, _ in pairs],
                                            [x for _, x in pairs], **options)
    return out


def official_outputs(predictions: Dict[str, QuestionPrediction], version_2: bool):
    """(predictions.json dict id -> text, null_odds.json dict id -> float or None for v1.1).
    A question without any candidate span gets null odds of +inf-like 1e9 (surely no answer)."""
    texts = {qid: p.text for qid, p in predictions.items()}
    if not version_2:
        return texts, None
    odds = {qid: (p.null_odds if p.null_odds is not None else 1e9)
            for qid, p in predictions.items()}
    return texts, odds
