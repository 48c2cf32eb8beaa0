"""Every LayerNorm of the model comes from fairseq's ``LayerNorm`` factory, which returns apex's
``FusedLayerNorm`` on a GPU host that has apex, with unchanged parameter names."""
from fairseq.modules import LayerNorm as fairseq_layer_norm
from torch import nn

from fairseq_unilmv2.models.unilm_v2 import UniLMv2Config
from fairseq_unilmv2.modules import transformer


def test_layer_norms_come_from_fairseqs_factory(monkeypatch):
    calls = []

    def recording_factory(*args, **kwargs):
        module = fairseq_layer_norm(*args, **kwargs)
        calls.append((module, kwargs.get("eps")))
        return module

    monkeypatch.setattr(transformer, "LayerNorm", recording_factory)
    cfg = UniLMv2Config(encoder_layers=3, encoder_embed_dim=32, encoder_ffn_embed_dim=64,
                        encoder_attention_heads=2, layer_norm_eps=1e-12)
    model = transformer.UniLMv2Transformer(cfg, vocab_size=50, padding_idx=1)
    layer_norms = [m for m in model.modules() if isinstance(m, nn.LayerNorm)]
    # Embeddings, two per layer, the LM head: all of them, each with the configured epsilon.
    assert len(layer_norms) == 1 + 2 * 3 + 1
    assert {id(m) for m, _ in calls} == {id(m) for m in layer_norms}
    assert all(eps == 1e-12 for _, eps in calls)
    names = [n for n in model.state_dict() if "layer_norm" in n]
    assert "embed_layer_norm.weight" in names and "layers.2.final_layer_norm.bias" in names
    assert "lm_head.layer_norm.weight" in names and len(names) == 2 * len(layer_norms)
