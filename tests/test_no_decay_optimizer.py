"""``--optimizer adam_no_decay_bias_ln``: s2s-ft's weight decay groups (issue 12).

The groups are checked by name against the model's modules (every ``bias``, every
``nn.LayerNorm`` weight and, as in s2s-ft, the relative position bias table are exempt,
nothing else), and by behaviour: one step with zero
gradients moves only what decays, by exactly ``lr * weight_decay`` of its value.
"""
import torch
from fairseq import optim
from helpers import tiny_unilm_model
from omegaconf import OmegaConf
from torch import nn

from fairseq_unilmv2.optim.adam_no_decay_bias_ln import AdamNoDecayBiasLayerNormConfig

LR, DECAY = 0.1, 0.01


def model_with_head():
    """A model fine-tuned through a classification head: its LM head's own parameters are
    frozen, and fairseq's build_optimizer gives the optimizer the trainable ones only."""
    model, _ = tiny_unilm_model()
    model.register_classification_head("cls", num_classes=3)
    return model


def trainable_names(model):
    return {name for name, p in model.named_parameters() if p.requires_grad}


def build(model):
    cfg = OmegaConf.structured(AdamNoDecayBiasLayerNormConfig(lr=[LR], weight_decay=DECAY,
                                                              tpu=False))
    cfg._name = "adam_no_decay_bias_ln"
    return optim.build_optimizer(cfg, list(model.parameters()))


def exempt_names(model):
    """Biases, LayerNorm weights and the relative position bias table (s2s-ft's name test
    exempts ``bert.rel_pos_bias.weight``), read off the modules (not off shapes)."""
    names = {name for name, _ in model.named_parameters() if name.split(".")[-1] == "bias"}
    names.add("transformer.rel_pos_bias.proj.weight")
    for module_name, module in model.named_modules():
        if isinstance(module, nn.LayerNorm):
            names.add(f"{module_name}.weight")
    return names & trainable_names(model)


def test_groups_hold_exactly_the_biases_layer_norm_weights_and_relative_position_table():
    model = model_with_head()
    optimizer = build(model)
    name_of = {id(p): n for n, p in model.named_parameters()}
    groups = {g["weight_decay"]: {name_of[id(p)] for p in g["params"]}
              for g in optimizer.param_groups}
    assert set(groups) == {DECAY, 0.0}
    assert groups[0.0] == exempt_names(model)
    assert "transformer.embed_layer_norm.weight" in groups[0.0]
    assert "classification_heads.cls.dense.bias" in groups[0.0]
    assert groups[DECAY] == trainable_names(model) - groups[0.0]
    assert "transformer.lm_head.bias" not in groups[0.0] | groups[DECAY]  # frozen
    assert {"transformer.embed_tokens.weight", "transformer.layers.0.fc1.weight",
            "classification_heads.cls.dense.weight"} <= groups[DECAY]


def test_a_step_with_zero_gradients_decays_only_the_matrices():
    model = model_with_head()
    optimizer = build(model)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    exempt = exempt_names(model)
    for name, p in model.named_parameters():
        frozen = not p.requires_grad
        expected = before[name] if name in exempt or frozen else before[name] * (1 - LR * DECAY)
        torch.testing.assert_close(p.detach(), expected, rtol=0, atol=1e-7, msg=name)


def test_flattened_fp16_parameters_are_refused():
    assert build(model_with_head()).supports_flat_params is False
