"""Criterion ``unilm_seq2seq``: label-smoothed cross-entropy read at the pseudo tokens (SPEC 4).

Pseudo token j predicts target token y_j (the last one predicts [SEP]). The LM head runs only at
the pseudo positions (``masked_tokens``); padding is never a pseudo position, so it is excluded.
The loss is summed and normalized by the number of target tokens (``sample_size = ntokens``).
"""
from dataclasses import dataclass, field

from fairseq import utils
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.criterions.label_smoothed_cross_entropy import (LabelSmoothedCrossEntropyCriterion,
                                                             label_smoothed_nll_loss)
from fairseq.dataclass import FairseqDataclass

from ..data.layout import PSEUDO
from ..modules.transformer import select_rows


@dataclass
class UniLMSeq2SeqCriterionConfig(FairseqDataclass):
    label_smoothing: float = field(default=0.1, metadata={
        "help": "epsilon for label smoothing, 0 means plain cross-entropy"})


@register_criterion("unilm_seq2seq", dataclass=UniLMSeq2SeqCriterionConfig)
class UniLMSeq2SeqCriterion(FairseqCriterion):
    def __init__(self, task, label_smoothing: float = 0.1):
        super().__init__(task)
        self.eps = label_smoothing

    def forward(self, model, sample, reduce: bool = True):
        net_input = sample["net_input"]
        pseudo_mask = net_input["roles"].eq(PSEUDO)
        logits, _ = model(**net_input, masked_tokens=pseudo_mask)
        # Row-major order of the pseudo positions is the row-major order of the real targets.
        # The collater's host-side count spares a GPU the sync that boolean indexing makes.
        target = select_rows(sample["target"], sample["target"].ne(self.padding_idx),
                             net_input.get("num_predicted"))
        if logits.size(0) != target.numel():
            raise RuntimeError(f"{logits.size(0)} pseudo tokens for {target.numel()} targets: "
                               "the batch does not come from the unilm_seq2seq task")
        lprobs = utils.log_softmax(logits, dim=-1, onnx_trace=False).float()
        loss, nll_loss = label_smoothed_nll_loss(lprobs, target, self.eps, reduce=reduce)
        ntokens = target.numel()
        logging_output = {
            "loss": loss.data,
            "nll_loss": nll_loss.data,
            "ntokens": ntokens,
            "nsentences": sample["nsentences"],
            "sample_size": ntokens,
            # A tensor, not utils.item(): no wait for the device in the training step.
            "n_correct": lprobs.argmax(dim=-1).eq(target).sum(),
            "total": ntokens,
        }
        return loss, ntokens, logging_output

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        # loss and nll_loss per target token in base 2, ppl, accuracy: as fairseq's own.
        LabelSmoothedCrossEntropyCriterion.reduce_metrics(logging_outputs)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
