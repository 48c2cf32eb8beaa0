"""Criterion ``pmlm``: AE loss at the conventional masks plus PAR loss at the pseudo masks.

SPEC 3.5: L = ae_weight * L_AE + par_weight * L_PAR, each a cross-entropy summed over the
masked tokens; the sample size is the number of masked text tokens, so that the reported loss
is per masked token (AE and PAR each predict every masked token once). Losses are logged in
base 2, as fairseq's ``masked_lm`` does; no perplexity is derived, since ``loss`` is the sum of
two per-token losses.

The task's ``--objective`` decides which losses exist: ``ae`` has no pseudo part, ``par`` and
``ar`` no AE loss; the pseudo-mask loss is logged as ``par_loss`` or ``ar_loss`` after the
objective. Only the losses that exist are logged.
"""
import math
from dataclasses import dataclass, field
from typing import Optional

import torch.nn.functional as F
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.dataclass import FairseqDataclass
from fairseq.logging import metrics

from ..data.layout import CONTEXT, PSEUDO, Objective
from ..modules.transformer import select_rows


@dataclass
class PMLMCriterionConfig(FairseqDataclass):
    # None stands for 1.0, so that a weight given for a loss the objective leaves out is told
    # apart from the default and refused.
    ae_weight: Optional[float] = field(default=None, metadata={
        "help": "weight of the autoencoding loss, read at the conventional masks (default 1); "
                "only with an --objective that has it (ae, ae+ar, ae+par)"})
    par_weight: Optional[float] = field(default=None, metadata={
        "help": "weight of the loss at the pseudo masks (PAR, or AR under --objective ar / "
                "ae+ar; default 1); only with an --objective that has them (not ae)"})


@register_criterion("pmlm", dataclass=PMLMCriterionConfig)
class PMLMCriterion(FairseqCriterion):
    def __init__(self, cfg: PMLMCriterionConfig, task):
        super().__init__(task)
        # Tasks without --objective (e.g. an older pmlm task object) have both parts.
        self.objective = getattr(task, "objective", Objective(ae=True, pseudo="par"))
        self.pseudo_name = self.objective.pseudo  # "par", "ar" or "" (no pseudo part)
        _check_weights(cfg, self.objective)
        self.ae_weight = 1.0 if cfg.ae_weight is None else cfg.ae_weight
        self.par_weight = 1.0 if cfg.par_weight is None else cfg.par_weight

    def forward(self, model, sample, reduce=True):
        net_input = sample["net_input"]
        predicted = sample["target"].ne(self.padding_idx)
        count = net_input.get("num_predicted")  # host-side: selecting needs no device sync
        logits = model(**net_input, masked_tokens=predicted)[0]
        targets = select_rows(sample["target"], predicted, count)
        roles = select_rows(net_input["roles"], predicted, count)
        nll = F.cross_entropy(logits.float(), targets, reduction="none")
        correct = logits.argmax(dim=-1).eq(targets)
        is_ae, is_par = roles.eq(CONTEXT), roles.eq(PSEUDO)
        ae_loss, par_loss = nll.where(is_ae, 0).sum(), nll.where(is_par, 0).sum()
        if self.objective.ae and self.pseudo_name:
            loss = self.ae_weight * ae_loss + self.par_weight * par_loss
        elif self.objective.ae:
            loss = self.ae_weight * ae_loss
        else:
            loss = self.par_weight * par_loss
        # Counts stay tensors, as in fairseq's masked_lm: reading them here (int(...)) would
        # wait for the device in every step; fairseq's logging sums tensors as they are.
        # The sample size is the masked text tokens, each read once by AE (or by the pseudo
        # masks when there is no AE loss).
        sample_size = is_ae.sum() if self.objective.ae else is_par.sum()
        logging_output = {"loss": loss.data}
        if self.objective.ae:
            logging_output.update(ae_loss=ae_loss.data, ae_correct=(correct & is_ae).sum(),
                                  ae_count=is_ae.sum())
        if self.pseudo_name:
            name = self.pseudo_name
            logging_output.update({f"{name}_loss": par_loss.data,
                                   f"{name}_correct": (correct & is_par).sum(),
                                   f"{name}_count": is_par.sum()})
        logging_output.update(ntokens=sample["ntokens"], nsentences=sample["nsentences"],
                              sample_size=sample_size)
        if "src_lengths" in net_input:
            # What the model read, pseudo part included (ntokens counts the text only): the
            # cost of an objective, e.g. in scripts/ablation.py. Host-side, no device sync.
            logging_output["input_tokens"] = net_input["src_lengths"].sum()
        return loss, sample_size, logging_output

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        def total(key):
            return sum(log.get(key, 0) for log in logging_outputs)

        sample_size = total("sample_size")
        if sample_size > 0:
            metrics.log_scalar("loss", total("loss") / sample_size / math.log(2), sample_size,
                               round=3)
        for part in ("ae", "par", "ar"):
            if not any(f"{part}_count" in log for log in logging_outputs):
                continue  # a loss the objective leaves out
            count = total(f"{part}_count")
            if count > 0:
                metrics.log_scalar(f"{part}_loss", total(f"{part}_loss") / count / math.log(2),
                                   count, round=3)
                metrics.log_scalar(f"{part}_acc", total(f"{part}_correct") / count, count,
                                   round=3)
            # Totals since the last log line, not averages.
            metrics.log_scalar_sum(f"{part}_count", count)
        if any("input_tokens" in log for log in logging_outputs):
            metrics.log_scalar_sum("input_tokens", total("input_tokens"))

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True


def _check_weights(cfg: PMLMCriterionConfig, objective: Objective) -> None:
    """A weight given for a loss the objective leaves out would silently do nothing."""
    if cfg.ae_weight is not None and not objective.ae:
        raise ValueError(f"--ae-weight {cfg.ae_weight} weights the AE loss, which this "
                         "--objective leaves out: drop --ae-weight or pick an objective with "
                         "ae (ae, ae+ar, ae+par)")
    if cfg.par_weight is not None and not objective.pseudo:
        raise ValueError(f"--par-weight {cfg.par_weight} weights the loss at the pseudo masks, "
                         "which --objective ae leaves out: drop --par-weight or pick an "
                         "objective with a pseudo part (ar, par, ae+ar, ae+par)")
