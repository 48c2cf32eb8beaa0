"""SQuAD JSON (v1.1 and v2.0) -> checked question examples.

The file is the official layout: ``{"version": ..., "data": [{"title", "paragraphs": [{"context",
"qas": [{"id", "question", "answers": [{"text", "answer_start"}], "is_impossible"}]}]}]}``.
Malformed JSON and missing or mistyped fields are errors naming the file and the question id.
Prediction needs only ids, questions and contexts: answers without ``answer_start``, or no
answers at all, are fine there (the official scripts score answer texts only). Training needs
character positions: a gold ``answer_start`` that does not point at its ``text`` is counted and
reported, and the answer is realigned to the occurrence of its text nearest to the given start
(logged by id) or, where the context does not hold the text, not used for training.
"""
import json
import logging
from dataclasses import dataclass, field
from typing import List, NamedTuple, Optional, Tuple

from ..scoring.squad import SquadFormatError  # noqa: F401  (one error for SQuAD input)

logger = logging.getLogger(__name__)
SHOWN = 5  # ids a message lists before "..."




class Answer(NamedTuple):
    text: str
    start: Optional[int]  # character offset into the context, None when the file gives none


@dataclass
class SquadExample:
    qid: str
    question: str
    context: str
    answers: List[Answer]
    is_impossible: bool
    title: str = ""
    # The answer training uses: (char start, char end) of the first gold answer whose text is at
    # its answer_start (or realigned); None for no answer or when no position can be trusted.
    train_span: Optional[Tuple[int, int]] = None


@dataclass
class AlignmentReport:
    """What reading found about gold positions (logged; tests read it)."""

    mismatched: List[str] = field(default_factory=list)   # ids with an answer_start off its text
    realigned: List[str] = field(default_factory=list)    # ids whose training answer was moved
    unusable: List[str] = field(default_factory=list)     # ids whose answer text is not there
    without_start: List[str] = field(default_factory=list)  # answerable ids with no start given

    def log(self, path: str) -> None:
        def ids(items):
            return ", ".join(items[:SHOWN]) + (", ..." if len(items) > SHOWN else "")
        if self.mismatched:
            logger.warning(f"{path}: {len(self.mismatched)} questions have a gold answer whose "
                           f"answer_start does not point at its text (scoring uses texts only; "
                           f"training uses another gold answer of the question where one is "
                           f"right): {ids(self.mismatched)}")
        if self.realigned:
            logger.warning(f"{path}: {len(self.realigned)} questions have no gold answer at its "
                           f"answer_start; their training answer is the occurrence of the text "
                           f"nearest to the given start: {ids(self.realigned)}")
        if self.unusable:
            logger.warning(f"{path}: {len(self.unusable)} answerable questions have no gold "
                           f"answer whose text is in the context; they train as no-answer "
                           f"windows only if --version-2-with-negative, else they are left out "
                           f"of training: {ids(self.unusable)}")
        if self.without_start:
            logger.warning(f"{path}: {len(self.without_start)} answerable questions give no "
                           f"answer_start (fine for prediction, unusable for training): "
                           f"{ids(self.without_start)}")


def _field(obj, name: str, kind, path: str, where: str):
    if not isinstance(obj, dict) or name not in obj:
        raise SquadFormatError(f"{path}: {where} has no '{name}' field (SQuAD format: "
                               "data[].paragraphs[].qas[] with id, question, answers)")
    value = obj[name]
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise SquadFormatError(f"{path}: {where}: '{name}' is a {type(value).__name__}, "
                               f"expected {names}")
    return value


def load_squad_json(path: str) -> dict:
    """The parsed file, or an error naming it and what is wrong."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"SQuAD file {path} does not exist") from None
    except json.JSONDecodeError as err:
        raise SquadFormatError(f"{path} is not valid JSON: {err}") from None


def align_answer(context: str, answer: Answer) -> Tuple[Optional[Tuple[int, int]], bool]:
    """((start, end), moved) of an answer in the context: at its answer_start when the text is
    there, else at the occurrence of the text nearest to it; (None, False) when absent."""
    text = answer.text
    if not text:
        return None, False
    if answer.start is not None and context[answer.start:answer.start + len(text)] == text:
        return (answer.start, answer.start + len(text)), False
    found, best = context.find(text), None
    while found >= 0:
        if best is None or abs(found - (answer.start or 0)) < abs(best - (answer.start or 0)):
            best = found
        found = context.find(text, found + 1)
    if best is None:
        return None, False
    return (best, best + len(text)), True


def read_squad_examples(path: str, articles=None) -> Tuple[List[SquadExample], bool,
                                                           AlignmentReport]:
    """(examples in file order, whether the file is v2.0, alignment report).

    ``articles`` (the ``data`` list) may be given instead of reading ``path`` (which then only
    names the source in messages). v2.0 is a file whose questions carry ``is_impossible``.
    """
    if articles is None:
        top = load_squad_json(path)
        articles = _field(top, "data", list, path, "the top level")
    examples: List[SquadExample] = []
    report = AlignmentReport()
    version_2 = False
    seen = {}
    for a, article in enumerate(articles):
        paragraphs = _field(article, "paragraphs", list, path, f"article {a}")
        title = article.get("title", "") if isinstance(article, dict) else ""
        for p, paragraph in enumerate(paragraphs):
            where_p = f"article {a} ({title!r}), paragraph {p}"
            context = _field(paragraph, "context", str, path, where_p)
            for q, qa in enumerate(_field(paragraph, "qas", list, path, where_p)):
                qid = _field(qa, "id", str, path, f"{where_p}, question {q}")
                where = f"question id {qid}"
                if qid in seen:
                    raise SquadFormatError(f"{path}: {where} appears twice (also at "
                                           f"{seen[qid]}): ids must be unique")
                seen[qid] = where_p
                question = _field(qa, "question", str, path, where)
                impossible = bool(qa.get("is_impossible", False))
                version_2 = version_2 or "is_impossible" in qa
                answers = []
                for k, answer in enumerate(qa.get("answers", []) or []):
                    text = _field(answer, "text", str, path, f"{where}, answer {k}")
                    start = answer.get("answer_start")
                    if start is not None and (not isinstance(start, int) or start < 0):
                        raise SquadFormatError(f"{path}: {where}, answer {k}: answer_start "
                                               f"{start!r} is not a character offset")
                    answers.append(Answer(text, start))
                example = SquadExample(qid, question, context, answers, impossible, title)
                if not impossible and answers:
                    _choose_train_span(example, report)
                examples.append(example)
    return examples, version_2, report


def _choose_train_span(example: SquadExample, report: AlignmentReport) -> None:
    """The first gold answer whose position can be trusted (as BERT trains on the first)."""
    if all(a.start is None for a in example.answers):
        report.without_start.append(example.qid)
        return
    moved_span = None
    for answer in example.answers:
        span, moved = align_answer(example.context, answer)
        if answer.start is not None and (span is None or moved) \
                and example.qid not in report.mismatched:
            report.mismatched.append(example.qid)
        if span is not None and not moved and example.train_span is None:
            example.train_span = span
        if span is not None and moved_span is None:
            moved_span = span
    if example.train_span is not None:
        return
    if moved_span is not None:
        example.train_span = moved_span
        report.realigned.append(example.qid)
    else:
        report.unusable.append(example.qid)
