"""Criterion ``squad_span``: the mean of the start and the end cross-entropies (BERT's SQuAD loss).

Each window's start and end logits (``--task squad``'s span head) are a softmax over the
window's tokens; the targets are the answer's first and last token, or the null position 0.
The loss is summed over windows and normalized by their number (``sample_size``); it is logged
in bits, as fairseq's criteria log theirs, with the start and end accuracies.
"""
import math
from dataclasses import dataclass

import torch.nn.functional as F
from fairseq import metrics
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.dataclass import FairseqDataclass


@dataclass
class SquadSpanCriterionConfig(FairseqDataclass):
    """No options. Declared so that fairseq-train stores ``cfg.criterion`` as a config like
    fairseq-hydra-train does, not as the whole argparse namespace (an undeclared criterion's)."""


@register_criterion("squad_span", dataclass=SquadSpanCriterionConfig)
class SquadSpanCriterion(FairseqCriterion):
    def forward(self, model, sample, reduce: bool = True):
        logits, _ = model(**sample["net_input"], span_head=True)
        logits = logits.float()
        target = sample["target"]
        reduction = "sum" if reduce else "none"
        start_loss = F.cross_entropy(logits[..., 0], target[:, 0], reduction=reduction)
        end_loss = F.cross_entropy(logits[..., 1], target[:, 1], reduction=reduction)
        loss = (start_loss + end_loss) / 2
        windows = target.size(0)
        logging_output = {
            "loss": loss.data,
            "ntokens": sample["ntokens"],
            "nsentences": windows,
            "sample_size": windows,
            # Tensors, not utils.item(): no wait for the device in the training step.
            "start_correct": logits[..., 0].argmax(dim=-1).eq(target[:, 0]).sum(),
            "end_correct": logits[..., 1].argmax(dim=-1).eq(target[:, 1]).sum(),
        }
        return loss, windows, logging_output

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        loss = sum(log.get("loss", 0) for log in logging_outputs)
        windows = sum(log.get("sample_size", 0) for log in logging_outputs)
        metrics.log_scalar("loss", loss / max(windows, 1) / math.log(2), windows, round=3)
        for name in ("start", "end"):
            correct = sum(log.get(f"{name}_correct", 0) for log in logging_outputs)
            metrics.log_scalar(f"{name}_acc", 100.0 * correct / max(windows, 1), windows,
                               round=1)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
