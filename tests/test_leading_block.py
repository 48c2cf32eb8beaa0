"""The leading-block attention shortcut: scoring the CONTEXT rows against the CONTEXT keys only
must give exactly what full attention gives, and must be used only where the mask allows it."""
import numpy as np
import torch
from helpers import pmlm_batch, tiny_unilm_model

from fairseq_unilmv2.modules import transformer
from fairseq_unilmv2.modules.transformer import leading_block


def test_block_found_from_the_layout_and_verified_on_the_mask():
    model, dictionary = tiny_unilm_model()
    batch = pmlm_batch(dictionary, [12, 9, 12], np.random.default_rng(0))
    # Rows 0..8 are text in every example; texts reach column 11 at most.
    assert leading_block(batch["attn_mask"]) == (9, 12)
    leaky = batch["attn_mask"].clone()
    leaky[1, 0, 13] = True  # a text row of example 1 now sees an appended token
    assert leading_block(leaky) is None
    square = torch.ones(2, 5, 5, dtype=torch.bool)  # plain bidirectional: nothing to skip
    assert leading_block(square) is None


def test_outputs_equal_full_attention(monkeypatch):
    model, dictionary = tiny_unilm_model()
    rng = np.random.default_rng(1)
    for lengths in ([20, 20, 20], [20, 14, 17], [30, 8]):
        batch = pmlm_batch(dictionary, lengths, rng)
        assert leading_block(batch["attn_mask"]) is not None
        with torch.no_grad():
            split, _ = model(**batch, features_only=True)
            monkeypatch.setattr(transformer, "leading_block", lambda mask: None)
            full, _ = model(**batch, features_only=True)
            monkeypatch.undo()
        real = batch["src_tokens"].ne(dictionary.pad())
        torch.testing.assert_close(split[real], full[real], rtol=0, atol=1e-6)
