"""``--attention-backend flex`` computes what the dense path computes.

On the CPU, FlexAttention runs forward only (torch has no CPU backward for it), so there the
flex path is checked for outputs, over PMLM and seq2seq batches with padding, and for its
fall-backs. Where CUDA is present, the logits and every gradient of both backends there are
compared with the CPU path (fp32, 1e-4)."""
import copy
import logging
import shutil

import numpy as np
import pytest
import torch
from helpers import pmlm_batch, tiny_unilm_model

from fairseq_unilmv2.data.layout import collate_layouts
from fairseq_unilmv2.data.seq2seq_dataset import seq2seq_layout
from fairseq_unilmv2.modules import attention

pytestmark = pytest.mark.skipif(attention.flex_attention is None,
                                reason="this torch has no FlexAttention (torch >= 2.5)")


def run(model, backend, batch, **kwargs):
    model.transformer.attention_backend = backend
    return model(**batch, **kwargs)[0]


def seq2seq_batch(dictionary, rng):
    mask = dictionary.index("<mask>")
    layouts = []
    for source_len, target_len in ((40, 9), (23, 14), (7, 3)):
        words = lambda n: rng.integers(dictionary.nspecial, mask, size=n)  # noqa: E731
        target = words(target_len)
        layouts.append(seq2seq_layout(words(source_len), target, np.full(target_len, mask),
                                      source_type_id=0, target_type_id=1))
    return collate_layouts(layouts, dictionary.pad())


@torch.no_grad()
def test_flex_outputs_equal_dense_on_pmlm_and_seq2seq_batches():
    model, dictionary = tiny_unilm_model()
    rng = np.random.default_rng(0)
    for batch in (pmlm_batch(dictionary, [150, 97, 30], rng), seq2seq_batch(dictionary, rng)):
        real = batch["src_tokens"].ne(dictionary.pad())
        dense = run(model, "dense", batch, features_only=True)
        flex = run(model, "flex", batch, features_only=True)
        assert flex.shape == dense.shape
        torch.testing.assert_close(flex[real], dense[real], rtol=1e-5, atol=1e-5)
        predicted = real & batch["roles"].ne(0)
        torch.testing.assert_close(run(model, "flex", batch, masked_tokens=predicted),
                                   run(model, "dense", batch, masked_tokens=predicted),
                                   rtol=1e-5, atol=1e-5)


def compiled_flex_runs_on_this_cpu() -> bool:
    """Whether torch's inductor lowers FlexAttention for the CPU here: it needs AVX2 kernels
    (x86-64 with AVX2, ATEN_CPU_CAPABILITY not ``default``), and not macOS; elsewhere it raises
    "torch.compile on current platform is not supported for CPU"."""
    try:
        from torch._inductor.kernel.flex.flex_cpu import check_cpu_supported
    except ImportError:  # another torch's layout: its condition, as torch 2.13 words it
        import os
        import sys
        return (torch.cpu._is_avx2_supported() and sys.platform != "darwin"
                and os.getenv("ATEN_CPU_CAPABILITY") != "default")
    return check_cpu_supported()


@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None,
                    reason="torch.compile on the CPU needs a C++ compiler")
@torch.no_grad()
def test_compiled_flex_traces_whole_and_equals_dense(monkeypatch):
    """What a GPU runs is FlexAttention compiled: the roles/steps mask_mod and the distance
    score_mod traced by Dynamo. Compiled here for the CPU (one shape, no gradients: the CPU
    kernels go no further), it must trace without a graph break, not compile again for the
    next batch, and match the dense path."""
    from torch._dynamo.utils import counters

    if not compiled_flex_runs_on_this_cpu():
        pytest.skip("torch compiles FlexAttention for the CPU only with AVX2 kernels (this CPU "
                    "has none, or ATEN_CPU_CAPABILITY=default) and not on macOS")
    monkeypatch.setattr(attention, "runs_compiled", lambda device: True)
    monkeypatch.setattr(attention, "_compiled_functions", {})
    torch._dynamo.reset()
    counters.clear()
    model, dictionary = tiny_unilm_model()
    batch = pmlm_batch(dictionary, [150, 97, 30], np.random.default_rng(3))
    real = batch["src_tokens"].ne(dictionary.pad())
    try:
        flex = run(model, "flex", batch, features_only=True)
        assert not counters["graph_break"], dict(counters["graph_break"])
        graphs = counters["stats"]["unique_graphs"]
        assert graphs >= 2  # the block mask and the attention
        # Every forward makes new mask_mod / score_mod closures over new tensors: with the
        # same shapes, nothing compiles again.
        other = pmlm_batch(dictionary, [150, 97, 30], np.random.default_rng(4))
        assert other["src_tokens"].shape == batch["src_tokens"].shape
        run(model, "flex", other, features_only=True)
        assert counters["stats"]["unique_graphs"] == graphs
    finally:
        torch._dynamo.reset()
    dense = run(model, "dense", batch, features_only=True)
    torch.testing.assert_close(flex[real], dense[real], rtol=1e-5, atol=1e-5)


def test_flex_falls_back_where_it_cannot_serve(caplog, monkeypatch):
    # The warnings are logged once a process: start from none logged, whichever test ran first.
    monkeypatch.setattr(attention, "_warned", set())
    caplog.set_level(logging.WARNING)
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert not attention.use_flex("dense", cuda, training=False, attention_dropout=0.0)
    assert attention.use_flex("flex", cuda, training=True, attention_dropout=0.0)
    assert not attention.use_flex("flex", cuda, training=True, attention_dropout=0.1)
    assert "--attention-dropout 0" in caplog.text
    with torch.no_grad():
        assert attention.use_flex("flex", cpu, training=False, attention_dropout=0.1)
    assert not attention.use_flex("flex", cpu, training=False, attention_dropout=0.0)
    # CPU training with the flex backend asked for: dense attention, same loss as dense.
    model, dictionary = tiny_unilm_model()
    batch = pmlm_batch(dictionary, [20, 12], np.random.default_rng(1))
    model.train()
    torch.testing.assert_close(run(model, "flex", batch).sum(), run(model, "dense", batch).sum())


def logits_and_grads(model, backend, batch, predicted):
    model.zero_grad()
    logits = run(model, backend, batch, masked_tokens=predicted)
    logits.float().logsumexp(-1).sum().backward()
    return logits.detach().cpu(), {name: p.grad.cpu() for name, p in model.named_parameters()
                                   if p.grad is not None}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: the flex backward runs "
                    "on GPUs only (no CPU backward in torch's FlexAttention)")
def test_cuda_logits_and_gradients_equal_the_cpu_path():
    """Dense and flex attention on CUDA against the CPU path, on PMLM and seq2seq batches."""
    cpu_model, dictionary = tiny_unilm_model()
    cuda_model = copy.deepcopy(cpu_model).cuda()
    rng = np.random.default_rng(2)
    for batch in (pmlm_batch(dictionary, [150, 97, 30], rng), seq2seq_batch(dictionary, rng)):
        predicted = batch["src_tokens"].ne(dictionary.pad()) & batch["roles"].ne(0)
        cuda_batch = {k: v.cuda() for k, v in batch.items()}
        # tiny_unilm_model has no dropout: train mode is deterministic
        reference = logits_and_grads(cpu_model.train(), "dense", batch, predicted)
        for backend in ("dense", "flex"):
            logits, grads = logits_and_grads(cuda_model.train(), backend, cuda_batch,
                                             predicted.cuda())
            torch.testing.assert_close(logits, reference[0], rtol=1e-4, atol=1e-4)
            assert grads.keys() == reference[1].keys()
            for name, grad in reference[1].items():
                torch.testing.assert_close(grads[name], grad, rtol=1e-4, atol=1e-4,
                                           msg=lambda m: f"{backend} {name}: {m}")
