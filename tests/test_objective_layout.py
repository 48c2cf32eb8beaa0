"""Every ``--objective`` on the paper's worked example (SPEC 3.3), worked out by hand.

x = x1 .. x6, blockwise masking picked {x4, x5} then {x2}; positions are 0-based (the paper's
minus one), as in tests/test_layout.py, whose table is ``ae+par``'s. Per objective: the tokens,
positions, roles and steps, what attends to what, and which rows carry a loss (the target is
the original token there, pad elsewhere). Then the same through the dataset and the criterion:
the same masks under every objective, and the losses each objective logs.
"""
import numpy as np
import pytest
import torch

from fairseq_unilmv2.data.layout import (CONTEXT, OBJECTIVES, ORIGINAL, PSEUDO, Objective,
                                         attention_mask, factorization_steps, objective_layout)
from helpers import random_lines, tiny_unilm_model
from test_layout import EXPECTED_MASK as AE_PAR_MASK

PAD, MASK = 1, 4
X1, X2, X3, X4, X5, X6 = 11, 12, 13, 14, 15, 16
C, P, O = CONTEXT, PSEUDO, ORIGINAL
BLOCKS = [np.array([3, 4]), np.array([1])]  # {x4, x5} then {x2}


class FixedOrder:
    """Stands in for the generator: AR's random order of the masked tokens is x5, x2, x4."""

    def permutation(self, masked):
        assert sorted(masked.tolist()) == [1, 3, 4]
        return np.array([4, 1, 3])


def lay_out(objective):
    original = np.array([X1, X2, X3, X4, X5, X6])
    corrupted = np.array([X1, MASK, X3, MASK, MASK, X6])
    return objective_layout(original, corrupted, np.zeros(6, dtype=np.int64), BLOCKS,
                            Objective.parse(objective), MASK, PAD, FixedOrder())


def mask_of(layout):
    roles, steps = torch.from_numpy(layout.roles)[None], torch.from_numpy(layout.steps)[None]
    return attention_mask(roles, steps)[0].int().tolist()


def test_ae_is_the_masked_text_alone():
    """BERT's input: as long as the text, bidirectional, loss at the conventional masks."""
    layout = lay_out("ae")
    assert layout.tokens.tolist() == [X1, MASK, X3, MASK, MASK, X6]
    assert layout.positions.tolist() == [0, 1, 2, 3, 4, 5]
    assert layout.roles.tolist() == [C] * 6
    assert layout.steps.tolist() == [0] * 6
    assert mask_of(layout) == [[1] * 6] * 6
    assert layout.target.tolist() == [PAD, X2, PAD, X4, X5, PAD]  # rows M2, M4, M5


def test_par_keeps_the_input_and_reads_the_pseudo_masks_only():
    """ae+par's input and mask; the conventional masks stay (they say where the masks are)
    but carry no loss: rows P4, P5 (step 1, predicted together) and P2 (step 2) do."""
    layout = lay_out("par")
    assert layout.tokens.tolist() == [X1, MASK, X3, MASK, MASK, X6, MASK, MASK, X4, X5, MASK, X2]
    assert layout.positions.tolist() == [0, 1, 2, 3, 4, 5, 3, 4, 3, 4, 1, 1]
    assert layout.roles.tolist() == [C, C, C, C, C, C, P, P, O, O, P, O]
    assert layout.steps.tolist() == [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2]
    assert mask_of(layout) == AE_PAR_MASK
    assert layout.target.tolist() == [PAD] * 6 + [X4, X5, PAD, PAD, X2, PAD]


def test_ae_par_reads_both():
    layout = lay_out("ae+par")
    assert mask_of(layout) == AE_PAR_MASK
    assert layout.target.tolist() == [PAD, X2, PAD, X4, X5, PAD, X4, X5, PAD, PAD, X2, PAD]


# AR, order x5, x2, x4: one step a token. Unlike PAR, x4 (step 3) is predicted knowing x5
# (step 1), its neighbour of the same span.
#               x1 M2 x3 M4 M5 x6 P5 O5 P2 O2 P4 O4
AR_MASK = [[1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0]] * 6 + [
    [1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0],  # P5: context and itself
    [1, 1, 1, 1, 1, 1, 0, 1, 0, 0, 0, 0],  # O5
    [1, 1, 1, 1, 1, 1, 0, 1, 1, 0, 0, 0],  # P2: sees x5
    [1, 1, 1, 1, 1, 1, 0, 1, 0, 1, 0, 0],  # O2
    [1, 1, 1, 1, 1, 1, 0, 1, 0, 1, 1, 0],  # P4: sees x5 and x2
    [1, 1, 1, 1, 1, 1, 0, 1, 0, 1, 0, 1],  # O4
]


@pytest.mark.parametrize("objective", ["ar", "ae+ar"])
def test_ar_makes_every_masked_token_its_own_step(objective):
    layout = lay_out(objective)
    assert layout.tokens.tolist() == [X1, MASK, X3, MASK, MASK, X6, MASK, X5, MASK, X2, MASK, X4]
    assert layout.positions.tolist() == [0, 1, 2, 3, 4, 5, 4, 4, 1, 1, 3, 3]
    assert layout.roles.tolist() == [C, C, C, C, C, C, P, O, P, O, P, O]
    assert layout.steps.tolist() == [0, 0, 0, 0, 0, 0, 1, 1, 2, 2, 3, 3]
    assert mask_of(layout) == AR_MASK
    ae_rows = [PAD, X2, PAD, X4, X5, PAD] if objective == "ae+ar" else [PAD] * 6
    assert layout.target.tolist() == ae_rows + [X5, PAD, X2, PAD, X4, PAD]


def test_ar_order_is_a_random_order_of_all_masked_tokens():
    blocks = [np.array([7, 8, 9]), np.array([2]), np.array([4, 5])]
    orders = set()
    for seed in range(20):
        steps = factorization_steps(blocks, Objective.parse("ar"), np.random.default_rng(seed))
        assert all(len(step) == 1 for step in steps)
        orders.add(tuple(int(step[0]) for step in steps))
    assert all(sorted(order) == [2, 4, 5, 7, 8, 9] for order in orders)
    assert len(orders) > 10  # not the blocks' order, nor any fixed one
    par = factorization_steps(blocks, Objective.parse("par"), np.random.default_rng(0))
    assert [b.tolist() for b in par] == [b.tolist() for b in blocks]
    assert factorization_steps(blocks, Objective.parse("ae"), np.random.default_rng(0)) == []


def test_unknown_objective_is_refused():
    with pytest.raises(ValueError, match="--objective 'mlm'"):
        Objective.parse("mlm")


# Through the dataset and the real criterion.

LENGTHS = [30, 45, 12, 60, 7, 38]


def objective_batch(dictionary, objective):
    from fairseq.data import ListDataset

    from fairseq_unilmv2.data.pmlm_dataset import PMLMDataset

    lengths = np.asarray(LENGTHS)
    lines = random_lines(dictionary, lengths, np.random.default_rng(5))
    dataset = PMLMDataset(ListDataset(lines, lengths), lengths, dictionary,
                          dictionary.index("<mask>"), objective=objective)
    return dataset, dataset.collater([dataset[i] for i in range(len(lengths))])


def test_every_objective_sees_the_same_masks():
    """Same seed, same text: the same conventional masks and corruption under every objective,
    so that a comparison of objectives compares only the objectives."""
    _, dictionary = tiny_unilm_model()
    contexts = {}
    for objective in OBJECTIVES:
        dataset, _ = objective_batch(dictionary, objective)
        contexts[objective] = [dataset[i]["layout"].tokens[:dataset[i]["text_length"]].tolist()
                               for i in range(len(dataset))]
        if objective == "ae":
            assert (dataset.num_tokens_vec(np.arange(len(dataset))) == dataset.sizes).all()
    assert all(context == contexts["ae"] for context in contexts.values())


def criterion_logs(objective, **weights):
    from fairseq.logging import metrics

    from fairseq_unilmv2.criterions.pmlm import PMLMCriterion, PMLMCriterionConfig
    from fairseq_unilmv2.tasks.pmlm import PMLMConfig, PMLMTask

    model, dictionary = tiny_unilm_model()
    task = PMLMTask(PMLMConfig(data="unused", seed=1, objective=objective), dictionary)
    criterion = PMLMCriterion(PMLMCriterionConfig(**weights), task)
    _, sample = objective_batch(dictionary, objective)
    with torch.no_grad():
        loss, sample_size, log = criterion(model, sample)
    with metrics.aggregate() as agg:
        PMLMCriterion.reduce_metrics([log])
    return loss, sample_size, log, set(agg.get_smoothed_values())


@pytest.mark.parametrize("objective,losses", [
    ("ae", {"ae"}), ("par", {"par"}), ("ar", {"ar"}),
    ("ae+par", {"ae", "par"}), ("ae+ar", {"ae", "ar"})])
def test_loss_keys_follow_the_objective(objective, losses):
    loss, sample_size, log, logged = criterion_logs(objective)
    parts = {"ae", "par", "ar"}
    assert {f"{p}_loss" for p in losses} <= logged
    assert not {f"{p}_loss" for p in parts - losses} & (logged | set(log))
    assert float(loss) == pytest.approx(sum(float(log[f"{p}_loss"]) for p in losses))
    # Per masked text token: every masked token is read once by each loss.
    assert all(int(log[f"{p}_count"]) == int(sample_size) for p in losses)
    assert int(sample_size) > 0


def test_weights_scale_the_losses_that_exist():
    _, _, log, _ = criterion_logs("ae+ar")
    loss, _, weighted, _ = criterion_logs("ae+ar", ae_weight=0.5, par_weight=2.0)
    assert float(loss) == pytest.approx(0.5 * float(log["ae_loss"]) + 2 * float(log["ar_loss"]))
    # Exact: the same unweighted sum of the same batch by the same code in this process (the
    # weights scale only the total), so the same float32 on any CPU.
    assert float(weighted["ae_loss"]) == float(log["ae_loss"])


@pytest.mark.parametrize("objective,flag,weights", [
    ("ae", "--par-weight", {"par_weight": 1.0}),
    ("par", "--ae-weight", {"ae_weight": 0.5}),
    ("ar", "--ae-weight", {"ae_weight": 1.0})])
def test_a_weight_for_a_left_out_loss_is_an_error(objective, flag, weights):
    with pytest.raises(ValueError, match=flag):
        criterion_logs(objective, **weights)
