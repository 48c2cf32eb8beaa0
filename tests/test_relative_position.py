"""The relative position bias equals SPEC 2's definition, one-hot buckets through a
Linear(bins -> heads, bias=False), in value and in gradient (it has its own backward)."""
import torch
from torch.nn import functional as F

from fairseq_unilmv2.modules.relative_position import (RelativePositionBias, _one_hot_sum,
                                                       relative_position_bucket,
                                                       sum_into_buckets)


def test_bias_and_gradient_equal_the_one_hot_linear():
    torch.manual_seed(0)
    bias = RelativePositionBias(num_heads=4, num_buckets=32, max_distance=128).double()
    query_positions = torch.randint(0, 400, (2, 7))
    key_positions = torch.randint(0, 400, (2, 9))
    weight = bias.proj.weight.detach().clone().requires_grad_()
    buckets = relative_position_bucket(key_positions.unsqueeze(1) - query_positions.unsqueeze(2))
    reference = F.one_hot(buckets, 32).double() @ weight.t()  # (B, Tq, Tk, heads)

    output = bias(query_positions, key_positions).permute(0, 2, 3, 1)
    upstream = torch.randn_like(reference)
    (reference * upstream).sum().backward()
    (output * upstream).sum().backward()

    # Exact: each entry of the one-hot product is one weight plus exact zeros, in any order.
    torch.testing.assert_close(output, reference, rtol=0, atol=0)
    torch.testing.assert_close(bias.proj.weight.grad, weight.grad, rtol=1e-12, atol=1e-12)


def test_one_hot_gradient_equals_index_add():
    """The GPU's contention-free bucket sum (a one-hot product, in chunks) equals the CPU's
    index_add_ to 1e-5, in fp32 over a PMLM-sized batch and across chunk boundaries."""
    torch.manual_seed(1)
    heads, buckets = 12, 32
    positions = torch.randint(0, 512, (2, 300))
    bucket = relative_position_bucket(positions.unsqueeze(1) - positions.unsqueeze(2)).reshape(-1)
    grad = torch.randn(heads, bucket.numel())
    expected = sum_into_buckets(grad, bucket, buckets)  # CPU: index_add_
    assert torch.equal(expected, torch.zeros(heads, buckets).index_add_(1, bucket, grad))
    for chunk in (bucket.numel(), 4093):
        got = _one_hot_sum(grad, bucket, buckets, chunk=chunk)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5 * expected.abs().max())


def test_attention_bias_rows_start_aligned_and_values_are_unchanged(monkeypatch):
    """SDPA's memory-efficient CUDA kernel copies a bias whose strides are not multiples of 8
    (in every layer, and its gradient back): the shared bias is laid out so that they are."""
    import numpy as np
    from helpers import pmlm_batch, tiny_unilm_model

    from fairseq_unilmv2.data.layout import attention_mask
    from fairseq_unilmv2.modules import transformer

    model, dictionary = tiny_unilm_model()
    batch = pmlm_batch(dictionary, [21, 13], np.random.default_rng(0))
    length = batch["src_tokens"].size(1)
    assert length % transformer.BIAS_ALIGNMENT
    mask = attention_mask(batch["roles"], batch["steps"])
    positions = batch["positions"]
    for dtype in (torch.float32, torch.bfloat16):
        bias = model.transformer.attention_bias(mask, positions, positions, dtype)
        assert bias.shape == (2, 4, length, length) and bias.stride(-1) == 1
        assert all(stride % transformer.BIAS_ALIGNMENT == 0 for stride in bias.stride()[:-1])
        monkeypatch.setattr(transformer, "BIAS_ALIGNMENT", 1)
        unaligned = model.transformer.attention_bias(mask, positions, positions, dtype)
        monkeypatch.undo()
        torch.testing.assert_close(bias, unaligned, rtol=0, atol=0)
