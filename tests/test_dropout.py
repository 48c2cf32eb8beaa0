"""The CPU dropout (16 random bits a decision): the drop rate, an exactly preserved
expectation, the same mask in backward, reproducibility under a seed, and attention with it."""
import pytest
import torch
import torch.nn.functional as F

from fairseq_unilmv2.modules import dropout as dropout_module
from fairseq_unilmv2.modules.dropout import Dropout, dropout, keep_mask
from fairseq_unilmv2.modules.transformer import SelfAttention


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_drop_rate_and_expectation(p):
    torch.manual_seed(0)
    shape = torch.Size([400, 2500])
    keep, p_rounded = keep_mask(shape, p, torch.device("cpu"))
    assert keep.shape == shape and keep.dtype == torch.bool
    assert abs(p_rounded - p) <= 2 ** -17
    # 1e6 draws: the binomial standard deviation of the drop rate is at most 5e-4.
    assert abs((~keep).float().mean().item() - p) < 2.5e-3
    out = dropout(torch.ones(shape), p, training=True)
    assert abs(out.mean().item() - 1.0) < 0.01
    kept_values = out[out != 0]
    torch.testing.assert_close(kept_values, torch.full_like(kept_values, 1 / (1 - p_rounded)))


def test_each_of_the_four_draws_in_a_word_is_uniform():
    torch.manual_seed(1)
    keep, _ = keep_mask(torch.Size([250_000, 4]), 0.5, torch.device("cpu"))
    # A sign bit stuck at 0 (plain random_() on int64) would make one column all kept.
    rates = (~keep).float().mean(dim=0)
    assert ((rates - 0.5).abs() < 0.005).all(), rates


def test_backward_applies_the_forward_mask():
    torch.manual_seed(2)
    x = torch.randn(64, 64, requires_grad=True)
    out = dropout(x, 0.25, training=True)
    out.backward(torch.ones_like(out))
    kept = out.detach() != 0  # 0.25 is a multiple of 2^-16, so the scale is exactly 1 / 0.75
    torch.testing.assert_close(out.detach(), x.detach() * kept / 0.75)
    torch.testing.assert_close(x.grad, kept.float() / 0.75)


def test_seeded_identical_and_eval_is_identity():
    x = torch.randn(32, 32)
    torch.manual_seed(3)
    first = dropout(x, 0.1, training=True)
    torch.manual_seed(3)
    torch.testing.assert_close(dropout(x, 0.1, training=True), first, rtol=0, atol=0)
    module = Dropout(0.1).eval()
    assert module(x) is x
    assert dropout(x, 0.0, training=True) is x
    assert not dropout(x, 1.0, training=True).any()
    with pytest.raises(ValueError, match="1.5"):
        Dropout(1.5)


def test_attention_written_out_equals_sdpa():
    """Training on CPU with attention dropout takes the written-out path; with dropout off it
    must compute what F.scaled_dot_product_attention computes."""
    torch.manual_seed(4)
    attn = SelfAttention(32, 4, attention_dropout=0.0)
    q, k, v = (torch.randn(2, 4, 7, 8) for _ in range(3))
    bias = torch.randn(2, 4, 7, 7)
    bias[:, :, :, -2:] = torch.finfo(torch.float32).min / 2
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    torch.testing.assert_close(attn._attend_segments(q, [(k, v)], bias), expected,
                               rtol=1e-5, atol=1e-6)
    split = [(k[:, :, :3], v[:, :, :3]), (k[:, :, 3:], v[:, :, 3:])]
    torch.testing.assert_close(attn._attend_segments(q, split, bias), expected,
                               rtol=1e-5, atol=1e-6)


def test_attention_dropout_drops_a_share_of_the_weights():
    torch.manual_seed(5)
    attn = SelfAttention(32, 4, attention_dropout=0.5).train()
    q, k = torch.randn(1, 4, 50, 8), torch.randn(1, 4, 50, 8)
    v = torch.eye(50).expand(1, 4, 50, 50)  # the output rows are the attention weights
    weights = attn._attend(q, k, v, torch.zeros(1, 1, 50, 50))
    assert abs(weights.eq(0).float().mean().item() - 0.5) < 0.02
    assert abs(weights.sum(dim=-1).mean().item() - 1.0) < 0.05


def test_torch_dropout_switch_gives_torchs_own_masks(monkeypatch):
    """FAIRSEQ_UNILMV2_TORCH_DROPOUT=1 (read at import) restores F.dropout's mask stream."""
    monkeypatch.setattr(dropout_module, "TORCH_DROPOUT", True)
    x = torch.randn(64, 64)
    torch.manual_seed(6)
    expected = F.dropout(x, 0.1, training=True)
    torch.manual_seed(6)
    torch.testing.assert_close(dropout(x, 0.1, training=True), expected, rtol=0, atol=0)
