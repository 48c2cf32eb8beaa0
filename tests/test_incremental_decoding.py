"""Incremental decoding (SPEC 5) against one full packed forward over [source | prefix | mask].

A batch whose sources differ in length (right-padded) is decoded step by step through
``model.encoder`` / ``model.decoder`` with an incremental state; at every step the next-token
log-probabilities must equal (1e-5) those of the packed model forward over the unpadded
``[source | y1..yt | <mask>]`` of each example, laid out by the fine-tuning code.
"""
import numpy as np
import pytest
import torch
from fairseq import search
from fairseq.sequence_generator import SequenceGenerator
from fairseq.sequence_scorer import SequenceScorer

from fairseq_unilmv2.data.layout import collate_layouts
from fairseq_unilmv2.data.seq2seq_dataset import seq2seq_layout
from helpers import tiny_unilm_model

TOLERANCE = 1e-5


def tiny_model():
    model, d = tiny_unilm_model(vocab_words=40)
    # Non-zero relative position bias, so that a wrong position id changes the result.
    torch.nn.init.normal_(model.transformer.rel_pos_bias.proj.weight, std=0.5)
    return model.double(), d


def sources_and_targets(d, lengths=(7, 3, 5), target_len=6, seed=0):
    rng = np.random.RandomState(seed)
    words = np.arange(d.nspecial, len(d) - 1)
    sources = [np.concatenate([[d.bos()], rng.choice(words, n - 2), [d.eos()]]) for n in lengths]
    targets = [rng.choice(words, target_len) for _ in lengths]
    return sources, targets


def right_pad(rows, pad):
    out = torch.full((len(rows), max(len(r) for r in rows)), pad, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, :len(row)] = torch.as_tensor(row)
    return out


def packed_next_token_lprobs(model, d, sources, prefixes):
    """log p(y_{t+1} | source, y1..yt) from one packed forward per batch, mask at the end."""
    mask_idx = d.index("<mask>")
    layouts = [seq2seq_layout(src, np.asarray(prefix, dtype=np.int64), np.array([mask_idx]),
                              source_type_id=0, target_type_id=1,
                              first_pseudo_step=len(prefix) + 1)
               for src, prefix in zip(sources, prefixes)]
    batch = collate_layouts(layouts, d.pad())
    roles = batch["roles"]
    last = torch.tensor([len(layout.tokens) - 1 for layout in layouts])
    logits, _ = model(**batch)
    assert roles[torch.arange(len(layouts)), last].eq(1).all()  # the read position is PSEUDO
    return torch.log_softmax(logits[torch.arange(len(layouts)), last], dim=-1)


@torch.no_grad()
def test_incremental_steps_equal_packed_forward_with_padded_sources():
    model, d = tiny_model()
    sources, targets = sources_and_targets(d)
    src_tokens = right_pad(sources, d.pad())
    encoder_out = model.encoder(src_tokens)
    state = {}
    prev = torch.full((len(sources), 1), d.eos(), dtype=torch.long)
    for t in range(targets[0].size + 1):
        out, _ = model.decoder(prev, encoder_out=encoder_out, incremental_state=state)
        incremental = torch.log_softmax(out[:, -1], dim=-1)
        packed = packed_next_token_lprobs(model, d, sources, [y[:t] for y in targets])
        assert torch.allclose(incremental, packed, atol=TOLERANCE, rtol=0), f"step {t}"
        # The decoder without a cache (all positions at once) agrees as well.
        full, _ = model.decoder(prev, encoder_out=encoder_out)
        assert torch.allclose(torch.log_softmax(full[:, -1], -1), packed, atol=TOLERANCE, rtol=0)
        if t < targets[0].size:
            prev = torch.cat([prev, torch.tensor([[y[t]] for y in targets])], dim=1)


@torch.no_grad()
def test_reordered_cache_follows_its_rows():
    """Beam search reorders the cache: after a reorder, each row decodes as its new source."""
    model, d = tiny_model()
    sources, targets = sources_and_targets(d, lengths=(6, 4, 9), target_len=4, seed=1)
    order = torch.tensor([2, 0, 0])  # duplicate a row and drop one, as beams do
    encoder_out = model.encoder(right_pad(sources, d.pad()))
    state = {}
    prev = torch.full((3, 1), d.eos(), dtype=torch.long)
    for t in range(2):
        model.decoder(prev, encoder_out=encoder_out, incremental_state=state)
        prev = torch.cat([prev, torch.tensor([[y[t]] for y in targets])], dim=1)
    model.decoder.reorder_incremental_state_scripting(state, order)
    encoder_out = model.encoder.reorder_encoder_out(encoder_out, order)
    out, _ = model.decoder(prev[order], encoder_out=encoder_out, incremental_state=state)
    packed = packed_next_token_lprobs(model, d, [sources[i] for i in order],
                                      [targets[i][:2] for i in order])
    assert torch.allclose(torch.log_softmax(out[:, -1], -1), packed, atol=TOLERANCE, rtol=0)


@torch.no_grad()
def test_source_cache_is_copied_only_when_rows_change_source():
    """Beam search reorders among the beams of each sentence at every step: those rows hold
    copies of one source, so the cache is kept; dropping a finished sentence does copy."""
    model, d = tiny_model()
    sources, _ = sources_and_targets(d, lengths=(6, 4), seed=4)
    encoder = model.encoder
    expanded = encoder.reorder_encoder_out(encoder(right_pad(sources, d.pad())),
                                           torch.tensor([0, 0, 0, 1, 1, 1]))
    assert expanded["source_ids"][0].tolist() == [0, 0, 0, 1, 1, 1]
    within = encoder.reorder_encoder_out(expanded, torch.tensor([2, 2, 0, 4, 3, 3]))
    assert within is expanded
    shrunk = encoder.reorder_encoder_out(expanded, torch.tensor([4, 3, 3]))
    assert shrunk["source_ids"][0].tolist() == [1, 1, 1]
    for key, tensors in shrunk.items():
        for tensor, full in zip(tensors, expanded[key]):
            assert torch.equal(tensor, full[3:6]), key


@torch.no_grad()
@pytest.mark.parametrize("options", [dict(beam_size=3), dict(beam_size=2, no_repeat_ngram_size=2),
                                     dict(beam_size=1, sampling_topk=5)])
def test_sequence_generator_scores_equal_packed_forward(options):
    """fairseq's SequenceGenerator drives the decoder unchanged: every hypothesis' per-token
    scores are the packed forward's log-probabilities of its tokens."""
    model, d = tiny_model()
    sources, _ = sources_and_targets(d, lengths=(8, 3, 5), seed=2)
    torch.manual_seed(3)
    options = dict(options)
    if "sampling_topk" in options:
        options["search_strategy"] = search.Sampling(d, sampling_topk=options.pop("sampling_topk"))
    generator = SequenceGenerator([model], d, max_len_b=5, min_len=2, **options)
    sample = {"net_input": {"src_tokens": right_pad(sources, d.pad()),
                            "src_lengths": torch.tensor([len(s) for s in sources])}}
    hypos = generator.generate([model], sample)
    for i, beams in enumerate(hypos):
        for hypo in beams[:2]:
            tokens = hypo["tokens"].tolist()
            for t, token in enumerate(tokens[:-1]):  # the final eos may be forced
                lprobs = packed_next_token_lprobs(model, d, [sources[i]], [tokens[:t]])[0]
                assert abs(float(hypo["positional_scores"][t]) - float(lprobs[token])) < 1e-4


@torch.no_grad()
def test_sequence_scorer_scores_references_as_the_packed_forward():
    """fairseq-generate --score-reference: SequenceScorer calls the model with fairseq's
    prev_output_tokens; every reference token gets the packed forward's log-probability,
    right-padded references of different lengths included."""
    model, d = tiny_model()
    sources, targets = sources_and_targets(d, lengths=(8, 3, 5), seed=5)
    references = [np.append(y[:n], d.eos()) for y, n in zip(targets, (6, 2, 4))]
    target = right_pad(references, d.pad())
    prev_output_tokens = right_pad([np.concatenate([[d.eos()], r[:-1]]) for r in references],
                                   d.pad())
    sample = {"net_input": {"src_tokens": right_pad(sources, d.pad()),
                            "src_lengths": torch.tensor([len(s) for s in sources]),
                            "prev_output_tokens": prev_output_tokens},
              "target": target}
    hypos = SequenceScorer(d).generate([model], sample)
    for i, reference in enumerate(references):
        scores = hypos[i][0]["positional_scores"]
        assert hypos[i][0]["tokens"].tolist() == reference.tolist()
        for t, token in enumerate(reference):
            lprobs = packed_next_token_lprobs(model, d, [sources[i]], [reference[:t]])[0]
            assert abs(float(scores[t]) - float(lprobs[token])) < 1e-6


@torch.no_grad()
def test_generation_is_capped_to_the_position_table(caplog):
    """A source of the full --max-source-positions budget, and a generator asking for 200
    tokens: generation stops where the position table ends instead of crashing."""
    from argparse import Namespace

    from fairseq_unilmv2.tasks.unilm_seq2seq import UniLMSeq2SeqConfig, UniLMSeq2SeqTask

    model, d = tiny_model()
    task = UniLMSeq2SeqTask(UniLMSeq2SeqConfig(max_source_positions=500), d)
    room = model.max_positions() - 500  # 12 target tokens, [SEP] included
    # min_len forces decoding right up to the last row of the position table.
    generator = task.build_generator([model], Namespace(beam=2, max_len_a=0, max_len_b=200,
                                                        min_len=room - 1))
    assert "capped at 11" in caplog.text
    source = np.concatenate([[d.bos()], np.full(498, d.index("w3")), [d.eos()]])
    sample = {"net_input": {"src_tokens": torch.tensor([source]),
                            "src_lengths": torch.tensor([500])}}
    hypos = task.inference_step(generator, [model], sample)
    assert len(hypos[0][0]["tokens"]) == room
    with pytest.raises(ValueError, match="--min-len 20 exceeds the 11 target tokens"):
        task.build_generator([model], Namespace(beam=2, max_len_b=200, min_len=20))
