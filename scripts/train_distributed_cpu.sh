#!/usr/bin/env bash
# Data-parallel fairseq-train on N CPU processes of this machine (torch.distributed, gloo).
#
#   scripts/train_distributed_cpu.sh [-n NPROC] [-p PORT] -- DATA --user-dir fairseq_unilmv2 \
#       --task pmlm --criterion pmlm --arch unilm_v2_base ... --save-dir checkpoints
#
# Everything after `--` goes to fairseq-train unchanged; the script adds what CPU training needs:
# one process per rank with an explicit --distributed-rank, a loopback tcp:// rendezvous,
# --distributed-backend gloo, --distributed-no-spawn and --cpu, and --ddp-backend pytorch_ddp
# (torch's DistributedDataParallel, what fairseq uses on GPUs) unless the arguments name a
# --ddp-backend of their own (e.g. legacy_ddp).
# (Plain --distributed-world-size on a CPU-only machine makes fairseq spawn
# torch.cuda.device_count() == 0 processes, and torchrun's env:// path divides by it.)
#
# N processes with --update-freq U train the same model as one process with --update-freq N*U:
# rank r takes batches r, r+N, ... and the gradients are summed before each update.
# Rank 0 logs and writes the checkpoints; the other ranks print warnings only. If one rank
# fails, the others are stopped and the script exits with that rank's status. Restarting the
# same command resumes from <save-dir>/checkpoint_last.pt, as fairseq-train does.
#
# Environment: FAIRSEQ_TRAIN (default: fairseq-train next to the running python, else on PATH),
# OMP_NUM_THREADS (default 1 per process, so N processes do not fight over the cores).
set -euo pipefail

# The header above, up to the first line that is not a comment: --help prints all of it to
# stdout (status 0); a usage error prints its first paragraphs to stderr (status 2).
header() { sed -n '2,/^[^#]/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }
usage() { header | sed -n '1,/^Everything after/p' | sed '$d' >&2; exit 2; }

NPROC=2
PORT=""
while [ $# -gt 0 ]; do
    case "$1" in
        -n|--nproc) NPROC="$2"; shift 2 ;;
        -p|--port) PORT="$2"; shift 2 ;;
        --) shift; break ;;
        -h|--help) header; exit 0 ;;
        *) echo "train_distributed_cpu.sh: unknown option '$1' (fairseq-train arguments go after --)" >&2
           usage ;;
    esac
done
[ $# -gt 0 ] || usage
if ! [[ "$NPROC" =~ ^[1-9][0-9]*$ ]]; then
    echo "train_distributed_cpu.sh: -n needs a positive number of processes, got '$NPROC'" >&2
    exit 2
fi

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -z "${FAIRSEQ_TRAIN:-}" ]; then
    if [ -x "$ROOT/.venv/bin/fairseq-train" ]; then FAIRSEQ_TRAIN="$ROOT/.venv/bin/fairseq-train"
    else FAIRSEQ_TRAIN="fairseq-train"; fi
fi
PYTHON="$(dirname "$FAIRSEQ_TRAIN")/python"
[ -x "$PYTHON" ] || PYTHON=python3
if [ -z "$PORT" ]; then
    # A port the kernel says is free on the loopback interface right now.
    PORT="$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
fi
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" CUDA_VISIBLE_DEVICES=""

# Each rank runs in its own process group (job control), so that stopping a rank also stops
# what it started (data-loader workers).
set -m
PIDS=()
stop_all() {
    for pid in "${PIDS[@]}"; do kill -- "-$pid" 2>/dev/null || true; done
}
trap 'stop_all; exit 130' INT TERM

# fairseq's default DDP backend, as on GPUs, unless the user's arguments name one.
DDP_BACKEND=(--ddp-backend pytorch_ddp)
for arg in "$@"; do
    case "$arg" in --ddp-backend|--ddp-backend=*) DDP_BACKEND=() ;; esac
done

for ((rank = 0; rank < NPROC; rank++)); do
    "$FAIRSEQ_TRAIN" "$@" --cpu \
        --distributed-world-size "$NPROC" --distributed-rank "$rank" \
        --distributed-init-method "tcp://127.0.0.1:$PORT" --distributed-backend gloo \
        ${DDP_BACKEND[@]+"${DDP_BACKEND[@]}"} --distributed-no-spawn &
    PIDS+=("$!")
done

# Wait for every rank; the first failure stops the rest (a lone rank would hang in gloo).
status=0
remaining=$NPROC
while [ "$remaining" -gt 0 ]; do
    if wait -n; then
        remaining=$((remaining - 1))
    else
        status=$?
        echo "train_distributed_cpu.sh: a rank exited with status $status; stopping the others" >&2
        stop_all
        wait || true
        break
    fi
done
exit "$status"
