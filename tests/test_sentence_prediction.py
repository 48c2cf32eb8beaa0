"""The bidirectional encoder under fairseq's own ``sentence_prediction`` task (issue 7).

Fast in-process checks of the encoder-side contract (pair token types, classification heads
from checkpoints), then fairseq-train / fairseq-validate / the hub interface on two small
real-text tasks built from ../shared/data/wikitext2:

- word order: is this sentence in its original word order or shuffled? (2 classes)
- length: ``--regression-target`` on sentence pairs, the target being the pair's length in
  words / 10, against the constant (train mean) prediction.

Sentences of wikitext2's test split train, those of its valid split validate (other articles).
"""
import math
import random
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Sequence

import pytest
import torch

from helpers import REPO, TINY_MODEL_ARGS, USER_DIR, run_fairseq, shared_file, tiny_unilm_model, write_lines
from fairseq_unilmv2.models.unilm_v2 import pair_token_types

# One small model for both tasks; dropout kept at its default (0.1).
FINETUNE_ARGS = [
    "--user-dir", USER_DIR, *TINY_MODEL_ARGS, "--task", "sentence_prediction",
    "--criterion", "sentence_prediction", "--init-token", "0", "--separator-token", "2",
    "--optimizer", "adam", "--adam-betas", "(0.9,0.98)", "--lr", "1e-3",
    "--lr-scheduler", "polynomial_decay", "--warmup-updates", "50", "--batch-size", "32",
    "--no-epoch-checkpoints", "--seed", "1", "--log-format", "simple", "--log-interval", "50",
    "--num-workers", "0", "--cpu",
]
VOCAB_WORDS = "3000"  # fairseq-preprocess --nwordssrc: rarer words become <unk>


def run_cli(name: str, args: Sequence):
    """A fairseq CLI on one thread (a tiny model gains nothing from more; see run_fairseq)."""
    return run_fairseq(name, args, threads=1)


# --------------------------------------------------------------------------------------------
# The encoder-side contract, in-process
# --------------------------------------------------------------------------------------------

def test_pair_token_types_follow_the_first_eos():
    bos, pad, eos = 0, 1, 2
    single = [bos, 5, 6, eos, pad, pad]
    bert_pair = [bos, 5, eos, 7, 8, eos]          # sentence_prediction without --separator-token
    roberta_pair = [bos, 5, eos, eos, 7, eos]     # --separator-token 2
    types = pair_token_types(torch.tensor([single, bert_pair, roberta_pair]), eos, pad, 0, 1)
    assert types.tolist() == [[0, 0, 0, 0, 0, 0],
                              [0, 0, 0, 1, 1, 1],
                              [0, 0, 0, 1, 1, 1]]


def test_forward_derives_token_types_of_pairs():
    model, dictionary = tiny_unilm_model()
    pair = torch.tensor([[dictionary.bos(), 4, 5, dictionary.eos(), dictionary.eos(), 6, 7,
                          dictionary.eos()]])
    explicit = torch.tensor([[0, 0, 0, 0, 1, 1, 1, 1]])
    with torch.no_grad():
        derived, _ = model(pair, features_only=True)
        given, _ = model(pair, segment_labels=explicit, features_only=True)
        all_first, _ = model(pair, segment_labels=torch.zeros_like(pair), features_only=True)
    torch.testing.assert_close(derived, given)
    assert not torch.allclose(derived, all_first)


def _model_with_head(name: str, num_classes: int, seed: int):
    model, dictionary = tiny_unilm_model(seed=seed)
    model.register_classification_head(name, num_classes=num_classes)
    return model.eval(), dictionary


def test_checkpoint_heads_load_drop_and_initialise_like_roberta():
    trained, dictionary = _model_with_head("topic", 3, seed=0)
    checkpoint = trained.state_dict()
    tokens = torch.tensor([[dictionary.bos(), 4, 5, 6, dictionary.eos()]])
    with torch.no_grad():
        expected = trained(tokens, classification_head_name="topic")[0]

    # Hub loading (load_checkpoint_heads): the checkpoint's head is registered and loaded.
    hub, _ = tiny_unilm_model(seed=1)
    hub.cfg.load_checkpoint_heads = True
    hub.load_state_dict(dict(checkpoint))
    with torch.no_grad():
        torch.testing.assert_close(hub(tokens, classification_head_name="topic")[0], expected)

    # Fine-tuning a new task from it: the old head is dropped, the new one keeps its init.
    other, _ = _model_with_head("sentiment", 2, seed=1)
    fresh = {k: v.clone() for k, v in other.classification_heads.state_dict().items()}
    other.load_state_dict(dict(checkpoint))
    assert list(other.classification_heads) == ["sentiment"]
    for key, value in other.classification_heads.state_dict().items():
        torch.testing.assert_close(value, fresh[key])

    # Same head name, other number of classes: the checkpoint's head is dropped.
    resized, _ = _model_with_head("topic", 5, seed=1)
    resized.load_state_dict(dict(checkpoint))
    assert resized.classification_heads["topic"].out_proj.out_features == 5

    # A pre-trained checkpoint without heads loads into a model with a head.
    pretrained = {k: v for k, v in checkpoint.items() if not k.startswith("classification_heads.")}
    finetune, _ = _model_with_head("topic", 3, seed=2)
    finetune.load_state_dict(pretrained)
    torch.testing.assert_close(finetune.transformer.embed_tokens.weight,
                               trained.transformer.embed_tokens.weight)


# --------------------------------------------------------------------------------------------
# Real-text tasks from wikitext2, binarized as in fairseq's RoBERTa GLUE recipe
# --------------------------------------------------------------------------------------------

def wikitext_sentences(split: str, min_words: int, max_words: int) -> List[List[str]]:
    """The sentences (split at " . ", headings skipped) of a wikitext2 split, as word lists
    ending with their period, of min_words..max_words words."""
    sentences = []
    for line in shared_file("wikitext2", f"{split}.txt").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("="):
            continue
        for sentence in line.split(" . "):
            words = sentence.strip().rstrip(" .").split() + ["."]
            if min_words <= len(words) <= max_words:
                sentences.append(words)
    return sentences


def shuffled(words: List[str], rng: random.Random) -> List[str]:
    """The words in a random order other than the original one."""
    out = list(words)
    while out == words:
        rng.shuffle(out)
    return out


def preprocess_glue_style(raw: Path, dest: Path, inputs: Sequence[str], regression: bool) -> Path:
    """fairseq-preprocess ``raw/{train,valid}.{input0,input1,label}`` into ``dest/input0``,
    ``dest/input1`` (sharing input0's dictionary) and ``dest/label`` (a label dictionary, or
    the raw ``.label`` files the task reads for ``--regression-target``)."""
    common = ["--only-source", "--workers", "1"]
    for i, name in enumerate(inputs):
        vocab = ["--nwordssrc", VOCAB_WORDS] if i == 0 else ["--srcdict", dest / "input0" / "dict.txt"]
        run_cli("fairseq-preprocess", [*common, "--trainpref", raw / f"train.{name}",
                                           "--validpref", raw / f"valid.{name}",
                                           "--destdir", dest / name, *vocab])
    if regression:
        (dest / "label").mkdir(parents=True)
        for split in ("train", "valid"):
            (dest / "label" / f"{split}.label").write_text((raw / f"{split}.label").read_text())
    else:
        run_cli("fairseq-preprocess", [*common, "--trainpref", raw / "train.label",
                                           "--validpref", raw / "valid.label",
                                           "--destdir", dest / "label"])
    return dest


def valid_results(log: str) -> List[dict]:
    """{metric: value} of every "valid on 'valid' subset" line of a fairseq log."""
    results = []
    for line in log.splitlines():
        if "valid on 'valid' subset" in line:
            fields = (f.strip().split(" ", 1) for f in line.split("|")[3:])
            results.append({k: float(v) for k, v in fields if re.fullmatch(r"[-0-9.e]+", v)})
    return results


class Finetuned:
    """A fine-tuned tiny model: its data, checkpoint directory, raw valid set and training log."""

    def __init__(self, data: Path, save_dir: Path, raw: Path, log: str, seconds: float):
        self.data, self.save_dir, self.raw, self.log, self.seconds = data, save_dir, raw, log, seconds

    def valid_lines(self, name: str) -> List[str]:
        return (self.raw / f"valid.{name}").read_text(encoding="utf-8").splitlines()

    def hub(self):
        from fairseq_unilmv2.models.unilm_v2 import UniLMv2Model
        return UniLMv2Model.from_pretrained(str(self.save_dir), "checkpoint_best.pt",
                                            data_name_or_path=str(self.data))


def finetune(tmp: Path, inputs: Sequence[str], regression: bool, extra_args: Sequence[str]):
    data = preprocess_glue_style(tmp / "raw", tmp / "bin", inputs, regression)
    start = time.monotonic()
    proc = run_cli("fairseq-train", [data, *FINETUNE_ARGS, "--save-dir", tmp / "ckpt",
                                         *extra_args])
    return Finetuned(data, tmp / "ckpt", tmp / "raw", proc.stdout + proc.stderr,
                     time.monotonic() - start)


@pytest.fixture(scope="module")
def word_order(tmp_path_factory) -> Finetuned:
    """Original vs shuffled word order. Training shows every sentence both ways; validation
    shows each sentence of other articles once, in a random one of the two orders."""
    train_sentences = wikitext_sentences("test", 8, 24)[:3000]
    valid_sentences = wikitext_sentences("valid", 8, 24)[:500]
    tmp = tmp_path_factory.mktemp("word_order")
    rng = random.Random(0)
    train = [(" ".join(words), "original") for words in train_sentences] + \
            [(" ".join(shuffled(words, rng)), "shuffled") for words in train_sentences]
    valid = [(" ".join(shuffled(words, rng)), "shuffled") if rng.random() < 0.5
             else (" ".join(words), "original") for words in valid_sentences]
    (tmp / "raw").mkdir()
    for split, examples in (("train", train), ("valid", valid)):
        write_lines(tmp / "raw" / f"{split}.input0", [text for text, _ in examples])
        write_lines(tmp / "raw" / f"{split}.label", [label for _, label in examples])
    return finetune(tmp, ["input0"], regression=False, extra_args=[
        "--num-classes", "2", "--max-positions", "64", "--max-epoch", "3",
        "--total-num-update", "570", "--best-checkpoint-metric", "accuracy",
        "--maximize-best-checkpoint-metric"])


@pytest.fixture(scope="module")
def pair_length(tmp_path_factory) -> Finetuned:
    """Regression on sentence pairs (consecutive sentences): target = words in the pair / 10."""
    tmp = tmp_path_factory.mktemp("pair_length")
    (tmp / "raw").mkdir()
    for split, source, count in (("train", "test", 2000), ("valid", "valid", 400)):
        sentences = wikitext_sentences(source, 3, 30)[:2 * count]
        firsts, seconds = sentences[0::2], sentences[1::2]
        write_lines(tmp / "raw" / f"{split}.input0", [" ".join(s) for s in firsts])
        write_lines(tmp / "raw" / f"{split}.input1", [" ".join(s) for s in seconds])
        write_lines(tmp / "raw" / f"{split}.label",
                    [f"{(len(a) + len(b)) / 10:.1f}" for a, b in zip(firsts, seconds)])
    return finetune(tmp, ["input0", "input1"], regression=True, extra_args=[
        "--num-classes", "1", "--regression-target", "--max-positions", "128",
        "--max-epoch", "3", "--total-num-update", "190", "--best-checkpoint-metric", "loss"])


def test_word_order_classifier_reaches_90_percent(word_order):
    accuracies = [r["accuracy"] for r in valid_results(word_order.log)]
    assert len(accuracies) == 3, word_order.log[-3000:]
    print(f"word order: valid accuracy per epoch {accuracies}, fairseq-train "
          f"{word_order.seconds:.0f}s")
    assert max(accuracies) >= 90.0


def test_hub_predict_labels_agree_with_fairseq_validate(word_order):
    proc = run_cli("fairseq-validate", [
        word_order.data, "--user-dir", USER_DIR, "--task", "sentence_prediction",
        "--path", word_order.save_dir / "checkpoint_best.pt",
        "--valid-subset", "valid", "--batch-size", "64", "--num-workers", "0", "--cpu",
        "--log-format", "simple"])
    (validated,) = valid_results(proc.stdout + proc.stderr)

    hub = word_order.hub()
    texts, labels = word_order.valid_lines("input0"), word_order.valid_lines("label")
    task_valid = hub.task.load_dataset("valid")
    predicted = []
    for start in range(0, len(texts), 64):
        batch = [hub.encode_for_prediction(text) for text in texts[start:start + 64]]
        for i, tokens in enumerate(batch):  # the hub lays inputs out as the task's data does
            assert tokens.tolist() == task_valid[start + i]["net_input.src_tokens"].tolist()
        padded = collate(batch, hub.task.source_dictionary.pad())
        with torch.no_grad():
            classes = hub.predict("sentence_classification_head", padded).argmax(dim=-1)
        label_dict = hub.task.label_dictionary
        predicted += [label_dict.string([c + label_dict.nspecial]) for c in classes.tolist()]
    correct = sum(p == label for p, label in zip(predicted, labels))
    assert round(100.0 * correct / len(labels), 1) == validated["accuracy"]


def test_regression_beats_the_constant_prediction(pair_length):
    train_targets = [float(v) for v in (pair_length.raw / "train.label").read_text().split()]
    valid_targets = [float(v) for v in pair_length.valid_lines("label")]
    mean = sum(train_targets) / len(train_targets)
    # The criterion logs the summed squared error per example in base 2 (/ ln 2).
    constant_loss = sum((t - mean) ** 2 for t in valid_targets) / len(valid_targets) / math.log(2)
    model_loss = min(r["loss"] for r in valid_results(pair_length.log))
    print(f"pair length: valid loss {model_loss} vs constant {constant_loss:.3f}, fairseq-train "
          f"{pair_length.seconds:.0f}s")
    assert model_loss < 0.25 * constant_loss

    # The hub's regression head reproduces the best checkpoint's validation loss.
    hub = pair_length.hub()
    pairs = zip(pair_length.valid_lines("input0"), pair_length.valid_lines("input1"))
    tokens = [hub.encode_for_prediction(a, b) for a, b in pairs]
    with torch.no_grad():
        values = torch.cat([hub.predict("sentence_classification_head",
                                        collate(tokens[i:i + 64], hub.task.source_dictionary.pad()),
                                        return_logits=True).view(-1)
                            for i in range(0, len(tokens), 64)])
    hub_loss = float(((values - torch.tensor(valid_targets)) ** 2).mean()) / math.log(2)
    assert abs(hub_loss - model_loss) < 1e-3


def collate(tokens: List[torch.Tensor], pad: int) -> torch.Tensor:
    from fairseq.data import data_utils
    return data_utils.collate_tokens(tokens, pad)


# --------------------------------------------------------------------------------------------
# The LM head under a task head
# --------------------------------------------------------------------------------------------

def lm_head_own_parameters(model) -> dict:
    tied = model.transformer.embed_tokens.weight
    return {name: p for name, p in model.transformer.lm_head.named_parameters()
            if p is not tied}


@pytest.mark.parametrize("register", ["classification", "span"])
def test_task_head_freezes_the_lm_head_but_not_the_tied_embedding(register):
    """sentence_prediction and squad never run the LM head: its own parameters (dense,
    LayerNorm, bias) are frozen, so fairseq's optimizer and DDP skip them; the token embedding
    it shares with the input keeps training; the state dict keeps them all."""
    model, _ = tiny_unilm_model(seed=2)
    assert all(p.requires_grad for p in lm_head_own_parameters(model).values())
    if register == "classification":
        model.register_classification_head("head", num_classes=2)
    else:
        model.register_span_head()
    frozen = lm_head_own_parameters(model)
    assert sorted(frozen) == ["bias", "dense.bias", "dense.weight", "layer_norm.bias",
                              "layer_norm.weight"]
    assert not any(p.requires_grad for p in frozen.values())
    assert model.transformer.embed_tokens.weight.requires_grad
    assert {f"transformer.lm_head.{name}" for name in frozen} <= set(model.state_dict())
    trained = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trained and not any(n.startswith("transformer.lm_head.") and
                               n != "transformer.lm_head.weight" for n in trained)


def test_keep_lm_head_trainable_keeps_it():
    model, _ = tiny_unilm_model(seed=2)
    model.cfg.keep_lm_head_trainable = True
    model.register_classification_head("head", num_classes=2)
    assert all(p.requires_grad for p in lm_head_own_parameters(model).values())


def test_fine_tuned_classifier_exports_with_its_lm_head(word_order, tmp_path):
    """A checkpoint fine-tuned with the LM head frozen still exports: the BERT directory's LM
    head is the checkpoint's."""
    from safetensors.torch import load_file

    checkpoint = word_order.save_dir / "checkpoint_best.pt"
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "export_checkpoint.py"),
                           "--checkpoint", str(checkpoint), "--dict",
                           str(word_order.data / "input0" / "dict.txt"), "--out",
                           str(tmp_path / "hf")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    exported = load_file(str(tmp_path / "hf" / "model.safetensors"))
    state = torch.load(checkpoint, weights_only=False)["model"]
    torch.testing.assert_close(exported["cls.predictions.transform.dense.weight"],
                               state["transformer.lm_head.dense.weight"], rtol=0, atol=0)
