"""Beam-search decoding speed: UniLMv2's incremental decoder against no cache and fairseq's own
encoder-decoder ``transformer``.

Three systems decode the same sources with fairseq's ``SequenceGenerator`` (beam 5, target
length forced to --target-len with min/max length):

(a) ``unilm_v2`` with its incremental decoder: the source runs once and its keys and values are
    cached; each step feeds the previous token and one mask token (SPEC 5);
(b) the same weights without any cache: each step is one full packed forward over
    ``[source | target prefix | mask]`` (what a decoder without an incremental state must do);
(c) fairseq's ``transformer`` with the same width, heads and FFN and the same total number of
    layers (half encoder, half decoder), with its own incremental decoder.

Weights are random (speed does not depend on them). Runs of the three alternate in one process so
that the load of a shared machine falls on all alike; each figure is the median over --runs.
(a) and (b) must produce the same hypotheses, which is checked and reported. Ends with one JSON
line.

    python benchmarks/decode.py                                   # 4 layers x 256, CPU
    python benchmarks/decode.py --layers 12 --dim 768 --heads 12 --vocab 30522 --source-len 400
"""
import argparse
import json
import statistics
import sys
import time
from argparse import Namespace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fairseq.data import Dictionary  # noqa: E402
from fairseq.models import (FairseqDecoder, FairseqEncoder, FairseqEncoderDecoderModel,  # noqa: E402
                            transformer)
from fairseq.sequence_generator import SequenceGenerator  # noqa: E402

from fairseq_unilmv2.data.layout import PADDING  # noqa: E402
from fairseq_unilmv2.models.unilm_v2 import (UniLMv2Config, UniLMv2Model,  # noqa: E402
                                             _default_inputs)
from fairseq_unilmv2.modules.transformer import UniLMv2Transformer  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=4,
                        help="UniLMv2 layers; fairseq's transformer gets half encoder, half decoder")
    parser.add_argument("--dim", type=int, default=256, help="hidden size of all models")
    parser.add_argument("--heads", type=int, default=4, help="attention heads of all models")
    parser.add_argument("--ffn-dim", type=int, default=None, help="FFN size (default 4 x dim)")
    parser.add_argument("--vocab", type=int, default=1000, help="dictionary size (words)")
    parser.add_argument("--sentences", type=int, default=8, help="sources decoded per run")
    parser.add_argument("--batch-size", type=int, default=8, help="sources per generate() call")
    parser.add_argument("--source-len", type=int, default=64,
                        help="source length in tokens, [CLS] and [SEP] included")
    parser.add_argument("--target-len", type=int, default=48,
                        help="generated tokens (forced with min/max length), [SEP] excluded")
    parser.add_argument("--beam", type=int, default=5, help="beam size")
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each system")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: robust on a shared machine)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--seed", type=int, default=1, help="seed of weights and sources")
    return parser.parse_args(argv)


class SourceOnlyEncoder(FairseqEncoder):
    """(b)'s encoder: keeps the source tokens; nothing is computed ahead of the decoder."""

    def forward(self, src_tokens, src_lengths=None, **unused):
        return {"src_tokens": [src_tokens]}

    def reorder_encoder_out(self, encoder_out, new_order):
        return {"src_tokens": [encoder_out["src_tokens"][0].index_select(0, new_order)]}


class FullForwardDecoder(FairseqDecoder):
    """(b)'s decoder: no incremental state, one packed forward of the whole model per step over
    ``[source | y1..yt | mask]`` (source padding stays where it is, masked out by its role)."""

    def __init__(self, unilm: UniLMv2Model):
        super().__init__(unilm.decoder.dictionary)
        self.unilm = unilm

    def forward(self, prev_output_tokens, encoder_out=None, **unused):
        source = encoder_out["src_tokens"][0]
        transformer, decoder = self.unilm.transformer, self.unilm.decoder
        src_positions, _, src_roles = _default_inputs(source, transformer.padding_idx)
        source_lengths = src_roles.ne(PADDING).sum(dim=1)
        targets = prev_output_tokens[:, 1:]
        chunk_tokens, positions, roles, steps = decoder._target_chunk(
            targets, 1, 1, source_lengths, targets.size(1) + 1)
        tokens = torch.cat([source, chunk_tokens], dim=1)
        positions = torch.cat([src_positions, positions], dim=1)
        roles = torch.cat([src_roles, roles], dim=1)
        steps = torch.cat([torch.zeros_like(src_roles), steps], dim=1)
        segments = torch.cat([torch.full_like(source, self.unilm.cfg.source_type_id),
                              torch.full_like(chunk_tokens, self.unilm.cfg.target_type_id)], dim=1)
        x, _, _ = transformer(tokens, positions, segments, roles, steps)
        return transformer.lm_head(x[:, -1:]), {"attn": [None]}

    def max_positions(self):
        return self.unilm.max_positions()


class NoCacheUniLM(FairseqEncoderDecoderModel):
    def __init__(self, unilm: UniLMv2Model):
        super().__init__(SourceOnlyEncoder(unilm.decoder.dictionary), FullForwardDecoder(unilm))


def build_dictionary(words: int) -> Dictionary:
    d = Dictionary()
    for i in range(words):
        d.add_symbol(f"w{i}")
    d.add_symbol("<mask>")
    return d


def build_unilm(args, d: Dictionary) -> UniLMv2Model:
    cfg = UniLMv2Config(encoder_layers=args.layers, encoder_embed_dim=args.dim,
                        encoder_ffn_embed_dim=args.ffn_dim, encoder_attention_heads=args.heads,
                        dropout=0.0, attention_dropout=0.0)
    return UniLMv2Model(cfg, UniLMv2Transformer(cfg, len(d), d.pad()), d)


def build_fairseq_transformer(args, d: Dictionary):
    half = max(args.layers // 2, 1)
    model_args = Namespace(
        encoder_layers=half, decoder_layers=half, encoder_embed_dim=args.dim,
        decoder_embed_dim=args.dim, encoder_ffn_embed_dim=args.ffn_dim,
        decoder_ffn_embed_dim=args.ffn_dim, encoder_attention_heads=args.heads,
        decoder_attention_heads=args.heads, share_all_embeddings=True, dropout=0.0,
        max_source_positions=1024, max_target_positions=1024)
    transformer.base_architecture(model_args)
    task = Namespace(source_dictionary=d, target_dictionary=d)
    return transformer.TransformerModel.build_model(model_args, task)


def make_sources(args, d: Dictionary):
    """Right-padded batches of random sources ``[bos] w.. [eos]``, lengths near --source-len."""
    g = torch.Generator().manual_seed(args.seed)
    batches = []
    for start in range(0, args.sentences, args.batch_size):
        rows = min(args.batch_size, args.sentences - start)
        lengths = torch.randint(args.source_len // 2, args.source_len + 1, (rows,), generator=g)
        lengths[0] = args.source_len
        tokens = torch.full((rows, args.source_len), d.pad(), dtype=torch.long)
        for i, n in enumerate(lengths.tolist()):
            body = torch.randint(d.nspecial, len(d) - 1, (n - 2,), generator=g)
            tokens[i, :n] = torch.cat([torch.tensor([d.bos()]), body, torch.tensor([d.eos()])])
        batches.append({"net_input": {"src_tokens": tokens.to(args.device),
                                      "src_lengths": lengths.to(args.device)}})
    return batches


@torch.no_grad()
def decode(model, d: Dictionary, batches, args):
    generator = SequenceGenerator([model], d, beam_size=args.beam, min_len=args.target_len,
                                  max_len_b=args.target_len, max_len=args.target_len + 1)
    hypotheses = []
    start = time.perf_counter()
    for batch in batches:
        hypotheses.extend(beams[0]["tokens"].tolist() for beams in generator.generate([model], batch))
    if args.device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, hypotheses


def main(argv=None):
    args = parse_args(argv)
    args.ffn_dim = args.ffn_dim or 4 * args.dim
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    d = build_dictionary(args.vocab)
    unilm = build_unilm(args, d).to(args.device).eval()
    systems = {
        "incremental": unilm,
        "no_cache": NoCacheUniLM(unilm).to(args.device).eval(),
        "fairseq_transformer": build_fairseq_transformer(args, d).to(args.device).eval(),
    }
    if args.source_len + args.target_len + 1 > unilm.max_positions():
        raise SystemExit(f"--source-len + --target-len + 1 exceeds the {unilm.max_positions()} "
                         "positions of the model")
    batches = make_sources(args, d)
    for model in systems.values():  # warm-up: allocator, thread pools, lazy init
        decode(model, d, batches[:1], argparse.Namespace(**{**vars(args), "target_len": 2}))
    seconds = {name: [] for name in systems}
    outputs = {}
    for run in range(args.runs):
        for name, model in systems.items():
            elapsed, hypotheses = decode(model, d, batches, args)
            seconds[name].append(elapsed)
            outputs[name] = hypotheses
            print(f"run {run + 1}/{args.runs} {name:>20}: {elapsed:7.2f} s "
                  f"({args.sentences / elapsed:6.2f} sentences/s)", flush=True)
    rate = {name: args.sentences / statistics.median(times) for name, times in seconds.items()}
    same = sum(a == b for a, b in zip(outputs["incremental"], outputs["no_cache"]))
    lengths = {len(h) - 1 for h in outputs["incremental"]}
    speedup = rate["incremental"] / rate["no_cache"]
    print(f"sentences/s (median of {args.runs}), beam {args.beam}, target length "
          f"{sorted(lengths)}: incremental {rate['incremental']:.2f}, no cache "
          f"{rate['no_cache']:.2f}, fairseq transformer {rate['fairseq_transformer']:.2f}; "
          f"incremental / no cache = {speedup:.2f}x; identical hypotheses {same}/{args.sentences}")
    print(json.dumps({
        "benchmark": "decode", "device": args.device, "threads": args.threads,
        "layers": args.layers, "dim": args.dim, "heads": args.heads, "ffn_dim": args.ffn_dim,
        "vocab": len(d), "sentences": args.sentences, "batch_size": args.batch_size,
        "source_len": args.source_len, "target_len": args.target_len, "beam": args.beam,
        "runs": args.runs,
        "sentences_per_s": {name: round(value, 3) for name, value in rate.items()},
        "incremental_over_no_cache": round(speedup, 2),
        "incremental_over_fairseq_transformer": round(rate["incremental"]
                                                      / rate["fairseq_transformer"], 2),
        "identical_hypotheses_incremental_vs_no_cache": f"{same}/{args.sentences}",
    }))


if __name__ == "__main__":
    main()
