"""Time one SQuAD fine-tuning update (``squad_span`` on the span head) against fairseq's own
``sentence_prediction`` update (a RoBERTa classification head) on the same ``unilm_v2`` model
and the same batch.

Both updates are forward, backward and an Adam step on the same weights (one model holds both
heads), over the same ``[CLS] question [SEP] context [SEP]`` batch (--batch-size windows of
--seq-len tokens, token types 0 / 1 as the squad task lays them out), alternating in one process
so that the load of a shared machine falls on both alike. The span head reads every token's
final state (a (B, T, 2) projection and two cross-entropies over T), the classification head
only the first: the ratio is what extractive QA costs beyond classification. Prints the median
update time of each over --steps updates, repeated --runs times, the median of the runs' ratios
(target <= 1.10), and one JSON line at the end.

    python benchmarks/squad_step.py                                   # small: 4 layers x 256
    python benchmarks/squad_step.py --layers 12 --dim 768 --heads 12  # base size
"""
import argparse
import json
import statistics
import time
from types import SimpleNamespace

import torch


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--vocab", type=int, default=30522, help="vocabulary size (BERT's)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=384)
    p.add_argument("--question-len", type=int, default=24)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--steps", type=int, default=3, help="timed updates of each, per run")
    p.add_argument("--runs", type=int, default=3, help="repetitions (the median ratio is kept)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    return p.parse_args(argv)


def build(args):
    from fairseq.criterions.sentence_prediction import (SentencePredictionConfig,
                                                        SentencePredictionCriterion)
    from fairseq.data import Dictionary

    import fairseq_unilmv2  # noqa: F401
    from fairseq_unilmv2.criterions.squad_span import SquadSpanCriterion
    from fairseq_unilmv2.models.unilm_v2 import UniLMv2Config, UniLMv2Model
    from fairseq_unilmv2.modules.transformer import UniLMv2Transformer

    dictionary = Dictionary()
    for i in range(args.vocab - len(dictionary) - 1):
        dictionary.add_symbol(f"w{i}")
    dictionary.add_symbol("<mask>")
    cfg = UniLMv2Config(encoder_layers=args.layers, encoder_embed_dim=args.dim,
                        encoder_ffn_embed_dim=4 * args.dim, encoder_attention_heads=args.heads)
    torch.manual_seed(1)
    model = UniLMv2Model(cfg, UniLMv2Transformer(cfg, len(dictionary), dictionary.pad()),
                         dictionary)
    model.register_span_head()
    model.register_classification_head("sentence_classification_head", num_classes=2)
    model = model.to(args.device).train()
    task = SimpleNamespace(target_dictionary=dictionary, source_dictionary=dictionary,
                           label_dictionary=None)
    squad = SquadSpanCriterion(task)
    classify = SentencePredictionCriterion(SentencePredictionConfig(), task)
    return model, dictionary, squad, classify


def batch(args, dictionary):
    g = torch.Generator().manual_seed(0)
    b, t, q = args.batch_size, args.seq_len, args.question_len
    tokens = torch.randint(dictionary.nspecial, len(dictionary) - 1, (b, t), generator=g)
    tokens[:, 0], tokens[:, q + 1], tokens[:, -1] = dictionary.bos(), dictionary.eos(), \
        dictionary.eos()
    segments = torch.zeros_like(tokens)
    segments[:, q + 2:] = 1
    starts = torch.randint(q + 2, t - 10, (b,), generator=g)
    net_input = {"src_tokens": tokens.to(args.device), "segment_labels": segments.to(args.device)}
    span = {"net_input": net_input, "ntokens": b * t, "nsentences": b,
            "target": torch.stack([starts, starts + 3], 1).to(args.device)}
    classify = {"net_input": net_input, "ntokens": b * t, "nsentences": b,
                "target": torch.randint(0, 2, (b,), generator=g).to(args.device)}
    return span, classify


def timed_update(model, optimizer, criterion, sample, device):
    """(wall seconds, process CPU seconds) of one update; CPU time is steadier under load."""
    if device == "cuda":
        torch.cuda.synchronize()
    start, cpu_start = time.perf_counter(), time.process_time()
    optimizer.zero_grad()
    loss, _, _ = criterion(model, sample)
    loss.backward()
    optimizer.step()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, time.process_time() - cpu_start


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    model, dictionary, squad, classify = build(args)
    span_sample, class_sample = batch(args, dictionary)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-5)
    for _ in range(args.warmup):
        timed_update(model, optimizer, squad, span_sample, args.device)
        timed_update(model, optimizer, classify, class_sample, args.device)
    runs = []
    names = ("squad_span", "sentence_prediction")
    for run in range(args.runs):
        times = {name: [] for name in names}
        cpu = {name: [] for name in names}
        for _ in range(args.steps):
            for name, criterion, sample in (("squad_span", squad, span_sample),
                                            ("sentence_prediction", classify, class_sample)):
                wall, cpu_s = timed_update(model, optimizer, criterion, sample, args.device)
                times[name].append(wall)
                cpu[name].append(cpu_s)
        medians = {k: statistics.median(v) for k, v in times.items()}
        cpu_medians = {k: statistics.median(v) for k, v in cpu.items()}
        ratio = medians["squad_span"] / medians["sentence_prediction"]
        cpu_ratio = cpu_medians["squad_span"] / cpu_medians["sentence_prediction"]
        runs.append({**medians, "ratio": ratio, "cpu_ratio": cpu_ratio})
        print(f"run {run + 1}: squad_span {medians['squad_span']:.3f} s, sentence_prediction "
              f"{medians['sentence_prediction']:.3f} s, ratio {ratio:.3f} (CPU time: "
              f"{cpu_medians['squad_span']:.3f} s / {cpu_medians['sentence_prediction']:.3f} s, "
              f"ratio {cpu_ratio:.3f})", flush=True)
    ratio = statistics.median(r["ratio"] for r in runs)
    result = {
        "benchmark": "squad_step", "layers": args.layers, "dim": args.dim, "heads": args.heads,
        "batch_size": args.batch_size, "seq_len": args.seq_len, "device": args.device,
        "threads": args.threads,
        "squad_span_s": statistics.median(r["squad_span"] for r in runs),
        "sentence_prediction_s": statistics.median(r["sentence_prediction"] for r in runs),
        "ratio_median": ratio, "ratio_min": min(r["ratio"] for r in runs),
        "ratio_max": max(r["ratio"] for r in runs),
        "cpu_ratio_median": statistics.median(r["cpu_ratio"] for r in runs),
        "target": 1.10, "meets_target": ratio <= 1.10,
    }
    print(f"squad_span / sentence_prediction: {ratio:.3f} (median of {args.runs} runs; target "
          "<= 1.10)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
