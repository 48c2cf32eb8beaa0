"""``--optimizer adam_no_decay_bias_ln``: fairseq's Adam (decoupled weight decay, as AdamW)
with no weight decay on biases and LayerNorm weights, as s2s-ft fine-tunes
(``run_seq2seq.py``: parameters named ``*bias*`` or ``*LayerNorm.weight`` get 0).

fairseq hands an optimizer its parameters without names, so the two groups are told apart by
shape: in BERT-style models the biases (of every linear layer, of the LayerNorms and of the LM
head) and the LayerNorm weights are exactly the 1-D parameters; embeddings and weight matrices
are 2-D and decay by ``--weight-decay``. s2s-ft's name test also matches
``bert.rel_pos_bias.weight`` (the relative position bias table, heads x buckets), which
therefore never decays there: that table carries fairseq's ``optim_overrides =
{"weight_decay": 0.0}`` (which fairseq's fp16 wrappers copy to their fp32 parameters), and
any parameter with that override is exempt here too.

With ``--fp16`` the parameters must reach the optimizer one by one: pass
``--fp16-no-flatten-grads`` (or use ``--memory-efficient-fp16`` / ``--amp``); fairseq refuses
flattened parameters for an optimizer whose ``supports_flat_params`` is False.
"""
import logging
from dataclasses import dataclass
from typing import Dict, List

from fairseq.optim import register_optimizer
from fairseq.optim.adam import FairseqAdam, FairseqAdamConfig

logger = logging.getLogger(__name__)


@dataclass
class AdamNoDecayBiasLayerNormConfig(FairseqAdamConfig):
    """fairseq's Adam options (``--adam-betas``, ``--adam-eps``, ``--weight-decay``, ...);
    ``--weight-decay`` applies to the matrices and embeddings only."""


def weight_decay_groups(params, weight_decay: float) -> List[Dict]:
    """Two torch parameter groups: the 2-D and larger tensors with ``weight_decay``, the 1-D
    ones (biases and LayerNorm weights) and those whose ``optim_overrides`` say
    ``weight_decay: 0`` (the relative position bias table) with none. Empty groups are left
    out."""
    params = list(params)
    def is_exempt(p) -> bool:
        overrides = getattr(p, "optim_overrides", None) or {}
        return p.dim() <= 1 or overrides.get("weight_decay") == 0.0

    decayed = [p for p in params if not is_exempt(p)]
    exempt = [p for p in params if is_exempt(p)]
    groups = [{"params": decayed, "weight_decay": weight_decay},
              {"params": exempt, "weight_decay": 0.0}]
    return [group for group in groups if group["params"]]


@register_optimizer("adam_no_decay_bias_ln", dataclass=AdamNoDecayBiasLayerNormConfig)
class AdamNoDecayBiasLayerNorm(FairseqAdam):
    def __init__(self, cfg: AdamNoDecayBiasLayerNormConfig, params):
        groups = weight_decay_groups(params, cfg.weight_decay)
        count = {g["weight_decay"] == 0.0: sum(p.numel() for p in g["params"]) for g in groups}
        logger.info(f"weight decay {cfg.weight_decay} on {count.get(False, 0):,} values "
                    f"(matrices, embeddings), none on {count.get(True, 0):,} (biases, LayerNorm "
                    "weights, relative position bias)")
        super().__init__(cfg, groups)

    @property
    def supports_flat_params(self) -> bool:
        # One flattened tensor would hide which values are biases: fairseq's FP16Optimizer then
        # asks for --fp16-no-flatten-grads.
        return False
