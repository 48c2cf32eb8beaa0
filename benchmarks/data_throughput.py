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

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from fairseq.data import iterators  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from synthetic import dictionary, pmlm_dataset, seq2seq_dataset  # noqa: E402

VOCAB = 30005  # 30,000 words, fairseq's 4 specials and <mask>


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
            num_workers=args.workers, epoch=1)
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
    d = dictionary(VOCAB)
    results = {
        "pmlm": measure(pmlm_dataset(d, args.examples, args.text_len, rng), args),
        "seq2seq": measure(seq2seq_dataset(d, args.examples, args.source_len, args.target_len,
                                           rng), args),
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
