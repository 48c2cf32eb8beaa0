"""Import of Hugging Face BERT weights (issue 4): same computation, exact round trip, clear errors.

A tiny random ``transformers.BertForMaskedLM`` is saved as ``save_pretrained`` does, converted
with the library, and run next to the fairseq model on a padded batch whose WordPiece ids are
mapped to fairseq ids through the two vocabularies.
"""
import json
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from fairseq import checkpoint_utils
from helpers import REPO, TINY_WORDPIECE_VOCAB, write_wordpiece_vocab

from fairseq_unilmv2.convert import ConversionError, convert_checkpoint, export_checkpoint
from fairseq_unilmv2.convert.vocab import wordpiece_rows

transformers = pytest.importorskip("transformers")
safetensors_torch = pytest.importorskip("safetensors.torch")

TASK = "unilm_seq2seq"
SENTENCES = [["[CLS]", "the", "cat", "##s", "sat", "on", "the", "mat", ".", "[SEP]"],
             ["[CLS]", "hello", "world", "[SEP]", "[MASK]", "[UNK]", "[SEP]"]]


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """A tiny random BERT saved as a release would be: weights, config.json, vocab.txt."""
    root = tmp_path_factory.mktemp("bert")
    config = transformers.BertConfig(
        vocab_size=len(TINY_WORDPIECE_VOCAB), hidden_size=32, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=64, max_position_embeddings=24,
        layer_norm_eps=1e-3)  # far from fairseq's default 1e-5: it must come from config.json
    torch.manual_seed(0)
    hf = transformers.BertForMaskedLM(config).eval()
    with torch.no_grad():  # a non-zero output bias, so that its permutation is checked too
        hf.cls.predictions.bias.normal_()
    hf.save_pretrained(root / "hf")
    write_wordpiece_vocab(root / "vocab.txt")
    return root, hf


@pytest.fixture(scope="module")
def converted(released, tmp_path_factory):
    root, _ = released
    out = tmp_path_factory.mktemp("fairseq")
    result = convert_checkpoint(root / "hf" / "model.safetensors", root / "hf" / "config.json",
                                root / "vocab.txt", out, task=TASK)
    return result, out


def padded_batch(sentences):
    """WordPiece ids (B, T), right-padded with [PAD]."""
    width = max(map(len, sentences))
    rows = [[TINY_WORDPIECE_VOCAB.index(t) for t in s] + [0] * (width - len(s)) for s in sentences]
    return torch.tensor(rows)


def pair_types(wordpiece_ids):
    """BERT token types: 0 up to the first [SEP] included, 1 after it (padding included)."""
    is_sep = wordpiece_ids.eq(TINY_WORDPIECE_VOCAB.index("[SEP]")).long()
    return (torch.cumsum(is_sep, dim=1) - is_sep).gt(0).long()


def to_fairseq_ids(wordpiece_ids, dictionary):
    rows = wordpiece_rows(dictionary, TINY_WORDPIECE_VOCAB)  # fairseq id -> WordPiece row
    fairseq_id = torch.empty_like(rows)
    fairseq_id[rows] = torch.arange(len(rows))
    return fairseq_id[wordpiece_ids], rows


def test_fairseq_model_computes_what_hf_bert_computes(released, converted):
    _, hf = released
    result, out = converted
    assert result.layout == "bert"
    # The written checkpoint is what fairseq loads: compare through it, not the in-memory copy.
    models, _, task = checkpoint_utils.load_model_ensemble_and_task([str(out / "model.pt")])
    model = models[0].eval()
    assert task.source_dictionary.symbols == result.dictionary.symbols

    wordpiece = padded_batch(SENTENCES)
    fairseq_ids, rows = to_fairseq_ids(wordpiece, task.source_dictionary)
    assert fairseq_ids[0, 0] == task.source_dictionary.bos()
    assert fairseq_ids[1, -1] == task.source_dictionary.pad()
    assert fairseq_ids[1, 4] == task.source_dictionary.index("<mask>")
    real, types = wordpiece.ne(0), pair_types(wordpiece)
    with torch.no_grad():
        hf_out = hf(input_ids=wordpiece, attention_mask=real.long(), token_type_ids=types,
                    output_hidden_states=True)
        features, _ = model(fairseq_ids, segment_labels=types, features_only=True)
        logits, _ = model(fairseq_ids, segment_labels=types)
    torch.testing.assert_close(features[real], hf_out.hidden_states[-1][real], atol=1e-5, rtol=0)
    hf_log_probs = F.log_softmax(hf_out.logits, dim=-1)[..., rows]  # columns in fairseq order
    torch.testing.assert_close(F.log_softmax(logits, dim=-1)[real], hf_log_probs[real],
                               atol=1e-5, rtol=0)


@pytest.mark.parametrize("task_name, task_args", [
    ("pmlm", {}), ("unilm_seq2seq", {"source_lang": "src", "target_lang": "tgt"})])
def test_task_dictionary_ids_line_up_with_embedding_rows(released, converted, task_name,
                                                         task_args):
    """Whatever UniLMv2 task loads DIR (dict.txt, then <mask> appended), every WordPiece token's
    fairseq id points at that token's released embedding row."""
    from fairseq import tasks
    from fairseq.dataclass.configs import FairseqConfig
    from omegaconf import OmegaConf

    _, hf = released
    _, out = converted
    task_cfg = tasks.TASK_DATACLASS_REGISTRY[task_name](_name=task_name, data=str(out),
                                                        **task_args)
    cfg = OmegaConf.structured(FairseqConfig(task=task_cfg))  # as fairseq-train builds it
    dictionary = tasks.setup_task(cfg.task).source_dictionary
    model_state = checkpoint_utils.load_checkpoint_to_cpu(str(out / "model.pt"))["model"]
    embed = model_state["transformer.embed_tokens.weight"]
    released_embed = hf.bert.embeddings.word_embeddings.weight.detach()
    assert len(dictionary) == embed.size(0) == len(TINY_WORDPIECE_VOCAB)
    special = {"[CLS]": dictionary.bos(), "[PAD]": dictionary.pad(), "[SEP]": dictionary.eos(),
               "[UNK]": dictionary.unk(), "[MASK]": dictionary.index("<mask>")}
    for row, token in enumerate(TINY_WORDPIECE_VOCAB):
        index = special.get(token, dictionary.index(token))
        assert index != dictionary.unk() or token == "[UNK]", token
        assert torch.equal(embed[index], released_embed[row]), token


def test_bare_bert_model_without_prefix_from_bin(released, tmp_path):
    """A ``BertModel`` state dict (no ``bert.`` prefix, no LM head) in a ``.bin``."""
    root, hf = released
    torch.save(hf.bert.state_dict(), tmp_path / "pytorch_model.bin")
    result = convert_checkpoint(tmp_path / "pytorch_model.bin", root / "hf" / "config.json",
                                root / "vocab.txt", tmp_path / "out", task=TASK)
    wordpiece = padded_batch(SENTENCES)
    fairseq_ids, _ = to_fairseq_ids(wordpiece, result.dictionary)
    real, types = wordpiece.ne(0), pair_types(wordpiece)
    with torch.no_grad():
        expected = hf.bert(input_ids=wordpiece, attention_mask=real.long(),
                           token_type_ids=types).last_hidden_state
        features, _ = result.model.eval()(fairseq_ids, segment_labels=types, features_only=True)
    torch.testing.assert_close(features[real], expected[real], atol=1e-5, rtol=0)


def test_round_trip_fairseq_hf_fairseq_is_exact(released, converted, tmp_path):
    root, hf = released
    result, out = converted
    export = export_checkpoint(out / "model.pt", tmp_path / "hf", vocab=out / "vocab.txt")
    # With the release's vocabulary order the export is the released tensors, bit for bit.
    exported = safetensors_torch.load_file(str(export / "model.safetensors"))
    original = safetensors_torch.load_file(str(root / "hf" / "model.safetensors"))
    assert exported.keys() == original.keys()
    for name in original:
        assert torch.equal(exported[name], original[name]), name
    reloaded = transformers.BertForMaskedLM.from_pretrained(export).eval()
    wordpiece = padded_batch(SENTENCES)
    with torch.no_grad():  # exact: the same tensors through the same kernels, in this process
        torch.testing.assert_close(reloaded(input_ids=wordpiece).logits,
                                   hf(input_ids=wordpiece).logits, atol=0, rtol=0)

    again = convert_checkpoint(export / "model.safetensors", export / "config.json",
                               export / "vocab.txt", tmp_path / "fairseq", task=TASK)
    first, second = result.model.state_dict(), again.model.state_dict()
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), name


# ----------------------------------------------------------------------------- clear errors
def _state(released):
    root, _ = released
    return safetensors_torch.load_file(str(root / "hf" / "model.safetensors"))


def _convert(tmp_path, state, config, tokens=TINY_WORDPIECE_VOCAB):
    torch.save(state, tmp_path / "model.bin")
    (tmp_path / "config.json").write_text(json.dumps(config))
    write_wordpiece_vocab(tmp_path / "vocab.txt", tokens)
    return convert_checkpoint(tmp_path / "model.bin", tmp_path / "config.json",
                              tmp_path / "vocab.txt", tmp_path / "out", task=TASK)


def _config(released):
    root, _ = released
    return json.loads((root / "hf" / "config.json").read_text())


def test_missing_key_is_named(released, tmp_path):
    state = _state(released)
    del state["bert.encoder.layer.1.attention.self.key.weight"]
    with pytest.raises(ConversionError, match=r"'bert\.encoder\.layer\.1\.attention\.self\.key"
                                              r"\.weight' is missing"):
        _convert(tmp_path, state, _config(released))


def test_shape_disagreeing_with_config_is_named(released, tmp_path):
    config = dict(_config(released), intermediate_size=48)
    with pytest.raises(ConversionError, match=r"fc1\.weight has shape \(64, 32\).*describes "
                                              r"\(48, 32\)"):
        _convert(tmp_path, _state(released), config)


def test_vocabulary_size_differing_from_embeddings(released, tmp_path):
    with pytest.raises(ConversionError, match=r"vocabulary has 29 tokens but the word "
                                              r"embedding table 28 rows"):
        _convert(tmp_path, _state(released), _config(released),
                 TINY_WORDPIECE_VOCAB + ["extra"])


def test_unknown_layout_from_the_command_line(released, tmp_path):
    """The CLI prints the reason and exits 2: no traceback."""
    torch.save({"encoder.weight": torch.zeros(2, 2)}, tmp_path / "model.bin")
    (tmp_path / "config.json").write_text(json.dumps(_config(released)))
    write_wordpiece_vocab(tmp_path / "vocab.txt")
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "convert_checkpoint.py"), "--checkpoint",
         str(tmp_path / "model.bin"), "--config", str(tmp_path / "config.json"), "--vocab",
         str(tmp_path / "vocab.txt"), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "error: unknown checkpoint layout" in proc.stderr
    assert "Traceback" not in proc.stderr
