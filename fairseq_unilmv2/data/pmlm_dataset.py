"""Pseudo-masked LM examples from blocks of binarized text (SPEC 3.1 - 3.4).

Each block of text tokens becomes ``[SOS] S1 [EOS] S2 [EOS]`` (two contiguous segments split at a
random point, token types 0 and 1), is masked blockwise, corrupted 80/10/10 in its AE part, and
laid out with its pseudo masks and originals by :func:`~fairseq_unilmv2.data.layout.pmlm_layout`.
Every random choice is a function of (seed, epoch, index), as in fairseq's ``MaskTokensDataset``.
"""
from typing import Dict, List

import numpy as np
import torch
from fairseq.data import FairseqDataset, data_utils

from .blockwise_masking import blockwise_mask, corrupt_masked
from .layout import (Objective, collate_field, collate_layouts, leading_context_block,
                     objective_layout)

# [SOS] S1 [EOS] S2 [EOS]: three special tokens around the text of a block.
SPECIALS_PER_EXAMPLE = 3


class PMLMDataset(FairseqDataset):
    """Wraps a dataset of token blocks (e.g. fairseq's ``TokenBlockDataset``) into PMLM examples.

    ``sizes`` are the text lengths ``[SOS] S1 [EOS] S2 [EOS]`` (what position ids and
    ``--tokens-per-sample`` bound); ``num_tokens`` is an upper bound of the packed length with
    the appended pseudo part, which is what a batch costs.
    """

    def __init__(self, blocks, block_sizes: np.ndarray, dictionary, mask_idx: int, seed: int = 1,
                 mask_prob: float = 0.15, span_prob: float = 0.4, min_span_len: int = 2,
                 max_span_len: int = 6, random_token_prob: float = 0.1,
                 leave_unmasked_prob: float = 0.1, append_last_originals: bool = True,
                 shuffle: bool = True, objective: str = "ae+par"):
        super().__init__()
        self.blocks = blocks
        self.dictionary = dictionary
        self.mask_idx = mask_idx
        self.seed = seed
        self.mask_prob = mask_prob
        self.span_prob = span_prob
        self.min_span_len = min_span_len
        self.max_span_len = max_span_len
        self.random_token_prob = random_token_prob
        self.leave_unmasked_prob = leave_unmasked_prob
        self.append_last_originals = append_last_originals
        self.shuffle = shuffle
        self.objective = Objective.parse(objective)
        self.epoch = 1
        self.special_ids = np.array(sorted({dictionary.bos(), dictionary.eos(), dictionary.pad(),
                                            mask_idx}), dtype=np.int64)
        # Random replacements are ordinary tokens: no special symbol, no <mask>.
        ordinary = np.arange(dictionary.nspecial, len(dictionary), dtype=np.int64)
        self.random_token_ids = ordinary[ordinary != mask_idx]
        self._sizes = np.asarray(block_sizes, dtype=np.int64) + SPECIALS_PER_EXAMPLE
        # Without a pseudo part (--objective ae) an example is its text alone.
        self._num_tokens = self._sizes + (2 * self._max_masked(self._sizes - SPECIALS_PER_EXAMPLE)
                                          if self.objective.pseudo else 0)

    def _max_masked(self, n_text: np.ndarray) -> np.ndarray:
        """Most positions blockwise masking can mask in a text of n maskable tokens: it stops
        at the first block that reaches the goal, so it overshoots by less than one span."""
        goal = np.ceil(self.mask_prob * n_text).astype(np.int64)
        return np.minimum(goal + self.max_span_len - 1, n_text)

    # A new iterator each epoch: batches are drawn from a per-epoch shuffle (ordered_indices).
    # Masks depend on the epoch too; the data-loader workers see it either way, since they
    # are forked anew each epoch after set_epoch (compat fix 9).
    @property
    def can_reuse_epoch_itr_across_epochs(self) -> bool:
        return False

    def set_epoch(self, epoch: int, **unused) -> None:
        super().set_epoch(epoch)
        self.epoch = epoch

    @property
    def sizes(self) -> np.ndarray:
        return self._sizes

    def size(self, index: int) -> int:
        return int(self._sizes[index])

    def num_tokens(self, index: int) -> int:
        return int(self._num_tokens[index])

    def num_tokens_vec(self, indices: np.ndarray) -> np.ndarray:
        return self._num_tokens[indices]

    def ordered_indices(self) -> np.ndarray:
        """Shuffled (under fairseq's numpy_seed(seed + epoch)), then stably sorted by size."""
        order = np.random.permutation(len(self)) if self.shuffle else np.arange(len(self))
        return order[np.argsort(self._sizes[order], kind="mergesort")]

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, index: int) -> Dict:
        with data_utils.numpy_seed(self.seed, self.epoch, index):
            # fairseq's seeding, turned into a Generator so the pure masking functions get one.
            rng = np.random.default_rng(np.random.randint(2 ** 31 - 1))
        block = np.asarray(self.blocks[index], dtype=np.int64)
        text, segments = self._two_segments(block, rng)
        masking = blockwise_mask(~np.isin(text, self.special_ids), rng, self.mask_prob,
                                 self.span_prob, self.min_span_len, self.max_span_len)
        corrupted = text.copy()
        if masking.blocks:
            masked = np.concatenate(masking.blocks)
            corrupted[masked] = corrupt_masked(text[masked], rng, self.mask_idx,
                                               self.random_token_prob,
                                               self.leave_unmasked_prob, self.random_token_ids)
        layout = objective_layout(text, corrupted, segments, masking.blocks, self.objective,
                                  self.mask_idx, self.dictionary.pad(), rng,
                                  self.append_last_originals)
        return {"id": index, "layout": layout, "text_length": len(text)}

    def _two_segments(self, block: np.ndarray, rng: np.random.Generator):
        """``[SOS] S1 [EOS] S2 [EOS]`` and its token types, split at a random point."""
        bos, eos = self.dictionary.bos(), self.dictionary.eos()
        if len(block) and block[-1] == eos:
            block = block[:-1]  # a sentence-final eos would double the closing [EOS]
        split = int(rng.integers(1, len(block))) if len(block) >= 2 else len(block)
        text = np.concatenate([[bos], block[:split], [eos], block[split:], [eos]]).astype(np.int64)
        segments = np.zeros(len(text), dtype=np.int64)
        segments[split + 2:] = 1  # S2 and its [EOS]
        return text, segments

    def collater(self, samples: List[Dict]) -> Dict:
        """Right-padded (B, T) batch: tokens, positions, token types, roles and steps in
        ``net_input`` (the model builds the attention mask from roles and steps), the original
        token at every predicted position in ``target``."""
        if not samples:
            return {}
        layouts = [s["layout"] for s in samples]
        pad = self.dictionary.pad()
        net_input = collate_layouts(layouts, pad)
        net_input["src_lengths"] = torch.tensor([len(layout.tokens) for layout in layouts])
        target = collate_field(layouts, "target", pad)
        # Host-side: how many rows the LM head reads, in one example at most and in all, and
        # the leading CONTEXT block, so that the model needs not read them off the device.
        predicted = target.ne(pad).sum(dim=1)
        net_input["max_predicted"] = int(predicted.max())
        net_input["num_predicted"] = int(predicted.sum())
        net_input["leading_block"] = leading_context_block(net_input["roles"])
        return {
            "id": torch.tensor([s["id"] for s in samples], dtype=torch.long),
            "nsentences": len(samples),
            "ntokens": sum(s["text_length"] for s in samples),
            "net_input": net_input,
            "target": target,
        }

    @property
    def supports_prefetch(self) -> bool:
        return False

