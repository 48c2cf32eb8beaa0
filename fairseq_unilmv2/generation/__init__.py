"""Decoding strategies beyond fairseq's own: s2s-ft's beam search and n-gram blocking with
exempt words (used by the ``unilm_seq2seq`` task's ``build_generator``)."""
from .ngram_blocking import ExemptNGramRepeatBlock, blocked_words, parse_exempt_words  # noqa: F401
from .s2s_ft_beam_search import S2SFtBeamSearch, gnmt_length_penalty  # noqa: F401
