"""The last layer computes only the rows the LM head reads (``masked_tokens``): logits and
gradients must be exactly those of running every row and selecting afterwards."""
import numpy as np
import pytest
import torch
from helpers import collated_pmlm_sample, pmlm_batch, tiny_unilm_model

from fairseq_unilmv2.modules.transformer import gather_rows, rows_of, select_rows


def test_rows_of_gathers_what_boolean_indexing_selects():
    selected = torch.tensor([[0, 1, 0, 1, 1], [0, 0, 0, 0, 0], [1, 0, 0, 0, 1]], dtype=torch.bool)
    rows, valid = rows_of(selected)
    assert rows.tolist() == [[1, 3, 4], [0, 0, 0], [0, 4, 0]]
    assert valid.tolist() == [[True, True, True], [False, False, False], [True, True, False]]
    x = torch.randn(3, 5, 2, 3)
    torch.testing.assert_close(gather_rows(x, rows)[valid], x[selected], rtol=0, atol=0)
    # A host-side bound of the counts (no device sync) selects the same rows, padded wider.
    wide_rows, wide_valid = rows_of(selected, width=4)
    assert wide_rows.shape == (3, 4) and wide_valid.sum() == selected.sum()
    torch.testing.assert_close(gather_rows(x, wide_rows)[wide_valid], x[selected], rtol=0, atol=0)


def test_select_rows_with_a_count_is_boolean_indexing():
    selected = torch.tensor([[0, 1, 0, 1, 1], [0, 0, 0, 0, 0], [1, 0, 0, 0, 1]], dtype=torch.bool)
    x = torch.randn(3, 5, 2)
    torch.testing.assert_close(select_rows(x, selected, count=5), x[selected], rtol=0, atol=0)
    torch.testing.assert_close(select_rows(x, selected), x[selected], rtol=0, atol=0)
    with pytest.raises(ValueError, match="announces 4 predicted tokens"):
        select_rows(x, selected, count=4)


def test_collated_max_predicted_bounds_the_rows_and_changes_nothing(tmp_path):
    """The pmlm collater's host-side ``max_predicted`` is the largest count of predicted
    positions of one example, ``num_predicted`` their total, and the model gives the same
    logits with them as without."""
    model, dictionary = tiny_unilm_model()
    batch = collated_pmlm_sample(dictionary, [40, 25, 33], np.random.default_rng(5))
    net_input = dict(batch["net_input"])
    predicted = batch["target"].ne(dictionary.pad())
    assert net_input["max_predicted"] == int(predicted.sum(dim=1).max())
    assert net_input["num_predicted"] == int(predicted.sum())
    with torch.no_grad():
        hinted, _ = model(**net_input, masked_tokens=predicted)
        del net_input["max_predicted"], net_input["num_predicted"]
        unhinted, _ = model(**net_input, masked_tokens=predicted)
    # Exact: the hint is the width the model would read off the mask, so both calls run the
    # same shapes through the same kernels.
    torch.testing.assert_close(hinted, unhinted, rtol=0, atol=0)


def predicted_rows(batch, dictionary):
    """The conventional and pseudo masks of a PMLM batch (both are ``<mask>`` tokens)."""
    return batch["src_tokens"].eq(dictionary.index("<mask>"))


def logits_and_grads(model, batch, masked, restrict: bool):
    model.zero_grad()
    if restrict:
        logits, _ = model(**batch, masked_tokens=masked)
    else:
        features, _ = model(**batch, features_only=True)
        logits = model.transformer.lm_head(features[masked])
    logits.logsumexp(dim=-1).sum().backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return logits.detach(), grads


@pytest.mark.parametrize("lengths", [[20, 20, 20], [20, 14, 17], [30, 8]])
def test_logits_and_gradients_equal_the_full_last_layer(lengths):
    model, dictionary = tiny_unilm_model()
    model.train()  # dropout is 0 in the tiny model, so train mode is deterministic
    batch = pmlm_batch(dictionary, lengths, np.random.default_rng(len(lengths) + sum(lengths)))
    masked = predicted_rows(batch, dictionary)
    # One example with nothing to predict: its rows are padding in the gathered last layer.
    masked[-1] = False
    restricted, restricted_grads = logits_and_grads(model, batch, masked, restrict=True)
    full, full_grads = logits_and_grads(model, batch, masked, restrict=False)
    assert restricted.shape == (int(masked.sum()), len(dictionary))
    torch.testing.assert_close(restricted, full, rtol=0, atol=1e-5)
    assert restricted_grads.keys() == full_grads.keys()
    for name, grad in full_grads.items():
        torch.testing.assert_close(restricted_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_all_hidden_states_still_cover_every_row():
    model, dictionary = tiny_unilm_model()
    batch = pmlm_batch(dictionary, [12, 9], np.random.default_rng(3))
    masked = predicted_rows(batch, dictionary)
    with torch.no_grad():
        logits, extra = model(**batch, masked_tokens=masked, return_all_hiddens=True)
        restricted, _ = model(**batch, masked_tokens=masked)
    assert all(h.shape[:2] == batch["src_tokens"].shape for h in extra["inner_states"])
    torch.testing.assert_close(logits, restricted, rtol=0, atol=1e-5)
