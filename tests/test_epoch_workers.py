"""Data-loader workers of per-epoch iterators end with their epoch (compat fix 9).

``PMLMDataset`` cannot reuse fairseq's epoch iterator (its masks change with the epoch), so
fairseq builds a new iterator, with new workers, every epoch. fairseq makes those workers
persistent: they outlived their epoch until the garbage collector freed the iterator, and that
shutdown waited 5 s per worker (the epoch-start stalls of 40-100 s with ``--num-workers 4``).
Here the workers of an epoch must be gone once the epoch is consumed, without any help from
the garbage collector, and every epoch's batches must still carry that epoch's masks.
``benchmarks/epoch_stall.py`` shows the effect on a whole fairseq-train run.
"""
import gc
import multiprocessing
import time

import numpy as np
import torch
from fairseq.data import Dictionary

from fairseq_unilmv2.data.pmlm_dataset import PMLMDataset
from fairseq_unilmv2.tasks.pmlm import PMLMConfig, PMLMTask

N_BLOCKS, BLOCK, WORKERS = 96, 30, 2


def pmlm_task_and_dataset():
    dictionary = Dictionary()
    for i in range(50):
        dictionary.add_symbol(f"w{i}")
    task = PMLMTask(PMLMConfig(data="unused", tokens_per_sample=BLOCK + 3), dictionary)
    rng = np.random.default_rng(0)
    blocks = [rng.integers(dictionary.nspecial, len(dictionary) - 1, size=BLOCK)
              for _ in range(N_BLOCKS)]
    dataset = PMLMDataset(blocks, np.full(N_BLOCKS, BLOCK), dictionary, task.mask_idx, seed=1)
    return task, dataset


def wait_for_no_children(timeout_s: float = 60.0):
    """The worker processes still alive after ``timeout_s`` (reaped as they exit)."""
    deadline = time.monotonic() + timeout_s
    while multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.1)
    return multiprocessing.active_children()


def test_each_epochs_workers_end_with_it_and_masks_follow_the_epoch():
    task, dataset = pmlm_task_and_dataset()
    assert not multiprocessing.active_children()
    gc_was_enabled = gc.isenabled()
    gc.disable()  # the old workers must not depend on a collection to go away
    try:
        targets = {}
        for epoch in (1, 2, 3):
            epoch_itr = task.get_batch_iterator(dataset, max_sentences=8, seed=1,
                                                num_workers=WORKERS, epoch=epoch,
                                                data_buffer_size=4)
            assert epoch_itr is not task.dataset_to_epoch_iter.get(dataset)
            batches = list(epoch_itr.next_epoch_itr(shuffle=True))
            assert sum(len(b["id"]) for b in batches) == N_BLOCKS
            for batch in batches:
                for row, index in enumerate(batch["id"].tolist()):
                    targets[epoch, index] = batch["target"][row]
            left = wait_for_no_children()
            assert not left, (f"epoch {epoch}: its data-loader workers {left} outlive it "
                              "(persistent workers of an iterator that is never reused)")
            del epoch_itr, batches
    finally:
        if gc_was_enabled:
            gc.enable()

    pad = dataset.dictionary.pad()
    for index in range(N_BLOCKS):
        for epoch in (1, 2, 3):
            # What the worker sent is what this epoch's masks are (the worker saw the epoch).
            dataset.set_epoch(epoch)
            expected = dataset.collater([dataset[index]])["target"][0]
            got = targets[epoch, index]
            assert torch.equal(got[got.ne(pad)], expected[expected.ne(pad)]), (epoch, index)
    changed = sum(not torch.equal(targets[1, i], targets[2, i]) for i in range(N_BLOCKS))
    assert changed > N_BLOCKS // 2, "masks must change from one epoch to the next"


def test_a_reused_iterator_keeps_persistent_workers(monkeypatch):
    """Iterators that fairseq caches and reuses across epochs keep fairseq's default."""
    task, dataset = pmlm_task_and_dataset()
    monkeypatch.setattr(PMLMDataset, "can_reuse_epoch_itr_across_epochs", True)
    epoch_itr = task.get_batch_iterator(dataset, max_sentences=8, num_workers=WORKERS)
    assert task.dataset_to_epoch_iter[dataset] is epoch_itr
    assert epoch_itr.persistent_workers is True
    no_workers = PMLMTask(task.cfg, task.dictionary).get_batch_iterator(dataset, max_sentences=8)
    assert no_workers.persistent_workers is False  # fairseq's own rule: none without workers


def test_seq2seq_corruption_follows_the_epoch_through_workers():
    """The seq2seq corruption changes with the epoch, as the workers deliver it too (a reused
    iterator's persistent workers would keep the first epoch's corruption forever)."""
    from fairseq.data import ListDataset

    from fairseq_unilmv2.data.seq2seq_dataset import Seq2SeqDataset
    from fairseq_unilmv2.tasks.unilm_seq2seq import UniLMSeq2SeqConfig, UniLMSeq2SeqTask

    dictionary = Dictionary()
    for i in range(50):
        dictionary.add_symbol(f"w{i}")
    cfg = UniLMSeq2SeqConfig(target_mask_prob=0.9)
    task = UniLMSeq2SeqTask(cfg, dictionary)
    rng = np.random.default_rng(1)
    lines = [torch.from_numpy(np.append(rng.integers(dictionary.nspecial, task.mask_idx, size=12),
                                        dictionary.eos())) for _ in range(2 * N_BLOCKS)]
    dataset = Seq2SeqDataset("train", ListDataset(lines[:N_BLOCKS], np.full(N_BLOCKS, 13)),
                             ListDataset(lines[N_BLOCKS:], np.full(N_BLOCKS, 13)), dictionary,
                             task.mask_idx, cfg, seed=1)
    inputs = {}
    for epoch in (1, 2):
        epoch_itr = task.get_batch_iterator(dataset, max_sentences=8, seed=1,
                                            num_workers=WORKERS, epoch=epoch)
        for batch in epoch_itr.next_epoch_itr(shuffle=True):
            for row, index in enumerate(batch["id"].tolist()):
                inputs[epoch, index] = batch["net_input"]["src_tokens"][row]
    for index in range(N_BLOCKS):
        dataset.set_epoch(2)
        expected = torch.from_numpy(dataset[index]["layout"].tokens)
        assert torch.equal(inputs[2, index][:len(expected)], expected), index
    changed = sum(not torch.equal(inputs[1, i], inputs[2, i]) for i in range(N_BLOCKS))
    assert changed > N_BLOCKS // 2, "the corruption must change from one epoch to the next"
