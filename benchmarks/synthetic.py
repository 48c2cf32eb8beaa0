"""Datasets of random token ids for the benchmarks: the plugin's own PMLM and seq2seq datasets
over them. Masking, layout and the model's cost do not depend on which words the ids stand
for, so no corpus is needed."""
from types import SimpleNamespace

import numpy as np
import torch
from fairseq.data import Dictionary, ListDataset

from fairseq_unilmv2.data.pmlm_dataset import SPECIALS_PER_EXAMPLE, PMLMDataset
from fairseq_unilmv2.data.seq2seq_dataset import Seq2SeqDataset


def dictionary(vocab: int) -> Dictionary:
    """fairseq's specials, ordinary words ``w0..``, then ``<mask>``: ``vocab`` entries in all."""
    d = Dictionary()
    for i in range(vocab - len(d) - 1):
        d.add_symbol(f"w{i}")
    d.add_symbol("<mask>")
    return d


def token_lines(d: Dictionary, count: int, length: int, rng) -> ListDataset:
    """``count`` lines of ``length`` ordinary ids, each ending with eos as binarized lines do."""
    mask = d.index("<mask>")
    lines = [torch.from_numpy(np.append(rng.integers(d.nspecial, mask, size=length - 1),
                                        d.eos()).astype(np.int64)) for _ in range(count)]
    return ListDataset(lines, np.full(count, length))


def pmlm_dataset(d: Dictionary, count: int, text_len: int, rng) -> PMLMDataset:
    """``count`` PMLM examples of ``text_len`` tokens, [SOS] S1 [EOS] S2 [EOS] included."""
    text = text_len - SPECIALS_PER_EXAMPLE
    blocks = token_lines(d, count, text + 1, rng)  # + eos, which the dataset drops
    return PMLMDataset(blocks, np.full(count, text), d, d.index("<mask>"), seed=1)


def seq2seq_dataset(d: Dictionary, count: int, source_len: int, target_len: int,
                    rng) -> Seq2SeqDataset:
    """``count`` pairs of ``source_len`` ([CLS] and [SEP] included) + ``target_len`` tokens,
    with the task's default corruption."""
    cfg = SimpleNamespace(max_source_positions=source_len, max_target_positions=target_len,
                          target_mask_prob=0.5, pseudo_mask_prob=0.8, pseudo_random_prob=0.1,
                          pseudo_keep_prob=0.1)
    # Binarized sources lack the [bos] the dataset adds.
    src = token_lines(d, count, source_len - 1, rng)
    tgt = token_lines(d, count, target_len, rng)
    return Seq2SeqDataset("bench", src, tgt, d, d.index("<mask>"), cfg)
