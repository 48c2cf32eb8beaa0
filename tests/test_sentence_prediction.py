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
import time
from pathlib import Path
from typing import List, Sequence, Tuple

import pytest
import torch

from helpers import TINY_MODEL_ARGS, USER_DIR, run_fairseq, shared_file, tiny_unilm_model, write_lines
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
