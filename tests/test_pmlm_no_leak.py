"""No leakage through the PMLM attention mask (SPEC 3.4), checked on a real model's outputs.

Batches come from ``PMLMDataset`` (blockwise masking, layout, padding and the collater's mask),
the model is a tiny random ``unilm_v2`` in eval mode. Changing the appended ORIGINAL copy of a
masked token of step s (and nothing the AE part shows) must change no AE output, no PAR output
of steps <= s, and must change the PAR output of some later step when there is one. Checked
for every ``--objective``: under ``ar`` every masked token is its own step, under ``ae`` there
is no appended part, hence no original to leak.
"""
import numpy as np
import pytest
import torch

from fairseq_unilmv2.data.layout import (CONTEXT, OBJECTIVES, ORIGINAL, PSEUDO,
                                         attention_mask)
from fairseq_unilmv2.data.pmlm_dataset import PMLMDataset
from helpers import tiny_unilm_model

N_EXAMPLES = 240
BATCH = 8
TRIALS_PER_BATCH = 3
SAME, CHANGED = 1e-6, 1e-4  # max |difference| of hidden states: unchanged / clearly changed


def random_text_dataset(dictionary, seed=0, objective="ae+par"):
    rng = np.random.default_rng(seed)
    mask_idx = dictionary.index("<mask>")
    lengths = rng.integers(4, 48, size=N_EXAMPLES)
    blocks = [rng.integers(dictionary.nspecial, mask_idx, size=n) for n in lengths]
    return PMLMDataset(blocks, lengths, dictionary, mask_idx, seed=seed, objective=objective)


def hidden_states(model, batch, tokens):
    net = dict(batch["net_input"], src_tokens=tokens)
    with torch.no_grad():
        return model(**net, features_only=True)[0]


def change_one_original_each(batch, dictionary, rng):
    """Per example: a random ORIGINAL position (or None) and the tokens with it replaced."""
    tokens = batch["net_input"]["src_tokens"].clone()
    chosen = []
    for row in range(tokens.size(0)):
        originals = torch.nonzero(batch["net_input"]["roles"][row] == ORIGINAL).flatten().tolist()
        if not originals:
            chosen.append(None)
            continue
        col = int(rng.choice(originals))
        old = int(tokens[row, col])
        new = int(rng.integers(dictionary.nspecial, dictionary.index("<mask>") - 1))
        tokens[row, col] = new if new < old else new + 1  # any ordinary token but the old one
        chosen.append(col)
    return tokens, chosen


def leak_violations(model, dictionary, batches, seed=0):
    """Descriptions of every broken expectation (empty when the mask does not leak), and how
    many changes had a later step that had to see them."""
    rng = np.random.default_rng(seed)
    violations, later_step_checks = [], 0
    for batch in batches:
        before = hidden_states(model, batch, batch["net_input"]["src_tokens"])
        for _ in range(TRIALS_PER_BATCH):
            tokens, chosen = change_one_original_each(batch, dictionary, rng)
            diff = (hidden_states(model, batch, tokens) - before).abs().amax(dim=-1)
            for row, col in enumerate(chosen):
                if col is None:
                    continue
                roles, steps = batch["net_input"]["roles"][row], batch["net_input"]["steps"][row]
                step = int(steps[col])
                must_stay = (roles == CONTEXT) | ((roles == PSEUDO) & (steps <= step))
                if diff[row][must_stay].max() > SAME:
                    violations.append(f"example {int(batch['id'][row])}: changing the original "
                                      f"of step {step} moved the AE part or PAR of steps <= {step}")
                later_pseudo = (roles == PSEUDO) & (steps > step)
                if later_pseudo.any():
                    later_step_checks += 1
                    if diff[row][later_pseudo].max() < CHANGED:
                        violations.append(f"example {int(batch['id'][row])}: no later step saw "
                                          f"the original of step {step}")
    return violations, later_step_checks


def pmlm_batches(dataset):
    return [dataset.collater([dataset[i] for i in range(start, min(start + BATCH, len(dataset)))])
            for start in range(0, len(dataset), BATCH)]


@pytest.mark.parametrize("objective", [o for o in OBJECTIVES if o != "ae"])
def test_changing_an_original_leaks_nowhere_it_must_not(objective):
    model, dictionary = tiny_unilm_model()
    batches = pmlm_batches(random_text_dataset(dictionary, objective=objective))
    violations, later_step_checks = leak_violations(model, dictionary, batches)
    assert not violations, "\n".join(violations[:10])
    assert later_step_checks >= 200  # the "must change" half was exercised, not vacuous


def test_ae_has_no_original_to_leak():
    """``--objective ae``: the input is the masked text alone; no masked position's token is
    anywhere in it but where BERT's 10% "keep" rule shows it at its own position."""
    _, dictionary = tiny_unilm_model()
    dataset = random_text_dataset(dictionary, objective="ae")
    kept, masked = 0, 0
    for batch in pmlm_batches(dataset):
        net = batch["net_input"]
        assert net["roles"].ne(CONTEXT).sum() == net["src_tokens"].eq(dictionary.pad()).sum()
        assert net["src_tokens"].size(1) == max(dataset[int(i)]["text_length"]
                                                for i in batch["id"])
        predicted = batch["target"].ne(dictionary.pad())
        kept += int(net["src_tokens"][predicted].eq(batch["target"][predicted]).sum())
        masked += int(predicted.sum())
    assert masked > 1000 and kept / masked < 0.15  # 10% kept, ~1/60 of 10% random hit it


def test_the_check_catches_a_leaky_mask():
    """Let pseudo masks see the originals of their own step (explicit leakage): caught."""
    model, dictionary = tiny_unilm_model()
    batches = pmlm_batches(random_text_dataset(dictionary))[:4]
    for batch in batches:
        roles, steps = batch["net_input"]["roles"], batch["net_input"]["steps"]
        own_original = ((roles.unsqueeze(2) == PSEUDO) & (roles.unsqueeze(1) == ORIGINAL)
                        & (steps.unsqueeze(2) == steps.unsqueeze(1)))
        batch["net_input"]["attn_mask"] = attention_mask(roles, steps) | own_original
    violations, _ = leak_violations(model, dictionary, batches)
    assert any("PAR of steps <=" in v for v in violations)
