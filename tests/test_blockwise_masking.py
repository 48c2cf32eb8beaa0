"""Blockwise masking (SPEC 3.2) and the PMLM examples built from it, on real text lengths.

The texts are WikiText-2 validation blocks cut the way the ``pmlm`` task cuts them
(TokenBlockDataset, ``complete`` mode so that lengths vary), turned into
``[SOS] S1 [EOS] S2 [EOS]`` examples by ``PMLMDataset``.
"""
import numpy as np
import pytest
import torch
from fairseq.data import Dictionary, TokenBlockDataset

from fairseq_unilmv2.data.blockwise_masking import blockwise_mask, corrupt_masked
from fairseq_unilmv2.data.layout import CONTEXT, PSEUDO, attention_mask
from fairseq_unilmv2.data.pmlm_dataset import PMLMDataset
from helpers import shared_file

TOKENS_PER_SAMPLE = 512
EPOCHS = 6  # ~530 blocks a pass: six epochs give a few thousand examples
# Chi-square with 4 degrees of freedom (span lengths 2..6): 0.1% upper tail.
CHI2_4DOF_P001 = 18.47


@pytest.fixture(scope="module")
def wikitext_dataset():
    lines = shared_file("wikitext2", "valid.txt").read_text(encoding="utf-8").splitlines()
    lines = [line for line in lines if line.strip()]
    dictionary = Dictionary()
    for line in lines:
        dictionary.encode_line(line, add_if_not_exist=True)
    mask_idx = dictionary.add_symbol("<mask>")
    encoded = [dictionary.encode_line(line, add_if_not_exist=False) for line in lines]
    sizes = np.array([len(t) for t in encoded])
    blocks = TokenBlockDataset(encoded, sizes, TOKENS_PER_SAMPLE - 3, pad=dictionary.pad(),
                               eos=dictionary.eos(), break_mode="complete")
    return PMLMDataset(blocks, blocks.sizes, dictionary, mask_idx, seed=7)


@pytest.fixture(scope="module")
def examples(wikitext_dataset):
    """(epoch, index, layout, text_length) for every block over EPOCHS epochs."""
    out = []
    for epoch in range(1, EPOCHS + 1):
        wikitext_dataset.set_epoch(epoch)
        for index in range(len(wikitext_dataset)):
            item = wikitext_dataset[index]
            out.append((epoch, index, item["layout"], item["text_length"]))
    return out


def original_text(layout, text_length, pad):
    """The uncorrupted text: the target where a position is masked, the input elsewhere."""
    shown, target = layout.tokens[:text_length], layout.target[:text_length]
    return np.where(target != pad, target, shown)


def special_ids(dataset):
    d = dataset.dictionary
    return np.array([d.bos(), d.eos(), d.pad(), dataset.mask_idx])


def test_pick_statistics_on_real_text(wikitext_dataset, examples):
    """Among picks: 40% +- 3 multi-token spans, lengths uniform over 2..6; blocks never overlap,
    never touch a special token, and reach 15% +- 1 point of the text."""
    assert len(examples) >= 2000
    rng = np.random.default_rng(0)
    pad, specials = wikitext_dataset.dictionary.pad(), special_ids(wikitext_dataset)
    lengths, n_masked, n_maskable, unsorted_orders, multi_block_examples = [], 0, 0, 0, 0
    for _, _, layout, text_length in examples:
        maskable = ~np.isin(original_text(layout, text_length, pad), specials)
        masking = blockwise_mask(maskable, rng)
        masked = np.concatenate(masking.blocks)
        assert len(np.unique(masked)) == len(masked), "blocks overlap"
        assert maskable[masked].all(), "a special token was masked"
        assert all(np.array_equal(b, np.arange(b[0], b[0] + len(b))) for b in masking.blocks)
        assert all(1 <= len(b) <= 6 for b in masking.blocks)
        assert len(masked) >= 0.15 * maskable.sum()
        n_masked += len(masked)
        n_maskable += int(maskable.sum())
        lengths.append(masking.pick_lengths)
        if len(masking.blocks) > 1:
            multi_block_examples += 1
            starts = [b[0] for b in masking.blocks]
            unsorted_orders += starts != sorted(starts)
    lengths = np.concatenate(lengths)
    assert abs(n_masked / n_maskable - 0.15) <= 0.01
    assert abs(np.mean(lengths > 1) - 0.40) <= 0.03
    span_counts = np.bincount(lengths[lengths > 1], minlength=7)[2:]
    expected = span_counts.sum() / 5
    assert ((span_counts - expected) ** 2 / expected).sum() < CHI2_4DOF_P001, span_counts
    # The factorization order is the sampling order, not left to right.
    assert unsorted_orders > 0.9 * multi_block_examples


def test_examples_mask_fifteen_percent_and_never_specials(wikitext_dataset, examples):
    pad, specials = wikitext_dataset.dictionary.pad(), special_ids(wikitext_dataset)
    n_masked = n_maskable = 0
    for _, _, layout, text_length in examples:
        text = original_text(layout, text_length, pad)
        is_masked = layout.target[:text_length] != pad
        assert not np.isin(text[is_masked], specials).any()
        # Special tokens are shown as they are.
        is_special = np.isin(text, specials)
        assert np.array_equal(layout.tokens[:text_length][is_special], text[is_special])
        # Every masked position has exactly one pseudo mask, at the same position id.
        pseudo_positions = layout.positions[layout.roles == PSEUDO]
        assert sorted(pseudo_positions.tolist()) == np.flatnonzero(is_masked).tolist()
        n_masked += int(is_masked.sum())
        n_maskable += int((~is_special).sum())
    assert abs(n_masked / n_maskable - 0.15) <= 0.01


def test_examples_are_two_segments(wikitext_dataset, examples):
    d = wikitext_dataset.dictionary
    for _, _, layout, text_length in examples[:200]:
        text = original_text(layout, text_length, d.pad())
        types = layout.segments[:text_length]
        first_s2 = int(np.argmax(types))  # first token of type 1
        assert text[0] == d.bos() and text[-1] == d.eos() and text[first_s2 - 1] == d.eos()
        assert types[:first_s2].tolist() == [0] * first_s2
        assert types[first_s2:].tolist() == [1] * (text_length - first_s2)
        assert layout.positions[:text_length].tolist() == list(range(text_length))
        # Appended tokens carry the token type of the position they stand for.
        appended = layout.positions[text_length:]
        assert np.array_equal(layout.segments[text_length:], types[appended])


def test_ae_corruption_is_80_10_10(wikitext_dataset, examples):
    pad, mask_idx = wikitext_dataset.dictionary.pad(), wikitext_dataset.mask_idx
    shown_mask = shown_same = shown_other = 0
    for _, _, layout, text_length in examples:
        is_masked = layout.target[:text_length] != pad
        shown = layout.tokens[:text_length][is_masked]
        truth = layout.target[:text_length][is_masked]
        shown_mask += int((shown == mask_idx).sum())
        shown_same += int((shown == truth).sum())
        shown_other += int(((shown != mask_idx) & (shown != truth)).sum())
        # Pseudo masks always show the mask symbol, whatever the AE part shows.
        assert (layout.tokens[layout.roles == PSEUDO] == mask_idx).all()
    total = shown_mask + shown_same + shown_other
    assert abs(shown_mask / total - 0.8) <= 0.01
    assert abs(shown_same / total - 0.1) <= 0.01
    assert abs(shown_other / total - 0.1) <= 0.01


def test_random_replacements_are_ordinary_tokens():
    rng = np.random.default_rng(1)
    ordinary = np.arange(4, 50)
    shown = corrupt_masked(np.full(20000, 7), rng, mask_idx=50, random_token_prob=1.0,
                           leave_unmasked_prob=0.0, random_token_ids=ordinary)
    assert np.isin(shown, ordinary).all()
    assert len(np.unique(shown)) == len(ordinary)


def test_masking_is_deterministic_given_seed_epoch_index(wikitext_dataset, examples):
    twin = PMLMDataset(wikitext_dataset.blocks, wikitext_dataset.blocks.sizes,
                       wikitext_dataset.dictionary, wikitext_dataset.mask_idx, seed=7)
    by_key = {(epoch, index): layout for epoch, index, layout, _ in examples}
    for epoch, index in [(1, 0), (3, 17), (6, 101)]:
        twin.set_epoch(epoch)
        again = twin[index]["layout"]
        for name, expected in by_key[(epoch, index)]._asdict().items():
            assert np.array_equal(getattr(again, name), expected), name
    # Another epoch or another seed gives other masks.
    changed_by_epoch = sum(not np.array_equal(by_key[(1, i)].tokens, by_key[(2, i)].tokens)
                           for i in range(50))
    assert changed_by_epoch >= 48
    other_seed = PMLMDataset(wikitext_dataset.blocks, wikitext_dataset.blocks.sizes,
                             wikitext_dataset.dictionary, wikitext_dataset.mask_idx, seed=8)
    other_seed.set_epoch(1)
    assert not np.array_equal(other_seed[0]["layout"].tokens, by_key[(1, 0)].tokens)


def test_dataset_sizes_bound_the_packed_length(wikitext_dataset, examples):
    """Batching uses num_tokens: it must never underestimate a packed example."""
    assert wikitext_dataset.can_reuse_epoch_itr_across_epochs is False
    for _, index, layout, text_length in examples:
        assert text_length <= wikitext_dataset.size(index) <= TOKENS_PER_SAMPLE
        assert len(layout.tokens) <= wikitext_dataset.num_tokens(index)


def test_collater_pads_and_builds_the_mask(wikitext_dataset):
    wikitext_dataset.set_epoch(1)
    samples = [wikitext_dataset[i] for i in (0, 5, len(wikitext_dataset) - 1)]
    batch = wikitext_dataset.collater(samples)
    net = batch["net_input"]
    lengths = [len(s["layout"].tokens) for s in samples]
    assert net["src_tokens"].shape == (3, max(lengths))
    assert net["roles"].shape == net["steps"].shape == (3, max(lengths))
    assert "attn_mask" not in net  # the model builds it on the device
    mask = attention_mask(net["roles"], net["steps"])
    assert net["src_lengths"].tolist() == lengths
    assert batch["ntokens"] == sum(s["text_length"] for s in samples)
    for row, sample in enumerate(samples):
        n = lengths[row]
        assert (net["src_tokens"][row, n:] == wikitext_dataset.dictionary.pad()).all()
        assert (batch["target"][row, n:] == wikitext_dataset.dictionary.pad()).all()
        # The padded rows of the mask see the text only; nobody attends to padding.
        assert not mask[row, :, n:].any()
        text = sample["text_length"]
        assert mask[row, :n, :text].all()
    # Predicted positions outside the AE part are exactly the pseudo masks.
    predicted = batch["target"].ne(wikitext_dataset.dictionary.pad())
    roles = net["roles"]
    assert torch.equal(predicted & roles.ne(CONTEXT), roles.eq(PSEUDO))
