"""Per-epoch ``wall`` against ``train_wall`` of a real fairseq-train run with many short epochs.

Issue 14 measured stalls of 40-140 s at epoch starts of ``--task pmlm`` with data-loader
workers, outside the training step (``train_wall``); compat fix 9 removed their cause (the
workers of each epoch were left to the garbage collector, which stopped them 5 s per worker).
This runs the issue's reproduction on the CPU: plain text (the first 3,000 non-empty lines of
Botchan from ../shared/data, or --text) binarized with ``fairseq-preprocess --only-source``,
then a 1-layer, 32-wide model trained for --epochs epochs of batches of 8 with --workers
data-loader workers, and for every epoch prints the wall-clock interval since the previous
epoch summary (timed here: fairseq rounds its ``wall`` to whole seconds), its train_wall (logged
at full precision through a launcher; nothing else changes), the time outside the training
step, the 1-minute load average when the summary arrived, and the epoch's loss (same seed,
same losses: compare checkouts with it).

A stall shows as an interval far above its train_wall (issue 14's acceptance: no interval above
twice its train_wall). Epoch 1's interval also holds the start-up (model, data, first worker
start), so it is printed but left out of the verdict. The machine may be shared: the load is
printed beside every epoch; a real stall is tens of seconds outside train_wall, repeatably at
epoch starts. To see the stall itself, run this script from a checkout before compat fix 9.

    python benchmarks/epoch_stall.py                         # pmlm, 14 epochs, 4 workers
    python benchmarks/epoch_stall.py --task masked_lm        # fairseq's masked_lm + roberta
    python benchmarks/epoch_stall.py --epochs 20 --workers 2
Ends with one JSON line.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TEXT = REPO.parent / "shared" / "data" / "botchan" / "botchan.txt"

# fairseq-train with the logged meters at full precision instead of whole seconds.
FULL_PRECISION_TRAIN = str(REPO / "scripts" / "train_full_precision.py")
EPOCH_SUMMARY = re.compile(r"\| train \| epoch (\d+) \| loss ([0-9.e+-]+) \|.*"
                           r"\| train_wall ([0-9.]+) \| wall ([0-9.]+)")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", choices=["pmlm", "masked_lm"], default="pmlm")
    parser.add_argument("--epochs", type=int, default=14)
    parser.add_argument("--workers", type=int, default=4, help="--num-workers")
    parser.add_argument("--lines", type=int, default=3000, help="non-empty lines of --text")
    parser.add_argument("--text", type=Path, default=DEFAULT_TEXT, help="plain text, a line each")
    parser.add_argument("--threads", type=int, default=None,
                        help="OMP_NUM_THREADS of the run (default: as in the environment)")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds for the whole run")
    return parser.parse_args(argv)


def fairseq_cli(name: str) -> str:
    script = Path(sys.executable).parent / name
    return str(script) if script.exists() else name


def binarize(args, workdir: Path) -> Path:
    if not args.text.exists():
        raise SystemExit(f"{args.text} not found: pass --text (plain text, one line each); "
                         "the default is the Botchan text of ../shared/data")
    with open(args.text, encoding="utf-8") as f:
        lines = [line for line in f if line.strip()][:args.lines]
    raw = workdir / "train.txt"
    raw.write_text("".join(lines), encoding="utf-8")
    destdir = workdir / "data-bin"
    subprocess.run([fairseq_cli("fairseq-preprocess"), "--only-source", "--trainpref", str(raw),
                    "--destdir", str(destdir), "--workers", "1"],
                   check=True, capture_output=True, text=True)
    return destdir


def train_command(args, data_bin: Path):
    model = (["--user-dir", str(REPO / "fairseq_unilmv2"), "--task", "pmlm",
              "--criterion", "pmlm", "--arch", "unilm_v2_base"] if args.task == "pmlm" else
             ["--task", "masked_lm", "--criterion", "masked_lm", "--arch", "roberta_base"])
    return [sys.executable, FULL_PRECISION_TRAIN, str(data_bin), *model,
            "--encoder-layers", "1", "--encoder-embed-dim", "32", "--encoder-ffn-embed-dim", "64",
            "--encoder-attention-heads", "2", "--tokens-per-sample", "64",
            "--max-positions", "128", "--batch-size", "8", "--optimizer", "adam", "--lr", "5e-4",
            "--max-epoch", str(args.epochs), "--cpu", "--no-save", "--disable-validation",
            "--log-format", "simple", "--num-workers", str(args.workers), "--seed", "1"]


def run(args, data_bin: Path):
    """Per epoch: (epoch, interval s, train_wall s, load1 at the summary, loss).

    fairseq rounds its cumulative ``wall`` to whole seconds whatever the log precision, so the
    interval is timed here, from one epoch summary line to the next as they arrive (the first
    from the launch, so it holds the start-up)."""
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    if args.threads is not None:
        env["OMP_NUM_THREADS"] = str(args.threads)
    proc = subprocess.Popen(train_command(args, data_bin), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=str(data_bin.parent))
    epochs, tail = [], []
    previous = time.monotonic()
    deadline = previous + args.timeout
    for line in proc.stdout:
        tail = (tail + [line])[-40:]
        match = EPOCH_SUMMARY.search(line)
        if match:
            now = time.monotonic()
            epoch, loss, train_wall = int(match[1]), float(match[2]), float(match[3])
            interval, load = now - previous, os.getloadavg()[0]
            previous = now
            epochs.append((epoch, interval, train_wall, load, loss))
            print(f"epoch {epoch:3d}  wall {interval:8.2f} s  train_wall {train_wall:7.2f} s  "
                  f"outside {interval - train_wall:7.2f} s  load {load:5.2f}  loss {loss:.4f}",
                  flush=True)
        if time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"fairseq-train ran past --timeout {args.timeout} s")
    if proc.wait() != 0:
        raise SystemExit(f"fairseq-train failed ({proc.returncode}):\n{''.join(tail)}")
    if len(epochs) != args.epochs:
        raise SystemExit(f"found {len(epochs)} epoch summaries, expected {args.epochs}:\n"
                         f"{''.join(tail)}")
    return epochs


def main(argv=None):
    args = parse_args(argv)
    if args.epochs < 2:
        raise SystemExit("--epochs must be at least 2 (epoch 1 holds the start-up)")
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="epoch_stall_") as tmp:
        epochs = run(args, binarize(args, Path(tmp)))
    later = epochs[1:]
    worst = max(later, key=lambda e: e[1] / max(e[2], 1e-9))
    outside = max(later, key=lambda e: e[1] - e[2])
    ratio = worst[1] / max(worst[2], 1e-9)
    print(f"{args.task}, {args.workers} workers: worst epoch {worst[0]} wall / train_wall "
          f"= {ratio:.2f}; most time outside train_wall: {outside[1] - outside[2]:.2f} s "
          f"(epoch {outside[0]}); load {load_before:.2f} before")
    print(json.dumps({
        "benchmark": "epoch_stall", "task": args.task, "workers": args.workers,
        "epochs": args.epochs,
        "per_epoch": [{"epoch": e, "wall_s": round(w, 3), "train_wall_s": round(t, 3),
                       "load1": round(load, 2), "loss": loss} for e, w, t, load, loss in epochs],
        "max_wall_over_train_wall": round(ratio, 3), "worst_epoch": worst[0],
        "max_outside_train_wall_s": round(outside[1] - outside[2], 3),
        "stall": ratio > 2.0, "load1_before": round(load_before, 2),
        "load1_max": round(max(e[3] for e in epochs), 2),
    }))


if __name__ == "__main__":
    main()
