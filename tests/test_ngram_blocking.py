"""fairseq's ``--no-repeat-ngram-size`` blocks repeated n-grams without its CUDA extension
(compat fix 10): the Python fallback must read the tokens generated so far, not the padded end
of SequenceGenerator's token buffer."""
import math

import torch
from fairseq.ngram_repeat_block import NGramRepeatBlock

import fairseq_unilmv2  # noqa: F401  (applies the compat fixes)

PAD, EOS = 1, 2


def test_fallback_bans_the_continuations_of_earlier_ngrams():
    blocker = NGramRepeatBlock(3, use_extension=False)
    # SequenceGenerator's buffer: eos, then the tokens so far (steps 1..4), then padding.
    tokens = torch.full((2, 12), PAD)
    tokens[0, :5] = torch.tensor([EOS, 7, 8, 9, 7])         # last bigram "9 7": no earlier one
    tokens[1, :5] = torch.tensor([EOS, 7, 8, 7, 8])         # last bigram "7 8" came before "7"
    lprobs = torch.zeros(2, 20)
    blocked = blocker(tokens, lprobs, bsz=1, beam_size=2, step=4)
    assert torch.isfinite(blocked[0]).all()
    assert blocked[1, 7] == -math.inf  # "7 8 7" again
    assert torch.isfinite(blocked[1, torch.arange(20) != 7]).all()


def test_fallback_waits_until_an_ngram_can_repeat():
    blocker = NGramRepeatBlock(3, use_extension=False)
    tokens = torch.full((1, 8), PAD)
    tokens[0, :2] = torch.tensor([EOS, 7])
    assert torch.isfinite(blocker(tokens, torch.zeros(1, 20), bsz=1, beam_size=1, step=1)).all()
