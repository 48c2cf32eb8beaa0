"""Import of pre-trained UniLMv2 "fast QKV" weights with a relative position bias (issue 4).

The fairseq model's outputs are compared with a forward pass written here from the raw tensors
of the released layout (fused ``qkv_linear``, ``q_bias`` / ``v_bias``, one bias table shared by
all layers), not through the project's layers. Also: the bucket function against values worked
out by hand, the cyclic position-table extension, and an exact fairseq -> HF -> fairseq round
trip that keeps the bias under its s2s-ft name.
"""
import json
import math

import pytest
import torch
import torch.nn.functional as F
from fairseq import checkpoint_utils
from helpers import TINY_WORDPIECE_VOCAB, write_wordpiece_vocab

from fairseq_unilmv2.convert import convert_checkpoint, export_checkpoint
from fairseq_unilmv2.convert.vocab import wordpiece_rows
from fairseq_unilmv2.modules.relative_position import relative_position_bucket

TASK = "unilm_seq2seq"
HIDDEN, HEADS, LAYERS, FFN, TABLE, BINS, MAX_REL, EPS = 16, 2, 2, 32, 512, 32, 128, 1e-5
CONFIG = {"vocab_size": len(TINY_WORDPIECE_VOCAB), "hidden_size": HIDDEN,
          "num_hidden_layers": LAYERS, "num_attention_heads": HEADS, "intermediate_size": FFN,
          "hidden_act": "gelu", "max_position_embeddings": TABLE, "type_vocab_size": 2,
          "layer_norm_eps": EPS, "rel_pos_bins": BINS, "max_rel_pos": MAX_REL,
          "source_type_id": 0, "target_type_id": 1}

# Worked out by hand from SPEC 2 (32 bins -> 16 a sign, 8 exact; max distance 128):
# n < 8 -> n; else 8 + floor(ln(n/8) / ln(16) * 8), at most 15; +16 when the key is to the right.
# e.g. 20: ln(2.5)/ln(16)*8 = 2.64 -> 10; 127: ln(15.875)/ln(16)*8 = 7.98 -> 15; 128: 8 -> 16 -> 15.
HAND_BUCKETS = {0: 0, 1: 17, -1: 1, 7: 23, -7: 7, 8: 24, -8: 8, 20: 26, -20: 10, 127: 31,
                -127: 15, 128: 31, -128: 15, 500: 31, -500: 15}


def test_bucket_function_matches_hand_computed_values():
    distances = torch.tensor(list(HAND_BUCKETS))
    buckets = relative_position_bucket(distances, num_buckets=32, max_distance=128)
    assert dict(zip(HAND_BUCKETS, buckets.tolist())) == HAND_BUCKETS


def hand_bucket(distance: int, bins: int = BINS, max_distance: int = MAX_REL) -> int:
    """The same rule written with Python scalars, for the independent forward below."""
    half, exact = bins // 2, bins // 4
    offset, n = (half if distance > 0 else 0), abs(distance)
    if n < exact:
        return offset + n
    return offset + min(half - 1, exact + int(math.log(n / exact) / math.log(max_distance / exact)
                                              * (half - exact)))


def test_hand_bucket_agrees_with_the_table():
    assert {d: hand_bucket(d) for d in HAND_BUCKETS} == HAND_BUCKETS


def fast_qkv_state_dict(seed: int = 0):
    """A random pre-trained UniLMv2 state dict in the released "fast QKV" layout."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape, scale=0.3):
        return torch.randn(*shape, generator=g) * scale

    sd = {"bert.embeddings.word_embeddings.weight": rand(len(TINY_WORDPIECE_VOCAB), HIDDEN),
          "bert.embeddings.position_embeddings.weight": rand(TABLE, HIDDEN),
          "bert.embeddings.token_type_embeddings.weight": rand(2, HIDDEN),
          "bert.embeddings.LayerNorm.weight": 1 + rand(HIDDEN),
          "bert.embeddings.LayerNorm.bias": rand(HIDDEN),
          # Large bias values so that a wrong bucket or a wrong sign shows in the output.
          "bert.encoder.rel_pos_bias.weight": rand(HEADS, BINS, scale=2.0),
          "bert.pooler.dense.weight": rand(HIDDEN, HIDDEN), "bert.pooler.dense.bias": rand(HIDDEN),
          "cls.predictions.transform.dense.weight": rand(HIDDEN, HIDDEN),
          "cls.predictions.transform.dense.bias": rand(HIDDEN),
          "cls.predictions.transform.LayerNorm.weight": 1 + rand(HIDDEN),
          "cls.predictions.transform.LayerNorm.bias": rand(HIDDEN),
          "cls.predictions.bias": rand(len(TINY_WORDPIECE_VOCAB))}
    for n in range(LAYERS):
        p = f"bert.encoder.layer.{n}."
        sd.update({p + "attention.self.qkv_linear.weight": rand(3 * HIDDEN, HIDDEN),
                   p + "attention.self.q_bias": rand(HIDDEN),
                   p + "attention.self.v_bias": rand(HIDDEN),
                   p + "attention.output.dense.weight": rand(HIDDEN, HIDDEN),
                   p + "attention.output.dense.bias": rand(HIDDEN),
                   p + "attention.output.LayerNorm.weight": 1 + rand(HIDDEN),
                   p + "attention.output.LayerNorm.bias": rand(HIDDEN),
                   p + "intermediate.dense.weight": rand(FFN, HIDDEN),
                   p + "intermediate.dense.bias": rand(FFN),
                   p + "output.dense.weight": rand(HIDDEN, FFN), p + "output.dense.bias": rand(HIDDEN),
                   p + "output.LayerNorm.weight": 1 + rand(HIDDEN),
                   p + "output.LayerNorm.bias": rand(HIDDEN)})
    return sd


def reference_forward(sd, ids, positions, types, may_attend):
    """UniLMv2 from the raw released tensors: returns final hidden states and MLM logits
    over the WordPiece vocabulary. ``may_attend`` is bool (B, T, T)."""
    def layer_norm(x, name):
        return F.layer_norm(x, (HIDDEN,), sd[name + ".weight"], sd[name + ".bias"], EPS)

    def linear(x, name):
        return x @ sd[name + ".weight"].T + sd[name + ".bias"]

    x = (sd["bert.embeddings.word_embeddings.weight"][ids]
         + sd["bert.embeddings.position_embeddings.weight"][positions]
         + sd["bert.embeddings.token_type_embeddings.weight"][types])
    x = layer_norm(x, "bert.embeddings.LayerNorm")
    distance = positions[:, None, :] - positions[:, :, None]  # key position - query position
    buckets = torch.tensor([[[hand_bucket(int(d)) for d in row] for row in batch]
                            for batch in distance])
    bias = sd["bert.encoder.rel_pos_bias.weight"][:, buckets].permute(1, 0, 2, 3)  # B,H,T,T
    batch, length, head_dim = ids.size(0), ids.size(1), HIDDEN // HEADS
    for n in range(LAYERS):
        p = f"bert.encoder.layer.{n}."
        qkv_bias = torch.cat([sd[p + "attention.self.q_bias"], torch.zeros(HIDDEN),
                              sd[p + "attention.self.v_bias"]])
        qkv = x @ sd[p + "attention.self.qkv_linear.weight"].T + qkv_bias
        q, k, v = (t.reshape(batch, length, HEADS, head_dim).transpose(1, 2)
                   for t in qkv.split(HIDDEN, dim=-1))
        scores = q @ k.transpose(-1, -2) / math.sqrt(head_dim) + bias
        scores = scores.masked_fill(~may_attend[:, None], float("-inf"))
        context = (scores.softmax(-1) @ v).transpose(1, 2).reshape(batch, length, HIDDEN)
        x = layer_norm(x + linear(context, p + "attention.output.dense"),
                       p + "attention.output.LayerNorm")
        hidden = linear(F.gelu(linear(x, p + "intermediate.dense")), p + "output.dense")
        x = layer_norm(x + hidden, p + "output.LayerNorm")
    head = layer_norm(F.gelu(linear(x, "cls.predictions.transform.dense")),
                      "cls.predictions.transform.LayerNorm")
    logits = head @ sd["bert.embeddings.word_embeddings.weight"].T + sd["cls.predictions.bias"]
    return x, logits


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    root = tmp_path_factory.mktemp("unilm2")
    sd = fast_qkv_state_dict()
    torch.save(sd, root / "unilm2-tiny.bin")
    (root / "unilm2-tiny-config.json").write_text(json.dumps(CONFIG))
    write_wordpiece_vocab(root / "unilm2-tiny-vocab.txt")
    return root, sd


def convert(root, out, **kwargs):
    return convert_checkpoint(root / "unilm2-tiny.bin", root / "unilm2-tiny-config.json",
                              root / "unilm2-tiny-vocab.txt", out, task=TASK, **kwargs)


def test_fast_qkv_import_matches_independent_forward(released, tmp_path):
    root, sd = released
    result = convert(root, tmp_path)
    assert result.layout == "fast_qkv"
    models, _, task = checkpoint_utils.load_model_ensemble_and_task([str(tmp_path / "model.pt")])
    model = models[0].eval()
    rows = wordpiece_rows(task.source_dictionary, TINY_WORDPIECE_VOCAB)
    fairseq_id = torch.empty_like(rows)
    fairseq_id[rows] = torch.arange(len(rows))

    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, len(TINY_WORDPIECE_VOCAB), (2, 12), generator=g)
    # Distances from 0 to beyond max_rel_pos, both signs, and repeated positions (pseudo masks).
    positions = torch.tensor([[0, 1, 2, 3, 10, 30, 31, 150, 151, 400, 401, 402],
                              [0, 1, 2, 3, 4, 5, 2, 3, 4, 5, 6, 7]])
    types = torch.randint(0, 2, (2, 12), generator=g)
    may_attend = torch.rand(2, 12, 12, generator=g) < 0.6
    may_attend |= torch.eye(12, dtype=torch.bool)  # every query sees at least itself
    with torch.no_grad():
        features, _ = model(fairseq_id[ids], positions=positions, segment_labels=types,
                            attn_mask=may_attend, features_only=True)
        logits, _ = model(fairseq_id[ids], positions=positions, segment_labels=types,
                          attn_mask=may_attend)
    expected_features, expected_logits = reference_forward(sd, ids, positions, types, may_attend)
    torch.testing.assert_close(features, expected_features, atol=1e-5, rtol=0)
    torch.testing.assert_close(logits, expected_logits[..., rows], atol=1e-5, rtol=0)


def test_max_positions_extends_the_table_cyclically(released, tmp_path):
    root, sd = released
    result = convert(root, tmp_path, max_positions=2 * TABLE + 100)
    table = result.model.transformer.embed_positions.weight.detach()
    original = sd["bert.embeddings.position_embeddings.weight"]
    assert table.shape == (2 * TABLE + 100, HIDDEN)
    assert torch.equal(table[:TABLE], original)
    assert torch.equal(table[TABLE:2 * TABLE], original)  # row 512 + k = row k
    assert torch.equal(table[2 * TABLE:], original[:100])
    assert result.model.max_positions() == 2 * TABLE + 100


def test_round_trip_with_relative_position_bias_is_exact(released, tmp_path):
    """fairseq -> HF -> fairseq, with every parameter random (a key bias included)."""
    root, _ = released
    convert(root, tmp_path / "first")
    state = checkpoint_utils.load_checkpoint_to_cpu(str(tmp_path / "first" / "model.pt"))
    g = torch.Generator().manual_seed(2)
    for tensor in state["model"].values():  # lm_head.weight is embed_tokens: changed once
        tensor.copy_(torch.randn(tensor.shape, generator=g))
    assert state["model"]["transformer.lm_head.weight"].data_ptr() == \
        state["model"]["transformer.embed_tokens.weight"].data_ptr()
    torch.save(state, tmp_path / "first" / "model.pt")

    export = export_checkpoint(tmp_path / "first" / "model.pt", tmp_path / "hf")
    config = json.loads((export / "config.json").read_text())
    assert (config["rel_pos_bins"], config["max_rel_pos"]) == (BINS, MAX_REL)
    second = convert_checkpoint(export / "model.safetensors", export / "config.json",
                                export / "vocab.txt", tmp_path / "second", task=TASK)
    assert second.layout == "s2s_ft"
    restored = second.model.state_dict()
    assert restored.keys() == state["model"].keys()
    for name, tensor in state["model"].items():
        assert torch.equal(restored[name], tensor), name
