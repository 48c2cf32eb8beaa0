"""SQuAD windows as a fairseq dataset: right-padded ``[CLS] q [SEP] context [SEP]`` batches.

``net_input`` holds ``src_tokens`` and ``segment_labels`` (token types); position ids and the
(bidirectional) attention default inside the model from the padding. ``target`` is (B, 2):
the start and end positions of the answer in each window (0, the null position, when the
window holds no whole answer). ``window`` gives each row's index into ``windows`` so that
prediction can match logits with their windows.
"""
from typing import List

import numpy as np
import torch
from fairseq.data import FairseqDataset, data_utils

from .squad_features import SquadWindow


class SquadDataset(FairseqDataset):
    def __init__(self, windows: List[SquadWindow], pad_idx: int, shuffle: bool = False,
                 seed: int = 1):
        self.windows = windows
        self.pad_idx = pad_idx
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 1
        self._sizes = np.array([len(w.tokens) for w in windows], dtype=np.int64)

    def set_epoch(self, epoch: int, **unused):
        self.epoch = epoch

    def __len__(self):
        return len(self.windows)

    def __getitem__(self, index: int):
        window = self.windows[index]
        return {"id": index, "tokens": torch.from_numpy(window.tokens),
                "segments": torch.from_numpy(window.segments),
                "target": torch.tensor([window.start, window.end], dtype=torch.long)}

    def collater(self, samples):
        if not samples:
            return {}
        tokens = data_utils.collate_tokens([s["tokens"] for s in samples], self.pad_idx)
        segments = data_utils.collate_tokens([s["segments"] for s in samples], 0)
        return {
            "id": torch.tensor([s["id"] for s in samples], dtype=torch.long),
            "nsentences": len(samples),
            "ntokens": sum(len(s["tokens"]) for s in samples),
            "net_input": {"src_tokens": tokens, "segment_labels": segments},
            "target": torch.stack([s["target"] for s in samples]),
        }

    def num_tokens(self, index: int) -> int:
        return int(self._sizes[index])

    def num_tokens_vec(self, indices):
        return self._sizes[indices]

    def size(self, index: int):
        return int(self._sizes[index])

    @property
    def sizes(self):
        return self._sizes

    def ordered_indices(self):
        """Shuffled (seeded by epoch) then stably sorted by length, as fairseq's datasets do,
        so that batches hold windows of similar length."""
        if self.shuffle:
            with data_utils.numpy_seed(self.seed, self.epoch):
                order = np.random.permutation(len(self))
        else:
            order = np.arange(len(self))
        return order[np.argsort(self._sizes[order], kind="mergesort")]

    @property
    def supports_prefetch(self):
        return False

    @property
    def can_reuse_epoch_itr_across_epochs(self):
        # The order is reshuffled every epoch (ordered_indices reads the epoch).
        return False
