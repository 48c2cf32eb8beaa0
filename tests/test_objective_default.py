"""``--objective ae+par`` (the default) is the pre-training of before the switch, bit for bit.

A seeded batch (``PMLMDataset`` over seeded random lines, collated) and a seeded tiny model give
the losses below. They were recorded from the code before ``--objective`` existed (main at
ceb44e5), with this file run as a script against that code:

    PYTHONPATH=/work/main python tests/test_objective_default.py

which printed the digest and the losses. The batch is integers (numpy's seeded generators are
stable across platforms), so its digest is compared exactly; the losses are compared exactly
too (one CPU thread), since "the same losses" means the same float32 sums, in the same order.
"""
import hashlib
import inspect
import sys

import numpy as np
import pytest
import torch

from helpers import collated_pmlm_sample, tiny_unilm_model

LENGTHS = [30, 45, 12, 60, 7, 38]
RECORDED_DIGEST = "f2d74000f3b5fc53b4e0c1efaa68a252a52dd65c2d2fac4ed3119cb6acf27217"
RECORDED_LOSSES = {"loss": 273.94769287109375, "ae_loss": 136.99632263183594,
                   "par_loss": 136.95135498046875}


def seeded_batch_and_losses(objective=None):
    """(sha256 of every tensor of the batch, {loss key: float}) under ``objective`` (None: the
    task's default, which is all the code before the switch knows)."""
    from fairseq.data import ListDataset

    from fairseq_unilmv2.criterions.pmlm import PMLMCriterion, PMLMCriterionConfig
    from fairseq_unilmv2.data.pmlm_dataset import PMLMDataset
    from fairseq_unilmv2.tasks.pmlm import PMLMConfig, PMLMTask

    torch.set_num_threads(1)
    model, dictionary = tiny_unilm_model(seed=3)
    if objective is None:
        sample = collated_pmlm_sample(dictionary, LENGTHS, np.random.default_rng(7))
        task = PMLMTask(PMLMConfig(data="unused", seed=1), dictionary)
    else:
        from helpers import random_lines
        lengths = np.asarray(LENGTHS)
        lines = random_lines(dictionary, lengths, np.random.default_rng(7))
        dataset = PMLMDataset(ListDataset(lines, lengths), lengths, dictionary,
                              dictionary.index("<mask>"), objective=objective)
        sample = dataset.collater([dataset[i] for i in range(len(lengths))])
        task = PMLMTask(PMLMConfig(data="unused", seed=1, objective=objective), dictionary)
    digest = hashlib.sha256()
    for key in sorted(sample["net_input"]):
        value = sample["net_input"][key]
        digest.update(key.encode())
        digest.update(value.numpy().tobytes() if torch.is_tensor(value) else repr(value).encode())
    digest.update(sample["target"].numpy().tobytes())
    criterion = PMLMCriterion(PMLMCriterionConfig(), task)
    with torch.no_grad():
        _, _, logs = criterion(model, sample)
    losses = {key: float(logs[key]) for key in ("loss", "ae_loss", "par_loss") if key in logs}
    return digest.hexdigest(), losses


def test_default_objective_is_the_code_before_the_switch():
    digest, losses = seeded_batch_and_losses()
    assert digest == RECORDED_DIGEST
    assert losses == RECORDED_LOSSES


def test_explicit_ae_par_is_the_default():
    assert seeded_batch_and_losses("ae+par") == (RECORDED_DIGEST, RECORDED_LOSSES)


def test_another_objective_changes_the_losses():
    """The comparison can fail: par drops the AE loss, so the total moves."""
    digest, losses = seeded_batch_and_losses("par")
    assert "ae_loss" not in losses
    assert losses["loss"] != RECORDED_LOSSES["loss"]


if __name__ == "__main__":
    print(seeded_batch_and_losses())
