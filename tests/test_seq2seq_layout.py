"""The seq2seq fine-tuning layout (SPEC 4): mask, positions and token types against a worked
example written out by hand, the pseudo-token corruption, and truncation of long inputs."""
import logging

import numpy as np
import pytest
from fairseq.data import Dictionary, ListDataset

from fairseq_unilmv2.data.layout import PSEUDO, attention_mask
from fairseq_unilmv2.data.seq2seq_dataset import Seq2SeqDataset, Seq2SeqInferenceDataset
from fairseq_unilmv2.tasks.unilm_seq2seq import (DEFAULT_SOURCE_POSITIONS, DEFAULT_TARGET_POSITIONS,
                                                 UniLMSeq2SeqConfig, check_probabilities)


def make_dictionary():
    d = Dictionary()
    for word in "s1 s2 s3 s4 s5 s6 s7 s8 y1 y2 y3".split():
        d.add_symbol(word)
    return d, d.add_symbol("<mask>")


def make_dataset(pairs, **cfg_overrides):
    """A Seq2SeqDataset over (source words, target words) pairs, binarized as fairseq does."""
    d, mask_idx = make_dictionary()
    src = [d.encode_line(s, add_if_not_exist=False).long() for s, _ in pairs]
    tgt = [d.encode_line(t, add_if_not_exist=False).long() for _, t in pairs]
    # The task fills unset budgets (their defaults, or what fits the model); here, the defaults.
    cfg = UniLMSeq2SeqConfig(**{"max_source_positions": DEFAULT_SOURCE_POSITIONS,
                                "max_target_positions": DEFAULT_TARGET_POSITIONS, **cfg_overrides})
    dataset = Seq2SeqDataset("test", ListDataset(src, np.array([len(s) for s in src])),
                             ListDataset(tgt, np.array([len(t) for t in tgt])), d, mask_idx, cfg,
                             seed=1, shuffle=False)
    return dataset, d, mask_idx


NO_CORRUPTION = dict(target_mask_prob=0.0, pseudo_mask_prob=1.0, pseudo_random_prob=0.0,
                     pseudo_keep_prob=0.0)


def test_worked_example_mask_positions_and_types():
    # Example 0: source "s1 s2", target "y1 y2" -> [CLS] s1 s2 [SEP] | y1 y2 [SEP] | P P P
    # Example 1: source "s3",    target "y3"    -> [CLS] s3 [SEP]    | y3 [SEP]    | P P
    dataset, d, mask = make_dataset([("s1 s2", "y1 y2"), ("s3", "y3")], **NO_CORRUPTION)
    batch = dataset.collater([dataset[0], dataset[1]])
    net = batch["net_input"]
    bos, eos, pad = d.bos(), d.eos(), d.pad()
    s1, s2, s3, y1, y2, y3 = (d.index(w) for w in "s1 s2 s3 y1 y2 y3".split())

    assert net["src_tokens"].tolist() == [
        [bos, s1, s2, eos, y1, y2, eos, mask, mask, mask],
        [bos, s3, eos, y3, eos, mask, mask, pad, pad, pad],
    ]
    # Target j and its pseudo share position n + j - 1 (n = 4 and 3); padding gets 0.
    assert net["positions"].tolist() == [
        [0, 1, 2, 3, 4, 5, 6, 4, 5, 6],
        [0, 1, 2, 3, 4, 3, 4, 0, 0, 0],
    ]
    assert net["segment_labels"].tolist() == [
        [0, 0, 0, 0, 1, 1, 1, 1, 1, 1],
        [0, 0, 0, 1, 1, 1, 1, 0, 0, 0],
    ]
    #       keys: S  S  S  S  Y1 Y2 Y3 P1 P2 P3
    expected_0 = [[1, 1, 1, 1, 0, 0, 0, 0, 0, 0],  # source rows: the source only
                  [1, 1, 1, 1, 0, 0, 0, 0, 0, 0],
                  [1, 1, 1, 1, 0, 0, 0, 0, 0, 0],
                  [1, 1, 1, 1, 0, 0, 0, 0, 0, 0],
                  [1, 1, 1, 1, 1, 0, 0, 0, 0, 0],  # y1: source + targets <= 1
                  [1, 1, 1, 1, 1, 1, 0, 0, 0, 0],  # y2
                  [1, 1, 1, 1, 1, 1, 1, 0, 0, 0],  # [SEP]
                  [1, 1, 1, 1, 0, 0, 0, 1, 0, 0],  # P1: source + itself
                  [1, 1, 1, 1, 1, 0, 0, 0, 1, 0],  # P2: source + y1 + itself
                  [1, 1, 1, 1, 1, 1, 0, 0, 0, 1]]  # P3: source + y1 y2 + itself
    #       keys: S  S  S  Y3 E  P1 P2 pad pad pad
    expected_1 = [[1, 1, 1, 0, 0, 0, 0, 0, 0, 0],
                  [1, 1, 1, 0, 0, 0, 0, 0, 0, 0],
                  [1, 1, 1, 0, 0, 0, 0, 0, 0, 0],
                  [1, 1, 1, 1, 0, 0, 0, 0, 0, 0],
                  [1, 1, 1, 1, 1, 0, 0, 0, 0, 0],
                  [1, 1, 1, 0, 0, 1, 0, 0, 0, 0],
                  [1, 1, 1, 1, 0, 0, 1, 0, 0, 0],
                  [1, 1, 1, 0, 0, 0, 0, 0, 0, 0],  # padding rows see the source (no empty
                  [1, 1, 1, 0, 0, 0, 0, 0, 0, 0],  # softmax row) and no one sees padding
                  [1, 1, 1, 0, 0, 0, 0, 0, 0, 0]]
    assert attention_mask(net["roles"], net["steps"]).int().tolist() == [expected_0, expected_1]

    assert net["src_lengths"].tolist() == [10, 7]
    assert net["roles"].eq(PSEUDO).int().tolist() == [[0] * 7 + [1] * 3,
                                                      [0] * 5 + [1] * 2 + [0] * 3]
    assert batch["target"].tolist() == [[y1, y2, eos], [y3, eos, pad]]
    assert batch["ntokens"] == 5
    # fairseq-generate reads the plain sources from here.
    assert batch["generation_input"]["src_tokens"].tolist() == [[bos, s1, s2, eos],
                                                                [bos, s3, eos, pad]]


def test_corruption_rates_and_target_replacement():
    pairs = [("s1", "y1 y2 y3 y1 y2 y3 y1 y2 y3")] * 300
    dataset, d, mask = make_dataset(pairs, max_target_positions=16)  # defaults: 0.5, 0.8/0.1/0.1
    pseudo, inputs, gold = [], [], []
    for i in range(len(dataset)):
        item = dataset[i]
        layout, m = item["layout"], len(item["target"])
        n = len(item["source"])
        inputs.append(layout.tokens[n:n + m])
        pseudo.append(layout.tokens[n + m:])
        gold.append(item["target"])
    pseudo, inputs, gold = map(np.concatenate, (pseudo, inputs, gold))
    shows_mask = (pseudo == mask).mean()
    shows_original = (pseudo == gold).mean()
    assert abs(shows_mask - 0.8) < 0.03
    # "keep" (0.1) plus the random draws that happen to hit the original token.
    assert 0.1 - 0.02 < shows_original < 0.1 + 0.04
    # A corrupted teacher-forced input is always that position's pseudo token ...
    changed = inputs != gold
    assert (inputs[changed] == pseudo[changed]).all()
    # ... and about target_mask_prob of the inputs take the pseudo token (seen where it masks).
    replaced_given_mask = (inputs[pseudo == mask] == mask).mean()
    assert abs(replaced_given_mask - 0.5) < 0.04
    # The corruption is deterministic per (seed, epoch, index) and changes with the epoch.
    epoch_1 = [dataset[i]["layout"].tokens for i in range(20)]
    assert all((dataset[i]["layout"].tokens == epoch_1[i]).all() for i in range(20))
    dataset.set_epoch(2)
    assert any((dataset[i]["layout"].tokens != epoch_1[i]).any() for i in range(20))


def test_long_sources_and_targets_are_truncated_and_counted(caplog):
    pairs = [("s1 s2 s3 s4 s5 s6 s7 s8", "y1 y2 y3 y1 y2 y3"), ("s1", "y1")]
    with caplog.at_level(logging.WARNING):
        dataset, d, mask = make_dataset(pairs, max_source_positions=5, max_target_positions=3,
                                        **NO_CORRUPTION)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("1 of 2 sources" in w and "--max-source-positions 5" in w for w in warnings)
    assert any("1 of 2 targets" in w and "--max-target-positions 3" in w for w in warnings)
    assert dataset.truncated_sources == 1 and dataset.truncated_targets == 1
    item = dataset[0]
    assert item["source"].tolist() == [d.bos()] + [d.index(w) for w in "s1 s2 s3".split()] + [d.eos()]
    assert item["target"].tolist() == [d.index("y1"), d.index("y2"), d.eos()]
    assert dataset.size(0) == (5, 3) and dataset.num_tokens(0) == 5 + 2 * 3
    batch = dataset.collater([dataset[0], dataset[1]])
    assert int(batch["net_input"]["positions"].max()) == 5 + 3 - 1

    # The inference dataset (fairseq-interactive, hub) truncates the same way, keeps every input.
    inference = Seq2SeqInferenceDataset([d.encode_line(s).long() for s, _ in pairs], d, 5)
    assert len(inference) == 2 and inference.size(0) == (5, 0)
    sources = inference.collater([inference[0], inference[1]])["net_input"]["src_tokens"]
    assert sources.size(1) == 5 and sources[0, -1] == d.eos()


def test_bad_probabilities_name_the_flags():
    with pytest.raises(ValueError, match="--pseudo-mask-prob"):
        check_probabilities(UniLMSeq2SeqConfig(pseudo_mask_prob=0.9))
    with pytest.raises(ValueError, match="--target-mask-prob"):
        check_probabilities(UniLMSeq2SeqConfig(target_mask_prob=1.5))


def test_padding_never_attends_to_targets():
    dataset, _, _ = make_dataset([("s1 s2 s3", "y1"), ("s1", "y1 y2 y3")], **NO_CORRUPTION)
    batch = dataset.collater([dataset[0], dataset[1]])
    padding = batch["net_input"]["src_tokens"].eq(dataset.dictionary.pad())
    # Column view: no query attends to a padding key.
    net = batch["net_input"]
    assert not attention_mask(net["roles"], net["steps"]).transpose(1, 2)[padding].any()
