"""Question examples -> model windows (BERT's SQuAD fine-tuning layout, with character offsets).

One window is ``[CLS] question [SEP] context piece ... [SEP]`` (fairseq's ``<s> ... </s> ...
</s>``): token type 0 for ``[CLS]``, the question and its ``[SEP]``, 1 for the context and the
final ``[SEP]``, position ids 0..n-1 as in pre-training (the relative position bias reads them).
The question keeps its first ``max_query_length`` pieces. A context too long for one window is
cut into windows of at most ``max_seq_length`` tokens whose starts are ``doc_stride`` pieces
apart (BERT's ``run_squad.py``); each context piece is scored, at prediction, only in the window
where it has the most context on both sides (BERT's ``_check_is_max_context``).

Training labels: the window's positions of the first and last piece of the answer, or the null
position 0 (``[CLS]``) when the question has no answer or the window does not hold the whole
answer, for v1.1 and v2.0 alike, as BERT does (:class:`WindowCounts` reports how many).
"""
import logging
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import numpy as np

from .span_tokenizer import SpanTokenizer, piece_ids
from .squad_examples import SquadExample

logger = logging.getLogger(__name__)
NULL_POSITION = 0


@dataclass
class SquadWindow:
    """One model input. ``offsets`` (T, 2) holds each context token's character span in the
    example's context, (-1, -1) for the question and specials; ``max_context`` marks the
    context tokens this window scores at prediction."""

    example_index: int
    tokens: np.ndarray
    segments: np.ndarray
    offsets: np.ndarray
    max_context: np.ndarray
    start: int = NULL_POSITION  # training labels (window positions); -1: no usable label
    end: int = NULL_POSITION


@dataclass
class WindowCounts:
    windows: int = 0
    with_answer: int = 0
    answer_outside: int = 0   # answerable question, answer not wholly inside this window
    no_answer: int = 0        # unanswerable question (v2.0)
    unlabelled: int = 0       # answerable, but no trustworthy gold position
    truncated_questions: int = 0
    answer_not_on_pieces: List[str] = field(default_factory=list)

    def log(self, name: str) -> None:
        logger.info(f"{name}: {self.windows} windows: {self.with_answer} with the answer, "
                    f"{self.answer_outside} labelled null because the answer is not wholly "
                    f"inside them, {self.no_answer} of unanswerable questions"
                    + (f", {self.unlabelled} of answerable questions without a usable gold "
                       "position" if self.unlabelled else "")
                    + (f"; {self.truncated_questions} questions cut to --max-query-length"
                       if self.truncated_questions else ""))


def answer_token_span(offsets: List[Tuple[int, int]], start: int,
                      end: int) -> Optional[Tuple[int, int]]:
    """First and last piece (indices into ``offsets``) covering characters [start, end):
    pieces that cover no character never begin or end a span."""
    first = last = None
    for i, (s, e) in enumerate(offsets):
        if e <= s:
            continue
        if first is None and e > start:
            first = i
        if s < end:
            last = i
    if first is None or last is None or last < first:
        return None
    return first, last


def window_starts(n_pieces: int, room: int, stride: int) -> List[Tuple[int, int]]:
    """(start, length) of each window over ``n_pieces`` context pieces (BERT's doc spans)."""
    spans, start = [], 0
    while True:
        length = min(n_pieces - start, room)
        spans.append((start, length))
        if start + length >= n_pieces:
            return spans
        start += min(length, stride)


def is_max_context(spans: List[Tuple[int, int]], current: int, position: int) -> bool:
    """Whether window ``current`` gives piece ``position`` the most context (min of left and
    right context, plus a small bonus for longer windows), as BERT decides."""
    best, best_score = None, None
    for index, (start, length) in enumerate(spans):
        end = start + length - 1
        if position < start or position > end:
            continue
        score = min(position - start, end - position) + 0.01 * length
        if best_score is None or score > best_score:
            best, best_score = index, score
    return best == current


class SquadWindower:
    """Tokenizes examples once and lays out their windows."""

    def __init__(self, tokenizer: SpanTokenizer, dictionary, max_seq_length: int = 384,
                 doc_stride: int = 128, max_query_length: int = 64):
        if max_seq_length - max_query_length - 3 < 1:
            raise ValueError(f"--max-seq-length {max_seq_length} leaves no room for context "
                             f"after a question of --max-query-length {max_query_length} and "
                             "three special tokens: raise the first or lower the second")
        if doc_stride < 1:
            raise ValueError(f"--doc-stride {doc_stride} must be at least 1")
        self.tokenizer = tokenizer
        self.dictionary = dictionary
        self.max_seq_length = max_seq_length
        self.doc_stride = doc_stride
        self.max_query_length = max_query_length
        self._context_cache = {}

    def _context(self, context: str):
        """Context pieces, ids and offsets; consecutive questions share their paragraph."""
        if context not in self._context_cache:
            if len(self._context_cache) > 64:
                self._context_cache.clear()
            pieces, offsets = self.tokenizer.tokenize(context)
            self._context_cache[context] = (np.array(piece_ids(pieces, self.dictionary),
                                                     dtype=np.int64),
                                            np.array(offsets, dtype=np.int64).reshape(-1, 2))
        return self._context_cache[context]

    def windows(self, example: SquadExample, example_index: int,
                counts: Optional[WindowCounts] = None) -> List[SquadWindow]:
        counts = counts if counts is not None else WindowCounts()
        q_pieces, _ = self.tokenizer.tokenize(example.question)
        if len(q_pieces) > self.max_query_length:
            counts.truncated_questions += 1
            q_pieces = q_pieces[:self.max_query_length]
        question = piece_ids(q_pieces, self.dictionary)
        context_ids, context_offsets = self._context(example.context)
        answer = None
        if example.train_span is not None:
            answer = answer_token_span([tuple(o) for o in context_offsets], *example.train_span)
            if answer is None:
                counts.answer_not_on_pieces.append(example.qid)
        room = self.max_seq_length - len(question) - 3
        spans = window_starts(len(context_ids), room, self.doc_stride)
        d = self.dictionary
        head = np.array([d.bos(), *question, d.eos()], dtype=np.int64)
        out = []
        for index, (start, length) in enumerate(spans):
            tokens = np.concatenate([head, context_ids[start:start + length], [d.eos()]])
            segments = np.concatenate([np.zeros(len(head), dtype=np.int64),
                                       np.ones(length + 1, dtype=np.int64)])
            offsets = np.full((len(tokens), 2), -1, dtype=np.int64)
            offsets[len(head):len(head) + length] = context_offsets[start:start + length]
            max_context = np.zeros(len(tokens), dtype=bool)
            for k in range(length):
                max_context[len(head) + k] = is_max_context(spans, index, start + k)
            window = SquadWindow(example_index, tokens, segments, offsets, max_context)
            self._label(window, example, answer, start, length, len(head), counts)
            out.append(window)
        return out

    @staticmethod
    def _label(window: SquadWindow, example: SquadExample, answer, start: int, length: int,
               shift: int, counts: WindowCounts) -> None:
        counts.windows += 1
        if example.is_impossible:
            counts.no_answer += 1
        elif answer is None:
            # No trustworthy position: labelled -1, left out of training (never as null).
            window.start = window.end = -1
            counts.unlabelled += 1
        elif start <= answer[0] and answer[1] < start + length:
            window.start, window.end = answer[0] - start + shift, answer[1] - start + shift
            counts.with_answer += 1
        else:
            counts.answer_outside += 1
