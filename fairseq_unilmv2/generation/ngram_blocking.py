"""n-gram blocking with exempt words, as s2s-ft's ``--forbid_duplicate_ngrams`` with
``--forbid_ignore_word`` (``s2s_ft/modeling_decoding.py``, ``decode_seq2seq.py``).

The rule, for a hypothesis ``y1 .. yt`` and n-gram size ``n``: a word ``w`` is blocked after it
when ``(y_{t-n+2} .. y_t, w)`` already occurs in the hypothesis, unless one of the last ``n - 1``
words is exempt or ``w`` itself is exempt. With no exempt words this is fairseq's
``--no-repeat-ngram-size``.

``--no-repeat-ngram-exempt WORDS`` names the exempt words (dictionary symbols separated by
``|``, as ``--forbid_ignore_word``). :class:`ExemptNGramRepeatBlock` applies the rule to
fairseq's own beam search (``-inf`` on blocked words); the s2s-ft search
(:mod:`.s2s_ft_beam_search`) applies it with s2s-ft's soft ``-10000`` penalty.
"""
import math
from typing import AbstractSet, FrozenSet, List, Optional, Sequence

import torch
from fairseq.data import Dictionary
from fairseq.ngram_repeat_block import NGramRepeatBlock

from ..convert.vocab import SPECIAL_TOKENS


def blocked_words(hypothesis: Sequence[int], ngram_size: int,
                  exempt: AbstractSet[int] = frozenset()) -> List[int]:
    """Words that would repeat an n-gram of ``hypothesis`` if they came next, sorted."""
    if ngram_size < 1 or len(hypothesis) < ngram_size:
        return []
    context = list(hypothesis[len(hypothesis) - ngram_size + 1:])
    if any(word in exempt for word in context):
        return []
    blocked = set()
    for start in range(len(hypothesis) - ngram_size + 1):
        if list(hypothesis[start:start + ngram_size - 1]) == context:
            word = hypothesis[start + ngram_size - 1]
            if word not in exempt:
                blocked.add(word)
    return sorted(blocked)


def parse_exempt_words(words: Optional[str], dictionary: Dictionary) -> FrozenSet[int]:
    """Indices of ``--no-repeat-ngram-exempt`` words (``a|b|c``).

    Each word must be a dictionary symbol. As s2s-ft does, a bracketed word is also tried in
    upper case (``[x_sep]`` -> ``[X_SEP]``), and BERT's special tokens name the fairseq symbols
    that took their rows (``[SEP]`` -> ``</s>``)."""
    if not words:
        return frozenset()
    indices = set()
    for word in words.split("|"):
        candidates = [word]
        if word.startswith("[") and word.endswith("]"):
            candidates += [word.upper(), SPECIAL_TOKENS.get(word.upper(), word)]
        found = [c for c in candidates if c in dictionary.indices]
        if not word or not found:
            raise ValueError(
                f"--no-repeat-ngram-exempt {words!r}: {word!r} is not a symbol of the "
                f"dictionary ({len(dictionary)} symbols): give dictionary symbols separated by "
                "'|', as they appear in dict.txt (e.g. '.' or 'the|,')")
        indices.add(dictionary.indices[found[0]])
    return frozenset(indices)


class ExemptNGramRepeatBlock(NGramRepeatBlock):
    """fairseq's ``repeat_ngram_blocker`` with exempt words.

    fairseq's ``SequenceGenerator`` calls it as ``blocker(tokens, lprobs, bsz, beam_size,
    step)`` with its whole token buffer (``tokens[:, 0]`` the start symbol, ``tokens[:, 1:step
    + 1]`` the words so far, padding after) and expects ``lprobs`` back with the blocked words
    at ``-inf``. It reads the n-gram context at ``step``, as compat fix 10 makes fairseq's own
    CPU path do (fairseq 0.12's read it from the padded end of that buffer)."""

    def __init__(self, no_repeat_ngram_size: int, exempt: AbstractSet[int]):
        super().__init__(no_repeat_ngram_size, use_extension=False)
        self.exempt = frozenset(exempt)

    def forward(self, tokens: torch.Tensor, lprobs: torch.Tensor, bsz: int, beam_size: int,
                step: int) -> torch.Tensor:
        hypotheses = tokens[:, 1:step + 1].tolist()
        for row, hypothesis in enumerate(hypotheses):
            blocked = blocked_words(hypothesis, self.no_repeat_ngram_size, self.exempt)
            if blocked:
                lprobs[row, blocked] = -math.inf
        return lprobs
