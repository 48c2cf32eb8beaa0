"""Criterion ``pmlm``: AE loss at the conventional masks plus PAR loss at the pseudo masks.

SPEC 3.5: L = ae_weight * L_AE + par_weight * L_PAR, each a cross-entropy summed over the
masked tokens; the sample size is the number of masked text tokens, so that the reported loss
is per masked token (AE and PAR each predict every masked token once). Losses are logged in
base 2, as fairseq's ``masked_lm`` does; no perplexity is derived, since ``loss`` is the sum of
two per-token losses.
"""
import math
from dataclasses import dataclass, field

import torch.nn.functional as F
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.dataclass import FairseqDataclass
from fairseq.logging import metrics

from ..data.layout import CONTEXT, PSEUDO
from ..modules.transformer import select_rows


@dataclass
class PMLMCriterionConfig(FairseqDataclass):
    ae_weight: float = field(default=1.0, metadata={
        "help": "weight of the autoencoding loss, read at the conventional masks"})
    par_weight: float = field(default=1.0, metadata={
        "help": "weight of the partially autoregressive loss, read at the pseudo masks"})


@register_criterion("pmlm", dataclass=PMLMCriterionConfig)
class PMLMCriterion(FairseqCriterion):
    def __init__(self, cfg: PMLMCriterionConfig, task):
        super().__init__(task)
        self.ae_weight = cfg.ae_weight
        self.par_weight = cfg.par_weight

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
        loss = self.ae_weight * ae_loss + self.par_weight * par_loss
        # Counts stay tensors, as in fairseq's masked_lm: reading them here (int(...)) would
        # wait for the device in every step; fairseq's logging sums tensors as they are.
        sample_size = is_ae.sum()  # the masked text tokens, each read once by AE
        logging_output = {
            "loss": loss.data,
            "ae_loss": ae_loss.data,
            "par_loss": par_loss.data,
            "ae_correct": (correct & is_ae).sum(),
            "par_correct": (correct & is_par).sum(),
            "ae_count": sample_size,
            "par_count": is_par.sum(),
            "ntokens": sample["ntokens"],
            "nsentences": sample["nsentences"],
            "sample_size": sample_size,
        }
        return loss, sample_size, logging_output

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        def total(key):
            return sum(log.get(key, 0) for log in logging_outputs)

        sample_size = total("sample_size")
        ae_count, par_count = total("ae_count"), total("par_count")
        if sample_size > 0:
            metrics.log_scalar("loss", total("loss") / sample_size / math.log(2), sample_size,
                               round=3)
        if ae_count > 0:
            metrics.log_scalar("ae_loss", total("ae_loss") / ae_count / math.log(2), ae_count,
                               round=3)
            metrics.log_scalar("ae_acc", total("ae_correct") / ae_count, ae_count, round=3)
        if par_count > 0:
            metrics.log_scalar("par_loss", total("par_loss") / par_count / math.log(2),
                               par_count, round=3)
            metrics.log_scalar("par_acc", total("par_correct") / par_count, par_count, round=3)
        # Totals since the last log line, not averages.
        metrics.log_scalar_sum("ae_count", ae_count)
        metrics.log_scalar_sum("par_count", par_count)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
