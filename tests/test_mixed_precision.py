"""The model and its attention masks in bf16 and fp16: finite, and close to fp32.

The batch is what pre-training feeds: PMLM examples of different lengths (SPEC 3.3) padded to
one length, with the mask of ``layout.attention_mask``. Half precision must neither overflow the
additive mask (``transformer.masked_fill_value``) nor give NaN on rows where every key is masked.

fairseq's ``--fp16`` trainer needs CUDA and its ``--bf16`` trainer is tested through the CLI in
``test_bf16_compat.py``; these tests run the model directly: pure half-precision weights (what ``--fp16`` / ``--bf16``
do to the model) and bf16 autocast over fp32 weights (what ``--amp`` does).
"""
import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fairseq.data import Dictionary

from fairseq_unilmv2.data.layout import PADDING, pmlm_layout
from fairseq_unilmv2.models.unilm_v2 import UniLMv2Config, UniLMv2Model
from fairseq_unilmv2.modules.transformer import UniLMv2Transformer, masked_fill_value

VOCAB = 60


def tiny_model() -> UniLMv2Model:
    dictionary = Dictionary()
    for i in range(VOCAB - len(dictionary) - 1):
        dictionary.add_symbol(f"w{i}")
    dictionary.add_symbol("<mask>")
    cfg = UniLMv2Config(encoder_layers=2, encoder_embed_dim=64, encoder_ffn_embed_dim=128,
                        encoder_attention_heads=4, dropout=0.0, attention_dropout=0.0)
    torch.manual_seed(0)
    transformer = UniLMv2Transformer(cfg, len(dictionary), dictionary.pad())
    return UniLMv2Model(cfg, transformer, dictionary).eval()


def pmlm_batch(model: UniLMv2Model):
    """Two PMLM examples (12 and 7 text tokens) right-padded to one length."""
    d = model.encoder.dictionary
    mask_idx, pad = d.index("<mask>"), d.pad()
    rng = np.random.default_rng(0)
    specs = [(12, [[4, 5], [2], [9, 10, 11]]), (7, [[3], [5]])]
    layouts = []
    for length, blocks in specs:
        text = rng.integers(d.nspecial, len(d) - 1, size=length)
        text[0], text[-1] = d.bos(), d.eos()
        corrupted = text.copy()
        corrupted[[p for block in blocks for p in block]] = mask_idx
        segments = (np.arange(length) >= length // 2).astype(np.int64)
        layouts.append(pmlm_layout(text, corrupted, segments, blocks, mask_idx, pad))
    width = max(len(layout.tokens) for layout in layouts)

    def stack(field, fill):
        return torch.stack([torch.from_numpy(np.pad(getattr(layout, field),
                                                     (0, width - len(layout.tokens)),
                                                     constant_values=fill))
                            for layout in layouts])

    return {
        "src_tokens": stack("tokens", pad), "positions": stack("positions", 0),
        "segment_labels": stack("segments", 0), "roles": stack("roles", PADDING),
        "steps": stack("steps", 0), "target": stack("target", pad),
    }


MODEL_INPUTS = ("src_tokens", "positions", "segment_labels", "roles", "steps")


def loss_and_grads(model: UniLMv2Model, batch, autocast_dtype=None):
    """Forward and backward of the PMLM loss; the loss, the logits and every gradient in fp32."""
    model.zero_grad()
    predicted = batch["target"].ne(model.encoder.dictionary.pad())
    inputs = {k: batch[k] for k in MODEL_INPUTS}
    with torch.autocast("cpu", dtype=autocast_dtype or torch.bfloat16,
                        enabled=autocast_dtype is not None):
        logits, _ = model(**inputs, masked_tokens=predicted)
        loss = F.cross_entropy(logits.float(), batch["target"][predicted])
    loss.backward()
    grads = {n: p.grad.float().clone() for n, p in model.named_parameters() if p.grad is not None}
    return loss.detach(), logits.detach().float(), grads


def half_supported(dtype: torch.dtype) -> bool:
    """Whether this CPU build runs the model's kernels (matmul, SDPA, LayerNorm) in ``dtype``."""
    try:
        x = torch.randn(1, 2, 4, 8, dtype=dtype, requires_grad=True)
        mask = torch.zeros(1, 1, 4, 4, dtype=dtype)
        out = F.scaled_dot_product_attention(x, x, x, attn_mask=mask)
        F.layer_norm(out, (8,)).sum().backward()
        return True
    except RuntimeError:
        return False


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return F.cosine_similarity(a.flatten(), b.flatten(), dim=0).item()


@pytest.fixture(scope="module")
def reference():
    model = tiny_model()
    batch = pmlm_batch(model)
    return model, batch, loss_and_grads(model, batch)


# (dtype, how it runs, tolerance on the loss, tolerance on the logits)
PRECISIONS = [
    (torch.bfloat16, "weights", 3e-2, 0.15),
    (torch.bfloat16, "autocast", 3e-2, 0.15),
    (torch.float16, "weights", 5e-3, 2e-2),
]


@pytest.mark.parametrize("dtype,mode,loss_tol,logit_tol", PRECISIONS,
                         ids=["bf16-weights", "bf16-autocast", "fp16-weights"])
def test_half_precision_forward_backward_matches_fp32(reference, dtype, mode, loss_tol,
                                                      logit_tol):
    if not half_supported(dtype):
        pytest.skip(f"this CPU build of torch has no {dtype} kernels for SDPA/LayerNorm")
    model, batch, (ref_loss, ref_logits, ref_grads) = reference
    half = copy.deepcopy(model)
    if mode == "weights":
        half = half.to(dtype)
    autocast_dtype = dtype if mode == "autocast" else None
    loss, logits, grads = loss_and_grads(half, batch, autocast_dtype=autocast_dtype)

    assert torch.isfinite(loss) and torch.isfinite(logits).all()
    assert all(torch.isfinite(g).all() for g in grads.values()), \
        [n for n, g in grads.items() if not torch.isfinite(g).all()]
    assert abs(loss.item() - ref_loss.item()) <= loss_tol * ref_loss.item()
    assert (logits - ref_logits).abs().max().item() <= logit_tol
    # Same descent direction, parameter by parameter (tiny tensors are all rounding noise).
    for name, ref in ref_grads.items():
        if ref.norm() > 1e-3 * max(g.norm() for g in ref_grads.values()):
            assert cosine(grads[name], ref) > 0.98, name


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_padding_changes_nothing_in_half_precision(reference, dtype):
    """The short example alone and padded inside the batch give the same logits."""
    if not half_supported(dtype):
        pytest.skip(f"this CPU build of torch has no {dtype} kernels")
    model, batch, _ = reference
    half = copy.deepcopy(model).to(dtype)
    real = batch["roles"][1].ne(PADDING)
    alone = {k: batch[k][1:, real] for k in MODEL_INPUTS}
    inputs = {k: batch[k] for k in MODEL_INPUTS}
    with torch.no_grad():
        padded, _ = half(**inputs)
        single, _ = half(**alone)
    assert torch.isfinite(padded).all()
    torch.testing.assert_close(padded[1, real].float(), single[0].float(), atol=5e-2, rtol=2e-2)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_fully_masked_rows_stay_finite(dtype):
    """A query whose every key is masked (e.g. a padding query) gets a uniform softmax, not NaN,
    even with the relative position bias added and the scores of a trained model."""
    if dtype != torch.float32 and not half_supported(dtype):
        pytest.skip(f"this CPU build of torch has no {dtype} kernels")
    model = tiny_model().to(dtype)
    transformer = model.transformer
    with torch.no_grad():
        transformer.rel_pos_bias.proj.weight.fill_(30.0)  # a large bias must not overflow
    tokens = torch.randint(5, VOCAB - 1, (2, 6))
    positions = torch.arange(6).expand(2, 6)
    may_attend = torch.ones(2, 6, 6, dtype=torch.bool)
    may_attend[0, 3:] = False     # rows 3..5 of example 0 attend to nothing at all
    may_attend[1, :, 4:] = False  # keys 4, 5 of example 1 are padding for every query

    bias = transformer.attention_bias(may_attend, positions, positions, dtype)
    assert torch.isfinite(bias).all()
    assert (bias[~may_attend.unsqueeze(1).expand_as(bias)] <= masked_fill_value(dtype) + 30).all()

    out, _, _ = transformer(tokens, positions, torch.zeros_like(tokens), may_attend=may_attend)
    assert torch.isfinite(out).all()
    # Strongly negative scores added in the same dtype: the masked entries must not overflow to
    # -inf (a row of -inf is NaN after softmax).
    scores = (-100 - 100 * torch.rand(bias.shape)).to(dtype)
    probs = torch.softmax(bias + scores, dim=-1).float()
    assert torch.isfinite(probs).all()
    torch.testing.assert_close(probs.sum(-1), torch.ones(probs.shape[:-1]), atol=1e-2, rtol=0)
    # Masked keys get no weight where any key is allowed: exp of the masked fill value minus a
    # score of -100..-200 underflows to exactly 0 in every dtype, on any CPU.
    assert probs[1, :, :, 4:].max().item() == 0.0
