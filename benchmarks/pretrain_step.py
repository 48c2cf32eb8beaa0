"""Time one pre-training update of ``pmlm`` against fairseq's own ``masked_lm`` + ``roberta``.

Two pmlm objectives are timed: ``ae+par`` (UniLMv2's PMLM, the default) and ``ae`` (conventional
masks only, no pseudo part: masked_lm's input, so its ratio shows what the rest of the plugin
costs; target <= 1.05).

Both run the same fairseq path (``task.train_step``: forward and backward, then the optimizer
step) on the same binarized text (WikiText-2 validation split from ../shared/data, or --text),
with the same layers, width and heads, the same number of original text tokens per batch
(--batch-size blocks of 512 tokens) and Adam. PMLM's input is longer (the appended pseudo masks
and originals, about 1.3x) and carries a (B, T, T) attention mask and a relative position bias.

Updates of the two alternate in one process, so that the load of a shared machine falls on both
alike; peak resident memory (ru_maxrss) is measured in a fresh process per task, so it is its own;
on a GPU the peak allocated CUDA memory is reported too. Prints the median step time of each and
their ratio, and ends with one JSON line. The machine may be shared: medians over several steps
tame the noise, but compare figures only from the same run.

On CPU, pmlm draws its dropout masks more cheaply than torch's ``bernoulli_`` (see
``fairseq_unilmv2/modules/dropout.py``), which masked_lm uses; ``--torch-dropout`` makes pmlm
use torch's too, so the ratio then shows the cost of the PMLM layout alone.

    python benchmarks/pretrain_step.py                  # 4 layers x 256, 4 blocks a batch
    python benchmarks/pretrain_step.py --torch-dropout  # same, with torch's dropout masks
    python benchmarks/pretrain_step.py --layers 12 --dim 768 --heads 12 --batch-size 8
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TEXT = REPO.parent / "shared" / "data" / "wikitext2" / "valid.txt"
TOKENS_PER_SAMPLE = 512
# Trainees: fairseq's masked_lm, then pmlm under each objective timed ("pmlm" is ae+par).
TASKS = ("masked_lm", "pmlm", "pmlm_ae")
OBJECTIVE_OF = {"pmlm": "ae+par", "pmlm_ae": "ae"}
WORKERS = ["time", *(f"memory:{task}" for task in TASKS)]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=4, help="Transformer layers of both models")
    parser.add_argument("--dim", type=int, default=256, help="hidden size of both models")
    parser.add_argument("--heads", type=int, default=4, help="attention heads of both models")
    parser.add_argument("--ffn-dim", type=int, default=None, help="FFN size (default 4 x dim)")
    parser.add_argument("--batch-size", type=int, default=4,
                        help="blocks of 512 original tokens per update")
    parser.add_argument("--warmup", type=int, default=2, help="untimed updates first")
    parser.add_argument("--steps", type=int, default=8, help="timed updates")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--text", type=Path, default=DEFAULT_TEXT,
                        help="plain text to binarize (one paragraph a line)")
    parser.add_argument("--torch-dropout", action="store_true",
                        help="pmlm draws its CPU dropout masks with torch's own dropout, as "
                             "masked_lm does, instead of fairseq_unilmv2.modules.dropout's "
                             "cheaper ones (to see the two effects apart)")
    parser.add_argument("--worker", choices=WORKERS, help=argparse.SUPPRESS)
    parser.add_argument("--data-bin", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def fairseq_args(task: str, args, data_bin: Path):
    """fairseq-train style arguments: same sizes for both, each task with its own model."""
    ffn = args.ffn_dim or 4 * args.dim
    model = (["--task", "pmlm", "--criterion", "pmlm", "--arch", "unilm_v2_base",
              "--objective", OBJECTIVE_OF[task],
              "--user-dir", str(REPO / "fairseq_unilmv2")] if task in OBJECTIVE_OF else
             ["--task", "masked_lm", "--criterion", "masked_lm", "--arch", "roberta_base"])
    return [str(data_bin), *model, "--encoder-layers", str(args.layers),
            "--encoder-embed-dim", str(args.dim), "--encoder-ffn-embed-dim", str(ffn),
            "--encoder-attention-heads", str(args.heads),
            "--tokens-per-sample", str(TOKENS_PER_SAMPLE), "--sample-break-mode", "none",
            "--batch-size", str(args.batch_size), "--optimizer", "adam", "--lr", "1e-4",
            "--lr-scheduler", "fixed", "--seed", "1", "--num-workers", "0",
            *(["--cpu"] if args.device == "cpu" else [])]


def full_batches(task, args, count: int):
    """The first ``count`` training batches that hold exactly --batch-size full blocks."""
    from fairseq import utils

    task.load_dataset("train")
    itr = task.get_batch_iterator(task.dataset("train"), max_sentences=args.batch_size,
                                  seed=1).next_epoch_itr(shuffle=True)
    batches = []
    for sample in itr:
        if sample["nsentences"] == args.batch_size and \
                sample["ntokens"] == args.batch_size * TOKENS_PER_SAMPLE:
            batches.append(utils.move_to_cuda(sample) if args.device == "cuda" else sample)
        if len(batches) == count:
            return batches
    raise SystemExit(f"only {len(batches)} full batches of {args.batch_size} blocks in the "
                     "data: pass a longer --text or a smaller --batch-size")


class Trainee:
    """One task with its model, criterion, optimizer and batches, built as fairseq-train does."""

    def __init__(self, task_name: str, args, n_batches: int):
        import torch
        from fairseq import optim, options, tasks
        from fairseq.dataclass.utils import convert_namespace_to_omegaconf

        if task_name in OBJECTIVE_OF:
            import fairseq_unilmv2  # noqa: F401  (registers the task, criterion and model)
        cfg = convert_namespace_to_omegaconf(options.parse_args_and_arch(
            options.get_training_parser(), fairseq_args(task_name, args, args.data_bin)))
        self.task = tasks.setup_task(cfg.task)
        self.model = self.task.build_model(cfg.model)
        self.criterion = self.task.build_criterion(cfg.criterion)
        if args.device == "cuda":
            self.model, self.criterion = self.model.cuda(), self.criterion.cuda()
        self.optimizer = optim.build_optimizer(cfg.optimizer, [
            p for p in self.model.parameters() if p.requires_grad])
        self.batches = full_batches(self.task, args, n_batches)
        self.device = args.device
        self.updates = 0
        self.times = []      # wall-clock seconds per update
        self.cpu_times = []  # process CPU seconds per update (all threads): steadier under load
        self._torch = torch

    def update(self, timed: bool) -> None:
        """One training update: forward and backward (task.train_step), then optimizer step."""
        sample = self.batches[self.updates % len(self.batches)]
        self._sync()
        start, cpu_start = time.perf_counter(), time.process_time()
        self.optimizer.zero_grad()
        self.task.train_step(sample, self.model, self.criterion, self.optimizer, self.updates)
        self.optimizer.step()
        self._sync()
        if timed:
            self.times.append(time.perf_counter() - start)
            self.cpu_times.append(time.process_time() - cpu_start)
        self.updates += 1

    def _sync(self):
        if self.device == "cuda":
            self._torch.cuda.synchronize()

    def input_length(self) -> float:
        return statistics.mean(int(b["net_input"]["src_tokens"].size(1)) for b in self.batches)


def time_both(args) -> dict:
    """Alternate masked_lm and pmlm updates in one process, so that the load of a shared
    machine falls on both alike; report medians and the median of the paired ratios."""
    import torch

    torch.set_num_threads(args.threads)
    trainees = {name: Trainee(name, args, args.warmup + args.steps) for name in TASKS}
    for step in range(args.warmup + args.steps):
        for trainee in trainees.values():
            trainee.update(timed=step >= args.warmup)
    mlm, pmlm, ae = trainees["masked_lm"], trainees["pmlm"], trainees["pmlm_ae"]
    return {
        **{name: {"median_s": statistics.median(t.times),
                  "median_cpu_s": statistics.median(t.cpu_times),
                  "times_s": [round(x, 4) for x in t.times],
                  "input_length": t.input_length(),
                  "original_tokens_per_batch": int(t.batches[0]["ntokens"])}
           for name, t in trainees.items()},
        "median_paired_ratio": statistics.median(p / m for p, m in zip(pmlm.times, mlm.times)),
        "cpu_time_ratio": statistics.median(pmlm.cpu_times) / statistics.median(mlm.cpu_times),
        "ae_median_paired_ratio": statistics.median(a / m for a, m in zip(ae.times, mlm.times)),
        "ae_cpu_time_ratio": statistics.median(ae.cpu_times) / statistics.median(mlm.cpu_times),
    }


def peak_memory(args) -> dict:
    """Peak memory of one task alone: a few updates in a fresh process."""
    import torch

    torch.set_num_threads(args.threads)
    trainee = Trainee(args.worker.split(":")[1], args, 2)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for _ in range(2):
        trainee.update(timed=False)
    return {
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_updates_mib": rss_before,
        "peak_cuda_mib": (torch.cuda.max_memory_allocated() / 2 ** 20
                          if args.device == "cuda" else None),
    }


def binarize(text: Path, destdir: Path) -> None:
    if not text.exists():
        raise SystemExit(f"{text} not found: the benchmark text lives in ../shared/data; "
                         "pass another plain-text file with --text")
    subprocess.run([str(Path(sys.executable).parent / "fairseq-preprocess"), "--only-source",
                    "--trainpref", str(text), "--destdir", str(destdir), "--workers", "1"],
                   check=True, capture_output=True)


def run_in_subprocess(worker: str, args, data_bin: Path) -> dict:
    argv = [sys.executable, __file__, "--worker", worker, "--data-bin", str(data_bin)]
    for name in ("layers", "dim", "heads", "batch_size", "warmup", "steps", "threads", "device"):
        argv += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    if args.ffn_dim:
        argv += ["--ffn-dim", str(args.ffn_dim)]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    if args.torch_dropout:
        env["FAIRSEQ_UNILMV2_TORCH_DROPOUT"] = "1"
    proc = subprocess.run(argv, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{worker} worker failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    args = parse_args()
    if args.worker:
        print(json.dumps(time_both(args) if args.worker == "time" else peak_memory(args)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        data_bin = Path(tmp) / "data-bin"
        binarize(args.text, data_bin)
        timing = run_in_subprocess("time", args, data_bin)
        memory = {task: run_in_subprocess(f"memory:{task}", args, data_bin) for task in TASKS}
    results = {task: {**timing[task], **memory[task]} for task in TASKS}
    ratio = results["pmlm"]["median_s"] / results["masked_lm"]["median_s"]
    ae_ratio = results["pmlm_ae"]["median_s"] / results["masked_lm"]["median_s"]
    size = f"{args.layers} layers x {args.dim} wide, {args.heads} heads, batch {args.batch_size}"
    masks = "torch's" if args.torch_dropout else "fairseq_unilmv2's"
    print(f"pre-training update, {size} x {TOKENS_PER_SAMPLE} tokens, {args.device}, "
          f"pmlm with {masks} CPU dropout masks, "
          f"median of {args.steps} alternating updates:")
    for name, r in results.items():
        print(f"  {name:9s} median {r['median_s']:.3f} s (CPU time {r['median_cpu_s']:.3f} s)  "
              f"input length {r['input_length']:.0f}  "
              f"peak RSS {r['peak_rss_mib']:.0f} MiB"
              + (f"  peak CUDA {r['peak_cuda_mib']:.0f} MiB" if r["peak_cuda_mib"] else ""))
    print(f"  ratio pmlm / masked_lm: {ratio:.2f} of medians, "
          f"{timing['median_paired_ratio']:.2f} median of paired updates, "
          f"{timing['cpu_time_ratio']:.2f} of CPU times (target <= 1.35)")
    print(f"  ratio pmlm --objective ae / masked_lm: {ae_ratio:.2f} of medians, "
          f"{timing['ae_median_paired_ratio']:.2f} median of paired updates, "
          f"{timing['ae_cpu_time_ratio']:.2f} of CPU times (target <= 1.05)")
    print(json.dumps({"benchmark": "pretrain_step", "device": args.device, "layers": args.layers,
                      "dim": args.dim, "heads": args.heads, "batch_size": args.batch_size,
                      "torch_dropout": args.torch_dropout,
                      "tokens_per_sample": TOKENS_PER_SAMPLE, "steps": args.steps,
                      "ratio": round(ratio, 3),
                      "median_paired_ratio": round(timing["median_paired_ratio"], 3),
                      "cpu_time_ratio": round(timing["cpu_time_ratio"], 3),
                      "ae_ratio": round(ae_ratio, 3),
                      "ae_median_paired_ratio": round(timing["ae_median_paired_ratio"], 3),
                      "ae_cpu_time_ratio": round(timing["ae_cpu_time_ratio"], 3),
                      **results}))


if __name__ == "__main__":
    main()
