"""SQuAD EM / F1, computed exactly as the official evaluation scripts compute them.

The two scripts (``evaluate-v1.1.py``, ``evaluate-v2.0.py``, from the SQuAD site) differ in
more than the HasAns / NoAns split, and each difference is kept here:

- both normalize an answer the same way (:func:`normalize_answer`: lower case, ASCII
  punctuation removed, the words a / an / the removed, whitespace collapsed) and take the
  maximum over the gold answers;
- **v1.1** F1 is 0 whenever no token is shared, even when prediction and gold both normalize to
  nothing (then EM is 1 and F1 0); a question without prediction scores 0 and still counts in
  the total;
- **v2.0** drops the gold answers that normalize to nothing and uses ``""`` when none is left
  (the only right answer to an unanswerable question), and F1 is 1 when prediction and gold are
  both empty. HasAns / NoAns follow whether the ``answers`` list is empty, not
  ``is_impossible``. With null odds (``null_odds.json``: id -> the model's no-answer score), a
  question whose odds exceed ``na_prob_thresh`` (default 1.0, the script's) counts as answered
  with ``""``; ``best_exact`` / ``best_f1`` and their thresholds come from the script's
  ``find_all_best_thresh`` sweep over the sorted odds. The script fails (``KeyError``) on a
  question without prediction or without odds; here that is a :class:`SquadFormatError`
  naming the questions.

Results are percentages, as the scripts print them. ``articles`` is the ``"data"`` list of a
SQuAD JSON file (:func:`load_squad_json`); ``predictions`` maps question id -> answer text.
"""
import collections
import json
import logging
import numbers
import re
import string
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Union

logger = logging.getLogger(__name__)

PathLike = Union[str, Path]
Articles = Sequence[Mapping[str, Any]]

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)  # ASCII only, as the scripts: "“" stays
_SHOWN_IDS = 10  # question ids quoted in a message before "..."


class SquadFormatError(ValueError):
    """A SQuAD data, prediction or null-odds input that cannot be read or scored as given; the
    message names the file and the question. The one error of the SQuAD pipeline: the task's
    reader (``data.squad_examples``) raises it too."""


# ----------------------------------------------------------------------------- per answer
def normalize_answer(s: str) -> str:
    """Lower text and remove punctuation, articles and extra whitespace (both scripts)."""
    text = "".join(ch for ch in s.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, gold: str) -> int:
    return int(normalize_answer(prediction) == normalize_answer(gold))


def f1_v1(prediction: str, gold: str) -> float:
    """v1.1's ``f1_score``: 0 without a shared token, also when both sides are empty."""
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    return _token_f1(pred_tokens, gold_tokens)


def f1_v2(prediction: str, gold: str) -> float:
    """v2.0's ``compute_f1``: an empty side scores 1 when the other is empty too, else 0."""
    pred_tokens = normalize_answer(prediction).split() if prediction else []
    gold_tokens = normalize_answer(gold).split() if gold else []
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    return _token_f1(pred_tokens, gold_tokens)


def _token_f1(pred_tokens: List[str], gold_tokens: List[str]) -> float:
    shared = sum((collections.Counter(pred_tokens) & collections.Counter(gold_tokens)).values())
    if shared == 0:
        return 0.0
    precision = 1.0 * shared / len(pred_tokens)
    recall = 1.0 * shared / len(gold_tokens)
    return (2 * precision * recall) / (precision + recall)


# ----------------------------------------------------------------------------- data walk
def iter_questions(articles: Articles) -> Iterator[Mapping[str, Any]]:
    """Every ``qas`` entry in file order, checked for the fields scoring reads."""
    if not isinstance(articles, (list, tuple)):
        raise SquadFormatError(f"articles must be the 'data' list of a SQuAD file, got "
                               f"{type(articles).__name__}")
    for a, article in enumerate(articles):
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            raise SquadFormatError(f"article {a} has no 'paragraphs' list")
        for paragraph in paragraphs:
            qas = paragraph.get("qas") if isinstance(paragraph, dict) else None
            if not isinstance(qas, list):
                raise SquadFormatError(f"a paragraph of article {a} "
                                       f"({article.get('title', 'untitled')}) has no 'qas' list")
            for qa in qas:
                _check_question(qa, a)
                yield qa


def _check_question(qa: Any, article_index: int) -> None:
    if not isinstance(qa, dict) or not isinstance(qa.get("id"), str):
        raise SquadFormatError(f"a question of article {article_index} has no string 'id'")
    answers = qa.get("answers")
    if not isinstance(answers, list):
        raise SquadFormatError(f"question {qa['id']} has no 'answers' list (an unanswerable "
                               "question has an empty one)")
    for answer in answers:
        if not isinstance(answer, dict) or not isinstance(answer.get("text"), str):
            raise SquadFormatError(f"question {qa['id']} has an answer without a string 'text'")


def gold_texts(qa: Mapping[str, Any]) -> List[str]:
    return [answer["text"] for answer in qa["answers"]]


def is_version_2(articles: Articles) -> bool:
    """SQuAD v2.0 data: some question carries ``is_impossible`` (v2.0 files give it to all)."""
    return any("is_impossible" in qa for qa in iter_questions(articles))


def missing_predictions(articles: Articles, predictions: Mapping[str, str]) -> List[str]:
    """Ids of the questions without a prediction, in file order."""
    return [qa["id"] for qa in iter_questions(articles) if qa["id"] not in predictions]


def _prediction(predictions: Mapping[str, Any], qid: str) -> str:
    text = predictions[qid]
    if not isinstance(text, str):
        raise SquadFormatError(f"the prediction for question {qid} is {text!r}: predictions "
                               "map question ids to answer strings ('' for no answer)")
    return text


def _quoted(ids: Sequence[str]) -> str:
    more = f", ... ({len(ids) - _SHOWN_IDS} more)" if len(ids) > _SHOWN_IDS else ""
    return ", ".join(ids[:_SHOWN_IDS]) + more


# ----------------------------------------------------------------------------- v1.1
def squad_v1_scores(articles: Articles, predictions: Mapping[str, str]) -> Dict[str, float]:
    """``{"exact_match", "f1"}`` as ``evaluate-v1.1.py`` prints them.

    A question without prediction scores 0 and counts in the total, as in the script; such
    questions are logged (and listed by :func:`missing_predictions`).
    """
    total, exact_sum, f1_sum = 0, 0, 0.0
    missing = []
    for qa in iter_questions(articles):
        total += 1
        qid = qa["id"]
        if qid not in predictions:
            missing.append(qid)
            continue
        golds = gold_texts(qa)
        if not golds:  # the script's max() over no gold answer fails here
            raise SquadFormatError(
                f"question {qid} has no gold answer: SQuAD v1.1 scoring needs at least one; "
                "an unanswerable question is scored by the v2.0 rules (version_2=True)")
        prediction = _prediction(predictions, qid)
        exact_sum += max(exact_match(prediction, gold) for gold in golds)
        f1_sum += max(f1_v1(prediction, gold) for gold in golds)
    if total == 0:
        raise SquadFormatError("the SQuAD data holds no question to score")
    if missing:
        logger.warning(f"{len(missing)} of {total} questions have no prediction and score 0, "
                       f"as in the official script: {_quoted(missing)}")
    return {"exact_match": 100.0 * exact_sum / total, "f1": 100.0 * f1_sum / total}


# ----------------------------------------------------------------------------- v2.0
def squad_v2_scores(articles: Articles, predictions: Mapping[str, str],
                    null_odds: Optional[Mapping[str, float]] = None,
                    na_prob_thresh: float = 1.0) -> "collections.OrderedDict[str, Any]":
    """The dict ``evaluate-v2.0.py`` prints, with ``--na-prob-file`` when ``null_odds`` is given
    (then also ``best_exact``, ``best_exact_thresh``, ``best_f1``, ``best_f1_thresh``) and
    ``--na-prob-thresh na_prob_thresh``."""
    has_answer: Dict[str, bool] = {}
    exact_raw: Dict[str, float] = {}
    f1_raw: Dict[str, float] = {}
    missing = []
    for qa in iter_questions(articles):
        qid = qa["id"]
        has_answer[qid] = bool(qa["answers"])
        golds = [text for text in gold_texts(qa) if normalize_answer(text)] or [""]
        if qid not in predictions:
            missing.append(qid)
            continue
        prediction = _prediction(predictions, qid)
        exact_raw[qid] = max(exact_match(prediction, gold) for gold in golds)
        f1_raw[qid] = max(f1_v2(prediction, gold) for gold in golds)
    if missing:
        raise SquadFormatError(
            f"{len(missing)} questions have no prediction: {_quoted(missing)}; SQuAD v2.0 "
            "scoring needs one per question ('' for no answer), the official script fails")
    if not has_answer:
        raise SquadFormatError("the SQuAD data holds no question to score")
    odds = _checked_null_odds(null_odds, has_answer) if null_odds is not None else \
        {qid: 0.0 for qid in predictions}

    exact = _apply_no_answer_threshold(exact_raw, odds, has_answer, na_prob_thresh)
    f1 = _apply_no_answer_threshold(f1_raw, odds, has_answer, na_prob_thresh)
    scores = _summary(exact, f1, list(exact))
    for prefix, wanted in (("HasAns", True), ("NoAns", False)):
        qids = [qid for qid, answered in has_answer.items() if answered == wanted]
        if qids:
            for key, value in _summary(exact, f1, qids).items():
                scores[f"{prefix}_{key}"] = value
    if null_odds is not None:
        for name, raw in (("exact", exact_raw), ("f1", f1_raw)):
            best, threshold = _best_threshold(predictions, raw, odds, has_answer)
            scores[f"best_{name}"] = best
            scores[f"best_{name}_thresh"] = threshold
    return scores


def _checked_null_odds(null_odds: Mapping[str, Any],
                       has_answer: Mapping[str, bool]) -> Mapping[str, Any]:
    absent = [qid for qid in has_answer if qid not in null_odds]
    if absent:
        raise SquadFormatError(f"{len(absent)} questions have no null odds: {_quoted(absent)}; "
                               "null_odds needs one number per question")
    for qid, value in null_odds.items():
        if not isinstance(value, numbers.Real) or isinstance(value, bool):
            raise SquadFormatError(f"the null odds of question {qid} is {value!r}, not a number")
    return null_odds


def _apply_no_answer_threshold(scores: Mapping[str, float], odds: Mapping[str, float],
                               has_answer: Mapping[str, bool],
                               threshold: float) -> Dict[str, float]:
    """Odds above ``threshold`` mean "no answer": right exactly for unanswerable questions."""
    return {qid: float(not has_answer[qid]) if odds[qid] > threshold else score
            for qid, score in scores.items()}


def _summary(exact: Mapping[str, float], f1: Mapping[str, float],
             qids: List[str]) -> "collections.OrderedDict[str, Any]":
    total = len(qids)
    return collections.OrderedDict([
        ("exact", 100.0 * sum(exact[qid] for qid in qids) / total),
        ("f1", 100.0 * sum(f1[qid] for qid in qids) / total),
        ("total", total),
    ])


def _best_threshold(predictions: Mapping[str, str], raw: Mapping[str, float],
                    odds: Mapping[str, Any], has_answer: Mapping[str, bool]):
    """The script's ``find_best_thresh``: start from "no answer everywhere" (every
    unanswerable question right), then answer the questions in increasing odds (ties in the
    odds' own order, as a stable sort leaves them) and keep the first best running score."""
    current = sum(1 for answered in has_answer.values() if not answered)
    best, best_threshold = current, 0.0
    for qid in sorted(odds, key=lambda k: odds[k]):
        if qid not in raw:  # odds of a question the data does not hold
            continue
        if has_answer[qid]:
            current += raw[qid]
        elif predictions[qid]:
            current -= 1
        if current > best:
            best, best_threshold = current, odds[qid]
    return 100.0 * best / len(raw), best_threshold


# ----------------------------------------------------------------------------- dispatch
def squad_scores(articles: Articles, predictions: Mapping[str, str],
                 null_odds: Optional[Mapping[str, float]] = None,
                 version_2: Optional[bool] = None, na_prob_thresh: float = 1.0):
    """v2.0 scores when ``version_2`` (``None``: when some question has ``is_impossible``),
    else v1.1 scores."""
    if version_2 is None:
        version_2 = is_version_2(articles)
    if version_2:
        return squad_v2_scores(articles, predictions, null_odds, na_prob_thresh)
    if null_odds is not None:
        raise SquadFormatError("null odds are scored by the SQuAD v2.0 rules only: pass "
                               "version_2=True, or no null odds for v1.1 data")
    return squad_v1_scores(articles, predictions)


# ----------------------------------------------------------------------------- files
def _read_json(path: PathLike, what: str) -> Any:
    path = Path(path)
    if not path.is_file():
        raise SquadFormatError(f"{what} file {path} does not exist")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise SquadFormatError(f"{path} is not valid JSON ({what}): {err}") from None
    except UnicodeDecodeError as err:
        raise SquadFormatError(f"{path} is not UTF-8 text ({what}): {err}") from None


def load_squad_json(path: PathLike) -> List[Dict[str, Any]]:
    """The ``"data"`` list (articles) of a SQuAD v1.1 / v2.0 file, checked for what scoring
    reads; every error names the file and, where one is at fault, the question id.
    ``answer_start`` is not required: scoring uses only the answer texts."""
    document = _read_json(path, "SQuAD data")
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        raise SquadFormatError(f"{path} is not a SQuAD file: it needs a top-level 'data' list "
                               "of articles")
    articles = document["data"]
    seen = set()
    try:
        for qa in iter_questions(articles):
            if qa["id"] in seen:
                raise SquadFormatError(f"question id {qa['id']} appears twice")
            seen.add(qa["id"])
    except SquadFormatError as err:
        raise SquadFormatError(f"{path}: {err}") from None
    return articles


def load_predictions(path: PathLike) -> Dict[str, str]:
    """``predictions.json``: question id -> answer text ("" for no answer)."""
    predictions = _read_json(path, "predictions")
    if not isinstance(predictions, dict):
        raise SquadFormatError(f"{path} must hold one JSON object: question id -> answer text")
    for qid, text in predictions.items():
        if not isinstance(text, str):
            raise SquadFormatError(f"{path}: the prediction for question {qid} is {text!r}, "
                                   "not a string")
    return predictions


def load_null_odds(path: PathLike) -> Dict[str, float]:
    """``null_odds.json``: question id -> no-answer score (higher: more likely unanswerable)."""
    odds = _read_json(path, "null odds")
    if not isinstance(odds, dict):
        raise SquadFormatError(f"{path} must hold one JSON object: question id -> number")
    for qid, value in odds.items():
        if not isinstance(value, numbers.Real) or isinstance(value, bool):
            raise SquadFormatError(f"{path}: the null odds of question {qid} is {value!r}, "
                                   "not a number")
    return odds
