"""Data-loader workers live for one epoch and see its epoch (compat fix 9).

``PMLMDataset`` cannot reuse fairseq's epoch iterator (its masks change with the epoch), so
fairseq builds a new iterator, with new workers, every epoch; fairseq made them persistent, so
they outlived their epoch until the garbage collector freed the iterator, and that shutdown
waited 5 s per worker (the epoch-start stalls of 40-100 s with ``--num-workers 4``). Here an
epoch's workers must be gone once it is consumed, without any help from the garbage collector.
``Seq2SeqDataset`` reuses its iterator, and persistent workers kept the first epoch's copy of
it: every epoch's batches must carry that epoch's masks or corruption, as built in-process.
``benchmarks/epoch_stall.py`` shows the effect on a whole fairseq-train run.
"""
import gc
import multiprocessing
import time

import numpy as np
import torch
from fairseq.data import Dictionary, ListDataset, iterators
from fairseq.tasks import FairseqTask

from fairseq_unilmv2.data.pmlm_dataset import PMLMDataset
from fairseq_unilmv2.data.seq2seq_dataset import Seq2SeqDataset
from fairseq_unilmv2.tasks.pmlm import PMLMConfig, PMLMTask
from fairseq_unilmv2.tasks.unilm_seq2seq import UniLMSeq2SeqConfig

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
            # As fairseq_cli/train.py consumes an epoch (update_freq 1): GroupedIterator
            # stops at its length without asking the epoch iterator for one more batch.
            batches = [group[0] for group in iterators.GroupedIterator(
                epoch_itr.next_epoch_itr(shuffle=True), 1)]
            assert sum(len(b["id"]) for b in batches) == N_BLOCKS
            for batch in batches:
                for row, index in enumerate(batch["id"].tolist()):
                    targets[epoch, index] = batch["target"][row]
            left = wait_for_no_children()
            assert not left, (f"epoch {epoch}: its data-loader workers {left} outlive it; "
                              "only the garbage collector would stop them")
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


def seq2seq_dataset(n_pairs=48):
    dictionary = Dictionary()
    for i in range(30):
        dictionary.add_symbol(f"w{i}")
    mask_idx = dictionary.add_symbol("<mask>")
    rng = np.random.default_rng(1)

    def line(n):
        return dictionary.encode_line(" ".join(f"w{i}" for i in rng.integers(0, 30, size=n)),
                                      add_if_not_exist=False).long()

    src = [line(int(n)) for n in rng.integers(4, 12, size=n_pairs)]
    tgt = [line(int(n)) for n in rng.integers(3, 8, size=n_pairs)]
    return Seq2SeqDataset("train", ListDataset(src, np.array([len(s) for s in src])),
                          ListDataset(tgt, np.array([len(t) for t in tgt])), dictionary,
                          mask_idx, UniLMSeq2SeqConfig(max_source_positions=16,
                                                         max_target_positions=8), seed=1)


def test_a_reused_iterator_gives_its_workers_each_epoch():
    """Seq2SeqDataset reuses its epoch iterator (batching does not depend on the epoch), but its
    corruption does: workers must see every epoch, not keep the first epoch's dataset copy."""
    dataset = seq2seq_dataset()
    task = FairseqTask(None)
    inputs = {}
    for epoch in (1, 2, 3):
        epoch_itr = task.get_batch_iterator(dataset, max_sentences=8, seed=1,
                                            num_workers=WORKERS, epoch=epoch)
        assert epoch_itr is task.dataset_to_epoch_iter[dataset]  # reused across epochs
        for batch in epoch_itr.next_epoch_itr(shuffle=True):
            for row, index in enumerate(batch["id"].tolist()):
                inputs[epoch, index] = batch["net_input"]["src_tokens"][row]
    pad = dataset.dictionary.pad()
    for epoch in (1, 2, 3):
        dataset.set_epoch(epoch)
        for index in range(len(dataset)):
            expected = dataset.collater([dataset[index]])["net_input"]["src_tokens"][0]
            got = inputs[epoch, index]
            assert torch.equal(got[got.ne(pad)], expected[expected.ne(pad)]), (epoch, index)
    changed = sum(not torch.equal(inputs[1, i], inputs[3, i]) for i in range(len(dataset)))
    assert changed > len(dataset) // 2, "the corruption must change from one epoch to the next"
