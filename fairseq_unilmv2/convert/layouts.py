"""The three state-dict layouts of the released checkpoints (SPEC 6) and their fairseq names.

- ``fast_qkv``: pre-trained UniLMv2. BERT names under ``bert.``, but each layer's attention is
  one fused ``attention.self.qkv_linear.weight`` (query, key, value rows in that order) with
  ``q_bias`` and ``v_bias`` only (the key bias is zero), and the relative position bias is
  ``bert.encoder.rel_pos_bias.weight`` (heads x bins).
- ``s2s_ft``: checkpoints fine-tuned by the authors' s2s-ft: plain BERT names,
  ``bert.rel_pos_bias.weight``, LM head under ``cls.predictions.*``.
- ``bert``: Hugging Face BERT / MiniLM / UniLMv1, with or without the ``bert.`` prefix, no
  relative position bias.

:func:`to_fairseq` maps any of them to the parameter names of ``UniLMv2Model`` (all under
``transformer.``), rows still in WordPiece order; :func:`to_hf_bert` is the reverse (``s2s_ft``
names for the bias). Model dimensions come from the config file (:func:`model_config`).
"""
import logging
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch

from ..models.unilm_v2 import UniLMv2Config
from .errors import ConversionError

logger = logging.getLogger(__name__)

StateDict = Dict[str, torch.Tensor]

FAST_QKV, S2S_FT, BERT = "fast_qkv", "s2s_ft", "bert"
LAYOUT_DESCRIPTIONS = {
    FAST_QKV: "pre-trained UniLMv2 (fused qkv_linear, q_bias/v_bias, "
              "bert.encoder.rel_pos_bias.weight)",
    S2S_FT: "s2s-ft fine-tuned (separate query/key/value, bert.rel_pos_bias.weight, "
            "cls.predictions.*)",
    BERT: "Hugging Face BERT / MiniLM / UniLMv1 (no relative position bias)",
}
REL_POS_KEYS = {FAST_QKV: "bert.encoder.rel_pos_bias.weight", S2S_FT: "bert.rel_pos_bias.weight"}

# fairseq name (under transformer.) <- BERT name (under bert.), for the non-attention parameters.
EMBEDDINGS = {
    "embed_tokens.weight": "embeddings.word_embeddings.weight",
    "embed_positions.weight": "embeddings.position_embeddings.weight",
    "embed_token_types.weight": "embeddings.token_type_embeddings.weight",
    "embed_layer_norm.weight": "embeddings.LayerNorm.weight",
    "embed_layer_norm.bias": "embeddings.LayerNorm.bias",
}
LAYER = {
    "self_attn.out_proj.{}": "attention.output.dense.{}",
    "self_attn_layer_norm.{}": "attention.output.LayerNorm.{}",
    "fc1.{}": "intermediate.dense.{}",
    "fc2.{}": "output.dense.{}",
    "final_layer_norm.{}": "output.LayerNorm.{}",
}
SEPARATE_QKV = {"q_proj": "query", "k_proj": "key", "v_proj": "value"}
LM_HEAD = {  # full names: the head lives outside bert.
    "lm_head.dense.weight": "cls.predictions.transform.dense.weight",
    "lm_head.dense.bias": "cls.predictions.transform.dense.bias",
    "lm_head.layer_norm.weight": "cls.predictions.transform.LayerNorm.weight",
    "lm_head.layer_norm.bias": "cls.predictions.transform.LayerNorm.bias",
    "lm_head.bias": "cls.predictions.bias",
}
# Keys that the fairseq model has no use for: pooler, next-sentence head, buffers.
IGNORED_SUFFIXES = ("position_ids", "token_type_ids")
IGNORED_PREFIXES = ("bert.pooler.", "cls.seq_relationship.")

HIDDEN_ACT = {"gelu": "gelu", "gelu_new": "gelu_accurate", "gelu_fast": "gelu_fast",
              "relu": "relu", "tanh": "tanh", "linear": "linear"}


# ----------------------------------------------------------------------------- config
def model_config(config: Mapping[str, Any], max_positions: Optional[int] = None) -> UniLMv2Config:
    """``UniLMv2Config`` from a BERT/UniLM ``config.json`` (dimensions, eps, bias, type ids)."""
    required = ["hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                "vocab_size"]
    missing = [k for k in required if k not in config]
    if missing:
        raise ConversionError(f"config.json lacks {', '.join(missing)}: pass the "
                              "<name>-config.json released with the checkpoint (--config)")
    act = config.get("hidden_act", "gelu")
    if act not in HIDDEN_ACT:
        raise ConversionError(f"config.json hidden_act {act!r} is not supported; known: "
                              f"{', '.join(HIDDEN_ACT)}")
    table = int(config.get("max_position_embeddings", 512))
    if max_positions is not None and max_positions < 1:
        raise ConversionError(f"--max-positions {max_positions} must be a positive row count")
    return UniLMv2Config(
        encoder_layers=int(config["num_hidden_layers"]),
        encoder_embed_dim=int(config["hidden_size"]),
        encoder_ffn_embed_dim=int(config["intermediate_size"]),
        encoder_attention_heads=int(config["num_attention_heads"]),
        max_positions=max_positions or table,
        type_vocab_size=int(config.get("type_vocab_size", 2)),
        source_type_id=int(config.get("source_type_id", 0)),
        target_type_id=int(config.get("target_type_id", 1)),
        rel_pos_bins=int(config.get("rel_pos_bins", 0) or 0),
        max_rel_pos=int(config.get("max_rel_pos", 128) or 128),
        layer_norm_eps=float(config.get("layer_norm_eps", 1e-12)),
        activation_fn=HIDDEN_ACT[act],
        dropout=float(config.get("hidden_dropout_prob", 0.1)),
        attention_dropout=float(config.get("attention_probs_dropout_prob", 0.1)),
    )


def hf_config(cfg, vocab_size: int, pad_token_id: int) -> Dict[str, Any]:
    """The ``config.json`` of an exported model (BERT fields plus the UniLM ones)."""
    act = {v: k for k, v in HIDDEN_ACT.items()}[str(cfg.activation_fn)]
    config = {
        "architectures": ["BertForMaskedLM"], "model_type": "bert",
        "vocab_size": vocab_size, "hidden_size": cfg.encoder_embed_dim,
        "num_hidden_layers": cfg.encoder_layers, "num_attention_heads": cfg.encoder_attention_heads,
        "intermediate_size": cfg.encoder_ffn_embed_dim, "hidden_act": act,
        "hidden_dropout_prob": cfg.dropout, "attention_probs_dropout_prob": cfg.attention_dropout,
        "max_position_embeddings": cfg.max_positions, "type_vocab_size": cfg.type_vocab_size,
        "layer_norm_eps": cfg.layer_norm_eps, "pad_token_id": pad_token_id,
        "initializer_range": 0.02, "tie_word_embeddings": True,
        "source_type_id": cfg.source_type_id, "target_type_id": cfg.target_type_id,
    }
    if cfg.rel_pos_bins > 0:
        config.update(rel_pos_bins=cfg.rel_pos_bins, max_rel_pos=cfg.max_rel_pos)
    return config


# ----------------------------------------------------------------------------- detection
def normalize_keys(state: Mapping[str, torch.Tensor]) -> StateDict:
    """Old TF-style ``LayerNorm.gamma/beta`` -> ``weight/bias``; a bare ``BertModel`` gets the
    ``bert.`` prefix so that every layout is matched with one set of names."""
    out: StateDict = {}
    for key, value in state.items():
        key = key.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta",
                                                                         "LayerNorm.bias")
        if key.startswith(("embeddings.", "encoder.", "pooler.", "rel_pos_bias.")):
            key = "bert." + key
        out[key] = value
    return out


def detect_layout(state: Mapping[str, torch.Tensor]) -> str:
    """``fast_qkv``, ``s2s_ft`` or ``bert`` (keys already normalized)."""
    if any(k.endswith("attention.self.qkv_linear.weight") for k in state):
        return FAST_QKV
    if REL_POS_KEYS[S2S_FT] in state:
        return S2S_FT
    if "bert.embeddings.word_embeddings.weight" in state and any(
            k.endswith("attention.self.query.weight") for k in state):
        return BERT
    sample = ", ".join(sorted(state)[:8])
    raise ConversionError(
        "unknown checkpoint layout: expected pre-trained UniLMv2 (qkv_linear), s2s-ft "
        f"(bert.rel_pos_bias.weight) or Hugging Face BERT names; first keys: {sample}")


# ----------------------------------------------------------------------------- import
class _Source:
    """The checkpoint's tensors, tracking which were used and failing clearly on a gap."""

    def __init__(self, state: StateDict, layout: str):
        self.state, self.layout, self.used = state, layout, set()

    def has(self, key: str) -> bool:
        return key in self.state

    def take(self, key: str) -> torch.Tensor:
        if key not in self.state:
            raise ConversionError(f"checkpoint key {key!r} is missing (layout: "
                                  f"{LAYOUT_DESCRIPTIONS[self.layout]}); is the file complete "
                                  "and does config.json match it?")
        self.used.add(key)
        return self.state[key]

    def unused(self) -> List[str]:
        return sorted(k for k in self.state if k not in self.used)


def _attention(src: _Source, prefix: str, dim: int) -> StateDict:
    """q/k/v projections of one layer, fused or separate."""
    out: StateDict = {}
    if src.layout == FAST_QKV:
        qkv = src.take(prefix + "attention.self.qkv_linear.weight")
        if qkv.shape != (3 * dim, dim):
            raise ConversionError(f"{prefix}attention.self.qkv_linear.weight has shape "
                                  f"{tuple(qkv.shape)}, config.json hidden_size {dim} needs "
                                  f"{(3 * dim, dim)}")
        q, k, v = qkv.split(dim, dim=0)
        out.update({"q_proj.weight": q, "k_proj.weight": k, "v_proj.weight": v,
                    "q_proj.bias": src.take(prefix + "attention.self.q_bias"),
                    "v_proj.bias": src.take(prefix + "attention.self.v_bias")})
        out["k_proj.bias"] = torch.zeros_like(out["q_proj.bias"])  # released: no key bias
        if src.has(prefix + "attention.self.qkv_linear.bias"):
            raise ConversionError(f"{prefix}attention.self.qkv_linear.bias is unexpected in a "
                                  "fast-QKV checkpoint (biases are q_bias / v_bias)")
    else:
        for ours, theirs in SEPARATE_QKV.items():
            for kind in ("weight", "bias"):
                out[f"{ours}.{kind}"] = src.take(f"{prefix}attention.self.{theirs}.{kind}")
    return {f"self_attn.{k}": v for k, v in out.items()}


def to_fairseq(state: Mapping[str, torch.Tensor], cfg: UniLMv2Config,
               layout: Optional[str] = None) -> Tuple[StateDict, str]:
    """fairseq parameter names (under ``transformer.``) for a released state dict.

    Returns the mapped tensors (vocabulary rows still in WordPiece order, position table as
    stored) and the layout found. Pooler and next-sentence weights are dropped (logged).
    """
    state = normalize_keys(state)
    layout = layout or detect_layout(state)
    src = _Source(state, layout)
    out: StateDict = {ours: src.take("bert." + theirs) for ours, theirs in EMBEDDINGS.items()}
    for n in range(cfg.encoder_layers):
        prefix = f"bert.encoder.layer.{n}."
        out.update({f"layers.{n}.{k}": v
                    for k, v in _attention(src, prefix, cfg.encoder_embed_dim).items()})
        for ours, theirs in LAYER.items():
            for kind in ("weight", "bias"):
                out[f"layers.{n}.{ours.format(kind)}"] = src.take(prefix + theirs.format(kind))
    extra_layer = f"bert.encoder.layer.{cfg.encoder_layers}."
    if any(k.startswith(extra_layer) for k in state):
        raise ConversionError(f"the checkpoint has more than num_hidden_layers = "
                              f"{cfg.encoder_layers} layers ({extra_layer}* exists): fix "
                              "config.json")
    out.update(_relative_position_bias(src, cfg))
    out.update(_lm_head(src, out["embed_tokens.weight"]))
    unused = [k for k in src.unused()
              if not k.endswith(IGNORED_SUFFIXES) and not k.startswith(IGNORED_PREFIXES)]
    if unused:
        # Not fatal: a release may carry extra heads; say what is left behind.
        logger.warning(f"{len(unused)} checkpoint tensor(s) have no place in unilm_v2 and are "
                       f"dropped: {', '.join(unused[:10])}" + (" ..." if len(unused) > 10 else ""))
    dropped = [k for k in src.unused() if k.startswith(IGNORED_PREFIXES)]
    if dropped:
        logger.info(f"dropped {len(dropped)} pooler / next-sentence tensors (not used by "
                    "unilm_v2)")
    return {"transformer." + k: v for k, v in out.items()}, layout


def _relative_position_bias(src: _Source, cfg: UniLMv2Config) -> StateDict:
    key = REL_POS_KEYS.get(src.layout)
    if key is None:
        if cfg.rel_pos_bins > 0:
            raise ConversionError(f"config.json sets rel_pos_bins = {cfg.rel_pos_bins} but the "
                                  "checkpoint has no relative position bias "
                                  "(bert.rel_pos_bias.weight / bert.encoder.rel_pos_bias.weight)")
        return {}
    weight = src.take(key)
    if cfg.rel_pos_bins <= 0:
        raise ConversionError(f"the checkpoint has {key} of shape {tuple(weight.shape)} but "
                              "config.json has no rel_pos_bins: add \"rel_pos_bins\": "
                              f"{weight.shape[-1]} and \"max_rel_pos\" (128 in the releases)")
    return {"rel_pos_bias.proj.weight": weight}


def _lm_head(src: _Source, embed_tokens: torch.Tensor) -> StateDict:
    """The MLM head; absent entirely (a bare encoder) it is left to the model's initialization."""
    present = [theirs for theirs in LM_HEAD.values() if src.has(theirs)]
    if not present:
        logger.warning("the checkpoint has no LM head (cls.predictions.*): it keeps a fresh "
                       "initialization and must be trained")
        return {}
    out = {ours: src.take(theirs) for ours, theirs in LM_HEAD.items()}
    decoder = "cls.predictions.decoder.weight"
    if src.has(decoder) and not torch.equal(src.take(decoder), embed_tokens):
        raise ConversionError(f"{decoder} differs from the word embeddings: unilm_v2 ties its "
                              "output projection to the embeddings and cannot hold an untied one")
    if src.has("cls.predictions.decoder.bias"):
        src.take("cls.predictions.decoder.bias")  # the same tensor as cls.predictions.bias
    out["lm_head.weight"] = embed_tokens
    return out


# ----------------------------------------------------------------------------- export
def to_hf_bert(state: Mapping[str, torch.Tensor], num_layers: int) -> StateDict:
    """Hugging Face ``BertForMaskedLM`` names for a fairseq ``unilm_v2`` state dict.

    The relative position bias, if any, is kept under its s2s-ft name (``bert.rel_pos_bias
    .weight``), which the importer reads back. Rows stay in the order given.
    """
    src = {k[len("transformer."):]: v for k, v in state.items() if k.startswith("transformer.")}
    out: StateDict = {"bert." + theirs: src[ours] for ours, theirs in EMBEDDINGS.items()}
    for n in range(num_layers):
        prefix = f"bert.encoder.layer.{n}."
        for ours, theirs in SEPARATE_QKV.items():
            for kind in ("weight", "bias"):
                out[f"{prefix}attention.self.{theirs}.{kind}"] = \
                    src[f"layers.{n}.self_attn.{ours}.{kind}"]
        for ours, theirs in LAYER.items():
            for kind in ("weight", "bias"):
                out[prefix + theirs.format(kind)] = src[f"layers.{n}.{ours.format(kind)}"]
    for ours, theirs in LM_HEAD.items():
        out[theirs] = src[ours]
    # cls.predictions.decoder.{weight,bias} are tied to the embeddings and to the bias above:
    # left out, as transformers' own save_pretrained does.
    if "rel_pos_bias.proj.weight" in src:
        out[REL_POS_KEYS[S2S_FT]] = src["rel_pos_bias.proj.weight"]
    return out
