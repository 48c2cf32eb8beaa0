#!/usr/bin/env bash
# GPU throughput of UniLMv2 base: PMLM pre-training (tokens/s and model FLOPs utilisation in
# bf16) and beam-5 decoding (sentences/s, via benchmarks/decode.py). Prints both and ends with
# one JSON line.
#
#   bash benchmarks/gpu.sh                 # on a GPU: base size (12 x 768), 512-token texts
#   bash benchmarks/gpu.sh --dry-run       # anywhere: tiny sizes on the CPU, checks the script
#
# Pre-training: batches come from the real pmlm pipeline (PMLMDataset + its collater: blockwise
# masking, appended pseudo masks and originals, (B, T, T) attention mask) over random token
# blocks; each step is forward + backward under bf16 autocast and a fused AdamW step (fp32
# master weights, as fairseq's --bf16 keeps them). Attention runs through
# F.scaled_dot_product_attention, which picks the fused memory-efficient kernel for an additive
# mask. tokens/s counts the text tokens ([SOS] S1 [EOS] S2 [EOS]) and, separately, all packed
# tokens; MFU = model FLOPs / (time x peak bf16 FLOPs of the card), with model FLOPs per packed
# token = 6 x (non-embedding parameters + LM head) + 12 x layers x dim x T (attention scores).
#
# Environment: PYTHON (default .venv/bin/python), PEAK_TFLOPS (default: looked up from the GPU
# name: H100/H200 989, A100 312; dense bf16), BATCH (sequences a step, default 32), STEPS
# (timed steps, default 20).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3
DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
cd "$ROOT"

if [ "$DRY" = 1 ]; then
    DEVICE=cpu; LAYERS=2; DIM=64; HEADS=4; TPS=64; BATCH="${BATCH:-4}"; STEPS="${STEPS:-2}"
    VOCAB=1000; DECODE=(--device cpu --layers 2 --dim 64 --heads 4 --vocab 1000 --sentences 4
                        --batch-size 4 --source-len 32 --target-len 8 --runs 1)
else
    DEVICE=cuda; LAYERS=12; DIM=768; HEADS=12; TPS=512; BATCH="${BATCH:-32}"; STEPS="${STEPS:-20}"
    VOCAB=30522; DECODE=(--device cuda --layers 12 --dim 768 --heads 12 --vocab 30522
                         --sentences 256 --batch-size 64 --source-len 464 --target-len 48 --runs 3)
fi

echo "== PMLM pre-training, $LAYERS x $DIM, $TPS-token texts, batch $BATCH, $DEVICE"
PRETRAIN_JSON="$(DEVICE=$DEVICE LAYERS=$LAYERS DIM=$DIM HEADS=$HEADS TPS=$TPS BATCH=$BATCH \
    STEPS=$STEPS VOCAB=$VOCAB PEAK_TFLOPS="${PEAK_TFLOPS:-}" OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}" \
    "$PYTHON" - <<'EOF'
import json, os, statistics, time

import numpy as np
import torch
from fairseq.data import Dictionary

import fairseq_unilmv2  # noqa: F401  (compat fixes, registrations)
from fairseq_unilmv2.data.pmlm_dataset import SPECIALS_PER_EXAMPLE, PMLMDataset
from fairseq_unilmv2.models.unilm_v2 import UniLMv2Config, UniLMv2Model
from fairseq_unilmv2.modules.transformer import UniLMv2Transformer

env = {k: os.environ[k] for k in ("DEVICE", "LAYERS", "DIM", "HEADS", "TPS", "BATCH", "STEPS", "VOCAB")}
device = torch.device(env["DEVICE"])
layers, dim, heads, tps = int(env["LAYERS"]), int(env["DIM"]), int(env["HEADS"]), int(env["TPS"])
batch, steps = int(env["BATCH"]), int(env["STEPS"])

dictionary = Dictionary()
for i in range(int(env["VOCAB"]) - len(dictionary) - 1):
    dictionary.add_symbol(f"w{i}")
mask_idx = dictionary.add_symbol("<mask>")
rng = np.random.default_rng(0)
text_len = tps - SPECIALS_PER_EXAMPLE
blocks = [rng.integers(dictionary.nspecial, mask_idx, size=text_len) for _ in range(batch * 4)]
dataset = PMLMDataset(blocks, np.full(len(blocks), text_len), dictionary, mask_idx, seed=1)
batches = [dataset.collater([dataset[i] for i in range(b * batch, (b + 1) * batch)])
           for b in range(4)]

cfg = UniLMv2Config(encoder_layers=layers, encoder_embed_dim=dim, encoder_ffn_embed_dim=4 * dim,
                    encoder_attention_heads=heads, max_positions=max(tps, 512))
model = UniLMv2Model(cfg, UniLMv2Transformer(cfg, len(dictionary), dictionary.pad()),
                     dictionary).to(device).train()
fused = device.type == "cuda"
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=fused)
amp_dtype = torch.bfloat16


def step(sample):
    net_input = {k: v.to(device, non_blocking=True) for k, v in sample["net_input"].items()}
    target = sample["target"].to(device)
    predicted = target.ne(dictionary.pad())
    with torch.autocast(device.type, dtype=amp_dtype):
        logits, _ = model(**net_input, masked_tokens=predicted)
        loss = torch.nn.functional.cross_entropy(logits.float(), target[predicted])
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss


def sync():
    if device.type == "cuda":
        torch.cuda.synchronize()


for b in batches[:2]:  # warm-up: kernels, allocator
    step(b)
sync()
times, packed_tokens, text_tokens = [], [], []
for i in range(steps):
    sample = batches[i % len(batches)]
    start = time.perf_counter()
    step(sample)
    sync()
    times.append(time.perf_counter() - start)
    packed_tokens.append(int(sample["net_input"]["src_tokens"].numel()))
    text_tokens.append(len(sample["id"]) * tps)

embedding = sum(p.numel() for n, p in model.named_parameters()
                if n.startswith("transformer.embed_"))
vocab_head = model.transformer.embed_tokens.weight.numel()  # tied LM head: used, not counted above
dense_params = sum(p.numel() for p in model.parameters()) - embedding + vocab_head
packed_len = statistics.mean(p / batch for p in packed_tokens)
flops_per_token = 6 * dense_params + 12 * layers * dim * packed_len
median = statistics.median(times)
median_packed = statistics.median(packed_tokens)
achieved = flops_per_token * median_packed / median
peak = os.environ.get("PEAK_TFLOPS")
if not peak and device.type == "cuda":
    name = torch.cuda.get_device_name()
    peak = next((v for k, v in (("H100", 989), ("H200", 989), ("A100", 312), ("L4", 121),
                                ("A10", 125)) if k in name), None)
result = {
    "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
    "layers": layers, "dim": dim, "batch": batch, "text_tokens_per_sequence": tps,
    "packed_tokens_per_sequence": round(packed_len, 1), "median_step_s": round(median, 4),
    "text_tokens_per_s": round(statistics.median(text_tokens) / median, 1),
    "packed_tokens_per_s": round(median_packed / median, 1),
    "model_tflops_per_s": round(achieved / 1e12, 2),
    "mfu_bf16": round(achieved / (float(peak) * 1e12), 4) if peak else None,
    "peak_bf16_tflops": float(peak) if peak else None,
    "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)
    if device.type == "cuda" else None,
}
print(json.dumps(result))
EOF
)"
echo "$PRETRAIN_JSON"

echo "== beam-5 decoding (benchmarks/decode.py ${DECODE[*]})"
DECODE_OUT="$(OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}" "$PYTHON" benchmarks/decode.py "${DECODE[@]}")"
echo "$DECODE_OUT"
DECODE_JSON="$(echo "$DECODE_OUT" | tail -n 1)"

echo "{\"pretrain\": $PRETRAIN_JSON, \"decode\": $DECODE_JSON, \"dry_run\": $([ "$DRY" = 1 ] && echo true || echo false)}"
