"""The leading-block attention shortcut: scoring the CONTEXT rows against the CONTEXT keys only
must give exactly what full attention gives, and must be used only where the layout allows it."""
import numpy as np
import pytest
import torch
from helpers import collated_pmlm_sample, pmlm_batch, tiny_unilm_model

from fairseq_unilmv2.data.layout import CONTEXT, ORIGINAL, PADDING, attention_mask, \
    leading_context_block
from fairseq_unilmv2.modules import transformer


def test_block_found_from_the_roles_and_holds_on_the_mask():
    _, dictionary = tiny_unilm_model()
    batch = pmlm_batch(dictionary, [12, 9, 12], np.random.default_rng(0))
    # Rows 0..8 are text in every example; texts reach column 11 at most.
    assert leading_context_block(batch["roles"]) == (9, 12)
    n_q, n_k = 9, 12
    assert not attention_mask(batch["roles"], batch["steps"])[:, :n_q, n_k:].any()
    late_context = batch["roles"].clone()
    late_context[1, 13] = CONTEXT  # CONTEXT after the prefix: no block
    assert leading_context_block(late_context) is None
    plain = torch.full((2, 5), CONTEXT)  # plain bidirectional: nothing to skip
    assert leading_context_block(plain) is None
    padded = torch.tensor([[CONTEXT] * 3 + [ORIGINAL] * 2, [CONTEXT] * 2 + [ORIGINAL] + [PADDING] * 2])
    assert leading_context_block(padded) == (2, 3)


def test_outputs_equal_full_attention(monkeypatch):
    model, dictionary = tiny_unilm_model()
    rng = np.random.default_rng(1)
    for lengths in ([20, 20, 20], [20, 14, 17], [30, 8]):
        batch = pmlm_batch(dictionary, lengths, rng)
        assert leading_context_block(batch["roles"]) is not None
        with torch.no_grad():
            split, _ = model(**batch, features_only=True)
            monkeypatch.setattr(transformer, "leading_context_block", lambda roles: None)
            full, _ = model(**batch, features_only=True)
            monkeypatch.undo()
        real = batch["src_tokens"].ne(dictionary.pad())
        torch.testing.assert_close(split[real], full[real], rtol=0, atol=1e-6)


def test_the_collaters_hand_the_block_to_the_model_and_a_wrong_one_is_refused():
    """Off the CPU the model takes the block from the batch (reading roles would wait for the
    device); on the CPU it checks the batch's block against the roles."""
    model, dictionary = tiny_unilm_model()
    net_input = collated_pmlm_sample(dictionary, [40, 25, 33],
                                     np.random.default_rng(4))["net_input"]
    block = net_input["leading_block"]
    assert block is not None and block == leading_context_block(net_input["roles"])
    with torch.no_grad():
        model(**net_input, features_only=True)
        n_q, n_k = block
        with pytest.raises(ValueError, match="leading_block"):
            model(**dict(net_input, leading_block=(n_q + 1, n_k)), features_only=True)
