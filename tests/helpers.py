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


def random_lines(dictionary, lengths, rng):
    """Lines of ordinary words (ids below ``<mask>``), one of each length, as 1-D tensors."""
    import torch

    mask = dictionary.index("<mask>")
    return [torch.from_numpy(rng.integers(dictionary.nspecial, mask, size=n)) for n in lengths]


def collated_pmlm_sample(dictionary, lengths, rng):
    """A batch as the pmlm task makes it (``PMLMDataset``'s collater: ``net_input`` with its
    host-side numbers, ``target``) over random lines of the given lengths."""
    from fairseq.data import ListDataset

    from fairseq_unilmv2.data.pmlm_dataset import PMLMDataset

    lengths = np.asarray(lengths)
    dataset = PMLMDataset(ListDataset(random_lines(dictionary, lengths, rng), lengths), lengths,
                          dictionary, dictionary.index("<mask>"))
    return dataset.collater([dataset[i] for i in range(len(lengths))])


# A small uncased WordPiece vocabulary laid out like BERT's: [PAD] first, the other specials
# after an unused slot, continuation pieces (##) mixed in, so that the fairseq permutation moves
# every special and shifts the words.
TINY_WORDPIECE_VOCAB = (["[PAD]", "[unused0]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
                        + "the a cat dog sat ran on in mat park and was is ##s ##ed ##ing "
                          "hello world play walk , .".split())


def write_wordpiece_vocab(path: Path, tokens: Sequence[str] = TINY_WORDPIECE_VOCAB) -> Path:
    """A WordPiece ``vocab.txt`` (one token a line, line number = embedding row)."""
    return write_lines(path, list(tokens))


def write_s2s_ft_release(root: Path, seed: int = 0, output_bias=None,
                         initializer_range: float = 0.02) -> Path:
    """A tiny random checkpoint in s2s-ft's fine-tuned layout (BERT names,
    ``bert.rel_pos_bias.weight``, ``cls.predictions.*``) as ``root/s2s-ft-tiny.bin``, with its
    ``config.json`` and ``vocab.txt`` (:data:`TINY_WORDPIECE_VOCAB`). ``output_bias`` {WordPiece
    token: value} is added to the LM head's output bias of those tokens; a larger
    ``initializer_range`` (the weights' std) makes the next-word distributions depend more on
    the input."""
    import json

    import torch
    import transformers

    config = transformers.BertConfig(
        vocab_size=len(TINY_WORDPIECE_VOCAB), hidden_size=32, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=64, max_position_embeddings=64,
        layer_norm_eps=1e-5, initializer_range=initializer_range)
    torch.manual_seed(seed)
    state = transformers.BertForMaskedLM(config).state_dict()
    state["bert.rel_pos_bias.weight"] = torch.randn(4, 32)
    for token, value in (output_bias or {}).items():
        state["cls.predictions.bias"][TINY_WORDPIECE_VOCAB.index(token)] += value
    torch.save(state, root / "s2s-ft-tiny.bin")
    (root / "config.json").write_text(json.dumps(
        dict(config.to_dict(), rel_pos_bins=32, max_rel_pos=128, source_type_id=0,
             target_type_id=1)))
    write_wordpiece_vocab(root / "vocab.txt")
    return root


def run_script(name: str, *args) -> str:
    """Run ``scripts/<name>`` with the test's Python; its stdout (stderr shown on failure)."""
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / name), *map(str, args)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def convert_and_binarize(release: Path, work: Path, sources: Sequence[str],
                         targets: Sequence[str]):
    """``scripts/convert_checkpoint.py`` on :func:`write_s2s_ft_release`'s files, then the raw
    pairs WordPiece-tokenized (``scripts/wordpiece.py``) and binarized with the converted
    ``dict.txt`` as the train, valid and test splits. Returns (model directory, conversion log,
    tokenized text directory, data-bin directory)."""
    model_dir = work / "unilm-tiny"
    log = run_script("convert_checkpoint.py", "--checkpoint", release / "s2s-ft-tiny.bin",
                     "--config", release / "config.json", "--vocab", release / "vocab.txt",
                     "--out", model_dir)
    raw = work / "raw"
    raw.mkdir()
    for lang, lines in (("src", sources), ("tgt", targets)):
        write_lines(raw / f"test.raw.{lang}", list(lines))
        run_script("wordpiece.py", "encode", "--vocab", model_dir / "vocab.txt",
                   "--input", raw / f"test.raw.{lang}", "--output", raw / f"test.{lang}")
    run_fairseq("fairseq-preprocess", [
        "--source-lang", "src", "--target-lang", "tgt", "--trainpref", raw / "test",
        "--validpref", raw / "test", "--testpref", raw / "test",
        "--srcdict", model_dir / "dict.txt", "--joined-dictionary",
        "--destdir", work / "data-bin", "--workers", "1"])
    return model_dir, log, raw, work / "data-bin"
