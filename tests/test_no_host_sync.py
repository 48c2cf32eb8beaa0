"""A training step never reads the device from the host (issue: no host-device syncs).

On a GPU, anything that turns a device tensor into a Python value (``int(t)``, ``bool(t)``,
``t.item()``) or sizes a result by the data (boolean indexing, ``nonzero``) makes the host wait
for every queued kernel. There is no GPU here, but the ``meta`` device has no data at all: such
an operation fails on it, while everything whose shapes follow from the inputs' shapes runs.
So a whole step (criterion forward and backward) on meta tensors is a step free of syncs; its
shapes and code path are the ones a GPU takes (the CPU-only reads are skipped off the CPU).
Where CUDA is present, the same steps run there too, for both attention backends, with torch's
sync debug mode raising at any synchronizing call.
"""
import numpy as np
import pytest
import torch
from fairseq.data import ListDataset
from helpers import collated_pmlm_sample, random_lines, tiny_unilm_model

from fairseq_unilmv2.criterions.pmlm import PMLMCriterion, PMLMCriterionConfig
from fairseq_unilmv2.criterions.unilm_seq2seq import UniLMSeq2SeqCriterion
from fairseq_unilmv2.data.seq2seq_dataset import Seq2SeqDataset
from fairseq_unilmv2.tasks.unilm_seq2seq import UniLMSeq2SeqConfig


class Task:
    """What fairseq's criterions read off a task: its target dictionary."""

    def __init__(self, dictionary):
        self.target_dictionary = dictionary


def to_device(sample, device):
    if torch.is_tensor(sample):
        return sample.to(device)
    if isinstance(sample, dict):
        return {key: to_device(value, device) for key, value in sample.items()}
    return sample


def pmlm_sample(dictionary, rng):
    return collated_pmlm_sample(dictionary, [40, 25, 33], rng)


def seq2seq_sample(dictionary, rng):
    source_lengths, target_lengths = np.array([30, 12, 21]), np.array([7, 11, 4])
    cfg = UniLMSeq2SeqConfig(max_source_positions=64, max_target_positions=32)
    dataset = Seq2SeqDataset(
        "train", ListDataset(random_lines(dictionary, source_lengths, rng), source_lengths),
        ListDataset(random_lines(dictionary, target_lengths, rng), target_lengths), dictionary,
        dictionary.index("<mask>"), cfg, seed=1)
    return dataset.collater([dataset[i] for i in range(len(source_lengths))])


def pmlm_criterion(task):
    return PMLMCriterion(PMLMCriterionConfig(), task)


def seq2seq_criterion(task):
    return UniLMSeq2SeqCriterion(task, label_smoothing=0.1)


STEPS = [(pmlm_criterion, pmlm_sample), (seq2seq_criterion, seq2seq_sample)]


def train_step(model, criterion, sample):
    model.train()
    loss, sample_size, logging_output = criterion(model, sample)
    loss.backward()
    return loss, logging_output


@pytest.mark.parametrize("make_criterion, make_sample", STEPS, ids=["pmlm", "seq2seq"])
def test_a_training_step_runs_without_reading_the_device(make_criterion, make_sample):
    model, dictionary = tiny_unilm_model()
    sample = make_sample(dictionary, np.random.default_rng(0))
    criterion = make_criterion(Task(dictionary))
    cpu_loss, cpu_log = train_step(model, criterion, sample)
    assert torch.isfinite(cpu_loss)

    meta_model = model.to("meta")
    meta_loss, meta_log = train_step(meta_model, criterion, to_device(sample, "meta"))
    assert meta_loss.device.type == "meta" and meta_loss.shape == cpu_loss.shape
    assert all(p.grad is not None for p in meta_model.parameters() if p.requires_grad)
    # The logged counts stay tensors on the device (summed by fairseq's logging, no reads).
    for key, value in meta_log.items():
        if torch.is_tensor(value):
            assert value.device.type == "meta", key


@pytest.mark.parametrize("make_criterion, make_sample", STEPS, ids=["pmlm", "seq2seq"])
def test_without_the_host_side_counts_the_step_reads_the_device(make_criterion, make_sample):
    """The test above can fail: drop the collater's counts and boolean indexing is back."""
    model, dictionary = tiny_unilm_model()
    sample = make_sample(dictionary, np.random.default_rng(0))
    del sample["net_input"]["num_predicted"]
    with pytest.raises(NotImplementedError, match="nonzero"):
        train_step(model.to("meta"), make_criterion(Task(dictionary)), to_device(sample, "meta"))


@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason="needs CUDA: the meta-device tests above stand in for it elsewhere")
@pytest.mark.parametrize("backend", ["dense", "flex"])
@pytest.mark.parametrize("make_criterion, make_sample", STEPS, ids=["pmlm", "seq2seq"])
def test_a_cuda_training_step_does_not_synchronize(make_criterion, make_sample, backend):
    """The same on a GPU, for both attention backends: torch raises at any synchronizing call."""
    model, dictionary = tiny_unilm_model()
    model = model.cuda()
    model.transformer.attention_backend = backend
    sample = to_device(make_sample(dictionary, np.random.default_rng(0)), "cuda")
    criterion = make_criterion(Task(dictionary))
    train_step(model, criterion, sample)  # compiles (flex) and warms the allocator
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        train_step(model, criterion, sample)
    finally:
        torch.cuda.set_sync_debug_mode("default")
