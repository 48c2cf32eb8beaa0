"""Shared test utilities: where the real corpora are, how to call fairseq's CLIs, tiny models."""
import os
import subprocess
import sys
from pathlib import Path
from typing import List, Sequence

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
USER_DIR = str(REPO / "fairseq_unilmv2")

# A tiny unilm_v2 for CPU tests: every dimension is a command-line override.
TINY_MODEL_ARGS = [
    "--arch", "unilm_v2_base", "--encoder-layers", "2", "--encoder-embed-dim", "64",
    "--encoder-ffn-embed-dim", "128", "--encoder-attention-heads", "4",
]


def shared_file(*parts: str) -> Path:
    """A file of ../shared/data, or skip the test saying why."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: the real-text corpora live in ../shared/data")
    return path


def fairseq_cli(name: str) -> str:
    """Path of a fairseq console script (fairseq-train, ...) of the running environment."""
    script = Path(sys.executable).parent / name
    return str(script) if script.exists() else name


def run_fairseq(name: str, args: Sequence[str], cwd=None, check: bool = True,
                input_text=None, timeout: int = 900,
                threads: int = 2) -> subprocess.CompletedProcess:
    """Run a fairseq CLI on the CPU and return the finished process (stdout and stderr text).

    ``threads`` is OMP_NUM_THREADS. Tiny models gain nothing from a second thread, and on a
    busy 2-core machine OpenMP threads spin waiting for each other: one sentence_prediction
    fine-tuning at load ~8 took 704 s wall / 316 s CPU with 2 threads, 40 s / 18 s with 1.
    """
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS=str(threads))
    proc = subprocess.run([fairseq_cli(name), *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, input=input_text, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{name} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n"
                             f"{proc.stderr[-4000:]}")
    return proc


def write_lines(path: Path, lines: List[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def binarize_text(text_lines: Sequence[str], destdir: Path, threshold: int = 2) -> Path:
    """fairseq-preprocess --only-source of ``text_lines`` as both train and valid split."""
    destdir.mkdir(parents=True, exist_ok=True)
    raw = write_lines(destdir / "raw.txt", list(text_lines))
    run_fairseq("fairseq-preprocess", ["--only-source", "--trainpref", raw, "--validpref", raw,
                                       "--destdir", destdir, "--workers", "1",
                                       "--thresholdsrc", threshold])
    return destdir


def tiny_unilm_model(vocab_words: int = 60, seed: int = 0):
    """A tiny random ``unilm_v2`` (2 layers, dim 64, no dropout) in eval mode and its dictionary
    (``vocab_words`` ordinary words ``w0..``, then ``<mask>``), for tests that run the model
    directly rather than through fairseq-train."""
    import torch
    from fairseq.data import Dictionary

    from fairseq_unilmv2.models.unilm_v2 import UniLMv2Config, UniLMv2Model
    from fairseq_unilmv2.modules.transformer import UniLMv2Transformer

    dictionary = Dictionary()
    for i in range(vocab_words):
        dictionary.add_symbol(f"w{i}")
    dictionary.add_symbol("<mask>")
    cfg = UniLMv2Config(encoder_layers=2, encoder_embed_dim=64, encoder_ffn_embed_dim=128,
                        encoder_attention_heads=4, dropout=0.0, attention_dropout=0.0)
    torch.manual_seed(seed)
    transformer = UniLMv2Transformer(cfg, len(dictionary), dictionary.pad())
    return UniLMv2Model(cfg, transformer, dictionary).eval(), dictionary


def pmlm_batch(dictionary, lengths, rng):
    """Right-padded PMLM examples of the given text lengths, random blocks, as the collater
    lays them out: [text with masks | pseudo masks and originals | padding]."""
    import torch
    from fairseq.data import data_utils

    from fairseq_unilmv2.data.layout import PADDING, pmlm_layout

    mask_idx, pad = dictionary.index("<mask>"), dictionary.pad()
    layouts = []
    for length in lengths:
        text = rng.integers(dictionary.nspecial, len(dictionary) - 1, size=length)
        starts = rng.choice(np.arange(1, length - 3), size=3, replace=False)
        blocks = [np.array([s]) for s in starts]
        corrupted = text.copy()
        corrupted[starts] = mask_idx
        layouts.append(pmlm_layout(text, corrupted, np.zeros(length, dtype=np.int64), blocks,
                                   mask_idx, pad))

    def stack(field, value):
        return data_utils.collate_tokens(
            [torch.from_numpy(getattr(layout, field)) for layout in layouts], value)

    return dict(src_tokens=stack("tokens", pad), positions=stack("positions", 0),
                segment_labels=stack("segments", 0), roles=stack("roles", PADDING),
                steps=stack("steps", 0))


# A small uncased WordPiece vocabulary laid out like BERT's: [PAD] first, the other specials
# after an unused slot, continuation pieces (##) mixed in, so that the fairseq permutation moves
# every special and shifts the words.
TINY_WORDPIECE_VOCAB = (["[PAD]", "[unused0]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
                        + "the a cat dog sat ran on in mat park and was is ##s ##ed ##ing "
                          "hello world play walk , .".split())


def write_wordpiece_vocab(path: Path, tokens: Sequence[str] = TINY_WORDPIECE_VOCAB) -> Path:
    """A WordPiece ``vocab.txt`` (one token a line, line number = embedding row)."""
    return write_lines(path, list(tokens))
