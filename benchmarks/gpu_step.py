"""One training step of UniLMv2 on a GPU: PMLM pre-training and seq2seq fine-tuning, each with
every attention backend and against its bound (attention given no mask and no bias at all).

Batches come from the plugin's own datasets and collaters (``PMLMDataset``: blockwise masking,
pseudo masks and originals; ``Seq2SeqDataset``: ``[source | target | pseudo]``) over random
token ids. A step is forward + backward under bf16 autocast and a fused AdamW step (fp32 master
weights, as fairseq's ``--bf16`` keeps them), loss read where the criterions read it.

Per task and mode it reports the median step time, text tokens/s (``[SOS] S1 [EOS] S2 [EOS]``
for PMLM; source + target for seq2seq), packed tokens/s, model TFLOP/s, bf16 MFU, the ratio
to the no-mask bound, and on CUDA the host-device syncs of one step (0 is the goal). Model
FLOPs per packed token = 6 x (non-embedding parameters + tied LM head) + 12 x layers x dim x T,
the formula the earlier figures used (it counts the LM head at every packed token, so it
flatters every mode alike). The bound (``nomask``) computes the
wrong model with the same matrix products: ``F.scaled_dot_product_attention`` without any mask
or relative position bias.

    python benchmarks/gpu_step.py                          # CUDA, base size, batch 32
    python benchmarks/gpu_step.py --device cpu --layers 2 --dim 64 --heads 4 --batch 2 \\
        --tps 64 --source-len 48 --target-len 8 --vocab 1000 --steps 2 --modes dense nomask
"""
import argparse
import contextlib
import json
import os
import statistics
import sys
import time
import warnings
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import fairseq_unilmv2  # noqa: E402,F401  (compat fixes, registrations)
from fairseq_unilmv2.data.layout import PSEUDO  # noqa: E402
from synthetic import dictionary, pmlm_dataset, seq2seq_dataset  # noqa: E402
from fairseq_unilmv2.models.unilm_v2 import UniLMv2Config, UniLMv2Model  # noqa: E402
from fairseq_unilmv2.modules import transformer as transformer_module  # noqa: E402

PEAK_BF16_TFLOPS = (("H100", 989), ("H200", 989), ("A100", 312), ("L4", 121), ("A10", 125))


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--vocab", type=int, default=30522)
    parser.add_argument("--batch", type=int, default=32, help="sequences a step")
    parser.add_argument("--tps", type=int, default=512, help="PMLM text tokens a sequence")
    parser.add_argument("--source-len", type=int, default=464, help="seq2seq source tokens")
    parser.add_argument("--target-len", type=int, default=48, help="seq2seq target tokens")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per mode")
    parser.add_argument("--tasks", nargs="+", default=["pmlm", "seq2seq"])
    parser.add_argument("--modes", nargs="+", default=["dense", "flex", "nomask"],
                        help="attention backends to time, and 'nomask' for the bound")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="dense bf16 peak of the card (default: looked up by name)")
    return parser.parse_args()


def first_batches(dataset, batch_size: int, count: int = 4):
    """The collated first ``count`` batches of ``batch_size`` examples."""
    return [dataset.collater([dataset[i] for i in range(b * batch_size, (b + 1) * batch_size)])
            for b in range(count)]


def pmlm_batches(d, args, rng):
    batches = first_batches(pmlm_dataset(d, 4 * args.batch, args.tps, rng), args.batch)
    for batch in batches:
        batch["predicted"] = batch["target"].ne(d.pad())
        batch["labels"] = batch["target"][batch["predicted"]]  # as the pmlm criterion reads them
        batch["text_tokens"] = args.batch * args.tps
    return batches


def seq2seq_batches(d, args, rng):
    dataset = seq2seq_dataset(d, 4 * args.batch, args.source_len, args.target_len, rng)
    batches = first_batches(dataset, args.batch)
    for batch in batches:
        batch["predicted"] = batch["net_input"]["roles"].eq(PSEUDO)
        # Pseudo token j predicts y_j: row-major order of both, as the seq2seq criterion reads.
        batch["labels"] = batch["target"][batch["target"].ne(d.pad())]
        batch["text_tokens"] = args.batch * (args.source_len + args.target_len)
    return batches


@contextlib.contextmanager
def attention_mode(model: UniLMv2Model, mode: str):
    """Set the backend; for 'nomask', attention without mask or bias (the bound)."""
    transformer = model.transformer
    if mode != "nomask":
        transformer.attention_backend = mode
        yield
        return
    transformer.attention_backend = "dense"
    patches = [
        (transformer_module.UniLMv2Transformer, "_layer_bias", lambda self, *a, **k: None),
        (transformer_module.UniLMv2Transformer, "attention_bias", lambda self, *a, **k: None),
        (transformer_module.SelfAttention, "_attend",
         lambda self, q, k, v, bias: F.scaled_dot_product_attention(
             q, k, v, dropout_p=self.attention_dropout if self.training else 0.0)),
    ]
    saved = [(owner, name, owner.__dict__[name]) for owner, name, _ in patches]
    for owner, name, replacement in patches:
        setattr(owner, name, replacement)
    try:
        yield
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


def time_steps(model, optimizer, batches, device, steps: int):
    """Median seconds a step, and on CUDA the host-device syncs of one step after the timed
    ones (``torch.cuda.set_sync_debug_mode``: each sync warns)."""
    def step(batch):
        net_input = {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v
                     for k, v in batch["net_input"].items()}
        predicted = batch["predicted"].to(device, non_blocking=True)
        labels = batch["labels"].to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            logits, _ = model(**net_input, masked_tokens=predicted)
            loss = F.cross_entropy(logits.float(), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    for batch in batches[:2]:  # warm-up: kernels, compilation, allocator
        step(batch)
    sync()
    times = []
    for i in range(steps):
        start = time.perf_counter()
        step(batches[i % len(batches)])
        sync()
        times.append(time.perf_counter() - start)
    syncs = None
    if device.type == "cuda":
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                step(batches[0])
            finally:
                torch.cuda.set_sync_debug_mode("default")
        syncs = sum("synchroniz" in str(w.message) for w in caught)
        sync()
    return statistics.median(times), syncs


def main():
    args = parse_args()
    device = torch.device(args.device)
    rng = np.random.default_rng(0)
    d = dictionary(args.vocab)
    peak = args.peak_tflops
    if peak is None and device.type == "cuda":
        name = torch.cuda.get_device_name()
        peak = next((v for k, v in PEAK_BF16_TFLOPS if k in name), None)
    results = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
               "layers": args.layers, "dim": args.dim, "batch": args.batch, "peak_bf16_tflops": peak}
    makers = {"pmlm": pmlm_batches, "seq2seq": seq2seq_batches}
    for task in args.tasks:
        batches = makers[task](d, args, rng)
        packed = statistics.mean(b["net_input"]["src_tokens"].numel() for b in batches)
        text = batches[0]["text_tokens"]
        for mode in args.modes:
            cfg = UniLMv2Config(encoder_layers=args.layers, encoder_embed_dim=args.dim,
                                encoder_ffn_embed_dim=4 * args.dim,
                                encoder_attention_heads=args.heads, max_positions=512,
                                attention_dropout=0.0 if mode == "flex" else 0.1)
            torch.manual_seed(1)
            model = UniLMv2Model.build_model(cfg, SimpleNamespace(source_dictionary=d))
            model = model.to(device).train()
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4,
                                          fused=device.type == "cuda")
            with attention_mode(model, mode):
                seconds, syncs = time_steps(model, optimizer, batches, device, args.steps)
            embedding = sum(p.numel() for n, p in model.named_parameters()
                            if n.startswith("transformer.embed_"))
            params = sum(p.numel() for p in model.parameters()) - embedding \
                + model.transformer.embed_tokens.weight.numel()
            per_token = 6 * params + 12 * args.layers * args.dim * packed / args.batch
            achieved = per_token * packed / seconds
            results[f"{task}_{mode}"] = {
                "step_s": round(seconds, 4),
                "text_tokens_per_s": round(text / seconds, 1),
                "packed_tokens_per_s": round(packed / seconds, 1),
                "model_tflops_per_s": round(achieved / 1e12, 2),
                "mfu_bf16": round(achieved / (peak * 1e12), 4) if peak else None,
                "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)
                if device.type == "cuda" else None,
                "host_syncs_per_step": syncs,
            }
            print(f"{task:8} {mode:7} step {seconds:.4f} s  text tokens/s "
                  f"{text / seconds:10.0f}  MFU {results[f'{task}_{mode}']['mfu_bf16']}  "
                  f"host syncs {syncs}",
                  flush=True)
            del model, optimizer
            if device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
        bound = results.get(f"{task}_nomask")
        for mode in args.modes:
            if bound and mode != "nomask":
                ratio = results[f"{task}_{mode}"]["step_s"] / bound["step_s"]
                results[f"{task}_{mode}"]["ratio_to_nomask"] = round(ratio, 3)
                print(f"{task:8} {mode:7} / nomask bound: {ratio:.2f}x")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
