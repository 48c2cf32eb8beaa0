"""Data-loader throughput of the pmlm and seq2seq pipelines, in examples per second.

What one data-loader worker does for a training batch is ``dataset[i]`` for each example, then
``dataset.collater(examples)``; a GPU consumes fairseq's masked_lm batches of 32 x 512 at about
500 examples/s (H200, ``benchmarks/gpu.sh``), so a worker must keep up with that. Four
figures per pipeline, medians of ``--repeats`` runs on one thread (CPU time of this process):

- ``getitem``: ``dataset[i]`` alone (masking and layout);
- ``collater``: ``dataset.collater`` alone on ready examples (padding into (B, T) tensors);
- ``worker``: both, i.e. what one worker delivers;
- ``iterator``: fairseq's own ``EpochBatchIterator`` with ``--workers`` processes, end to end
  (wall clock, so it also shows what the machine's other load leaves).

Texts are token blocks of ``--text-len`` ids drawn from a 30k-symbol dictionary (pmlm), and
pairs of ``--source-len`` + ``--target-len`` tokens (seq2seq): masking and layout do not look at
which words the ids stand for, so no corpus is needed. Prints a table and one JSON line.

    python benchmarks/data_throughput.py
    python benchmarks/data_throughput.py --workers 4 --repeats 5
"""
import argparse
import json
import os
import statistics
import sys
import time
from types import SimpleNamespace

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from fairseq.data import Dictionary, ListDataset, data_utils, iterators  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from fairseq_unilmv2.data.pmlm_dataset import SPECIALS_PER_EXAMPLE, PMLMDataset  # noqa: E402
from fairseq_unilmv2.data.seq2seq_dataset import Seq2SeqDataset  # noqa: E402

VOCAB = 30000


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=256, help="examples per measurement")
    parser.add_argument("--batch-size", type=int, default=32, help="examples per batch")
    parser.add_argument("--text-len", type=int, default=512,
                        help="pmlm text length, [SOS] S1 [EOS] S2 [EOS] included")
    parser.add_argument("--source-len", type=int, default=464, help="seq2seq source length")
    parser.add_argument("--target-len", type=int, default=48, help="seq2seq target length")
    parser.add_argument("--workers", type=int, default=2,
                        help="data-loader workers of the iterator measurement (0: main process)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure (median)")
    return parser.parse_args()


def dictionary() -> Dictionary:
    d = Dictionary()
    for i in range(VOCAB):
        d.add_symbol(f"w{i}")
    d.add_symbol("<mask>")
    return d


def token_lines(d: Dictionary, count: int, length: int, rng) -> ListDataset:
    """``count`` lines of ``length`` ordinary ids, each ending with eos as binarized lines do."""
    lines = [torch.from_numpy(np.append(rng.integers(d.nspecial, VOCAB, size=length - 1),
                                        d.eos()).astype(np.int64)) for _ in range(count)]
    return ListDataset(lines, np.full(count, length))


def pmlm_dataset(d: Dictionary, args, rng) -> PMLMDataset:
    text = args.text_len - SPECIALS_PER_EXAMPLE
    blocks = token_lines(d, args.examples, text + 1, rng)  # + eos, which the dataset drops
    return PMLMDataset(blocks, np.full(args.examples, text), d, d.index("<mask>"), seed=1)


def seq2seq_dataset(d: Dictionary, args, rng) -> Seq2SeqDataset:
    cfg = SimpleNamespace(max_source_positions=args.source_len,
                          max_target_positions=args.target_len, target_mask_prob=0.5,
                          pseudo_mask_prob=0.8, pseudo_random_prob=0.1, pseudo_keep_prob=0.1)
    # Binarized sources lack the [bos] the dataset adds.
    src = token_lines(d, args.examples, args.source_len - 1, rng)
    tgt = token_lines(d, args.examples, args.target_len, rng)
    return Seq2SeqDataset("bench", src, tgt, d, d.index("<mask>"), cfg)


def rate(run, count: int, repeats: int, clock=time.process_time) -> float:
    """Median examples/s of ``run()`` over ``repeats`` timed runs (after one warm-up).

    In-process figures use this process's CPU time: the machine is shared, and other load
    would otherwise be counted as the pipeline's cost. The iterator, whose work happens in
    worker processes, is timed on the wall clock."""
    run()
    times = []
    for _ in range(repeats):
        start = clock()
        run()
        times.append(clock() - start)
    return count / statistics.median(times)


def measure(dataset, args) -> dict:
    n, bs = len(dataset), args.batch_size
    batches = [list(range(i, min(i + bs, n))) for i in range(0, n, bs)]
    examples = [dataset[i] for i in range(n)]

    def getitem():
        for i in range(n):
            dataset[i]

    def collate():
        for batch in batches:
            dataset.collater([examples[i] for i in batch])

    def worker():
        for batch in batches:
            dataset.collater([dataset[i] for i in batch])

    def iterator():
        # One epoch as fairseq-train runs it for a dataset whose iterator is rebuilt every
        # epoch: workers start, deliver the epoch and stop (compat fix 9).
        epoch_itr = iterators.EpochBatchIterator(
            dataset, collate_fn=dataset.collater, batch_sampler=batches, seed=1,
            num_workers=args.workers, epoch=1, persistent_workers=False)
        for _ in epoch_itr.next_epoch_itr(shuffle=False):
            pass

    one_batch = dataset.collater(examples[:bs])
    tensors = [t for t in one_batch["net_input"].values() if torch.is_tensor(t)]
    return {
        "getitem": rate(getitem, n, args.repeats),
        "collater": rate(collate, n, args.repeats),
        "worker": rate(worker, n, args.repeats),
        "iterator": rate(iterator, n, args.repeats, clock=time.perf_counter),
        "net_input_bytes_per_batch": sum(t.numel() * t.element_size() for t in tensors),
    }


def main():
    args = parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    d = dictionary()
    results = {
        "pmlm": measure(pmlm_dataset(d, args, rng), args),
        "seq2seq": measure(seq2seq_dataset(d, args, rng), args),
    }
    print(f"examples/s per CPU-second, one thread, batches of {args.batch_size} (medians of "
          f"{args.repeats}); iterator: wall clock, {args.workers} workers")
    print(f"{'pipeline':8} {'getitem':>9} {'collater':>9} {'worker':>9} {'iterator':>9} "
          f"{'MB/batch':>9}")
    for name, r in results.items():
        print(f"{name:8} {r['getitem']:9.0f} {r['collater']:9.0f} {r['worker']:9.0f} "
              f"{r['iterator']:9.0f} {r['net_input_bytes_per_batch'] / 1e6:9.2f}")
    print(json.dumps({"benchmark": "data_throughput", "batch_size": args.batch_size,
                      "text_len": args.text_len, "source_len": args.source_len,
                      "target_len": args.target_len, "workers": args.workers,
                      **{f"{name}_{key}": round(value, 1) for name, r in results.items()
                         for key, value in r.items()}}))


if __name__ == "__main__":
    main()
