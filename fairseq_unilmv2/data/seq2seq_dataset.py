"""Sequence-to-sequence fine-tuning data: the ``[source | target | pseudo]`` layout of SPEC 4.

One example is laid out as::

    tokens:    [CLS] s1 .. [SEP] | y1  y2  .. [SEP] | P1  P2  .. Pm
    positions:  0    1  .. n-1   | n   n+1 .. n+m-1 | n   n+1 .. n+m-1
    types:      source type      | target type      | target type
    role/step:  CONTEXT 0        | ORIGINAL 1..m    | PSEUDO 1..m

Target token j is ORIGINAL of step j and its pseudo mask is PSEUDO of step j, so the single
attention rule of :mod:`fairseq_unilmv2.data.layout` gives exactly the fine-tuning mask: the
source sees the source, target j sees the source and targets <= j, pseudo j sees the source,
targets < j and itself. The loss is read at the pseudo tokens (pseudo j predicts y_j).

Two datasets live here: :class:`Seq2SeqDataset` (training / validation, packed layout plus the
plain source for ``fairseq-generate``) and :class:`Seq2SeqInferenceDataset` (plain sources for
``fairseq-interactive`` and the hub interface).
"""
import logging
from typing import Dict, List, NamedTuple

import numpy as np
import torch
from fairseq.data import FairseqDataset, data_utils

from .layout import CONTEXT, ORIGINAL, PSEUDO, collate_layouts, leading_context_block

logger = logging.getLogger(__name__)


class Seq2SeqLayout(NamedTuple):
    """One packed example; every field is a 1-D int64 array over the packed tokens."""

    tokens: np.ndarray
    positions: np.ndarray
    segments: np.ndarray
    roles: np.ndarray
    steps: np.ndarray


def seq2seq_layout(source: np.ndarray, target_inputs: np.ndarray, pseudo_tokens: np.ndarray,
                   source_type_id: int, target_type_id: int,
                   first_pseudo_step: int = 1) -> Seq2SeqLayout:
    """Lay out ``[source | target_inputs | pseudo_tokens]`` (SPEC 4).

    ``target_inputs`` are the teacher-forced target tokens y1..yk (steps 1..k). The pseudo
    tokens get steps ``first_pseudo_step, first_pseudo_step + 1, ...``; fine-tuning uses one
    pseudo per target token (``first_pseudo_step=1``), while a decoding step t is
    ``[source | y1..yt | one mask]`` with ``first_pseudo_step=t + 1``. Step j sits at
    position ``n + j - 1`` where n is the source length.
    """
    n, k, p = len(source), len(target_inputs), len(pseudo_tokens)
    target_steps = np.arange(1, k + 1, dtype=np.int64)
    pseudo_steps = np.arange(first_pseudo_step, first_pseudo_step + p, dtype=np.int64)
    steps = np.concatenate([np.zeros(n, dtype=np.int64), target_steps, pseudo_steps])
    positions = np.concatenate([np.arange(n, dtype=np.int64), n + target_steps - 1,
                                n + pseudo_steps - 1])
    roles = np.concatenate([np.full(n, CONTEXT), np.full(k, ORIGINAL),
                            np.full(p, PSEUDO)]).astype(np.int64)
    segments = np.where(roles == CONTEXT, source_type_id, target_type_id).astype(np.int64)
    tokens = np.concatenate([source, target_inputs, pseudo_tokens]).astype(np.int64)
    return Seq2SeqLayout(tokens, positions, segments, roles, steps)


def truncate_source(source: np.ndarray, bos: int, eos: int, budget: int) -> np.ndarray:
    """``[bos] src [eos]`` from a binarized ``src [eos]`` line, cut to ``budget`` tokens."""
    body = source[:-1] if len(source) and source[-1] == eos else source
    body = body[:max(budget - 2, 0)]
    return np.concatenate([[bos], body, [eos]]).astype(np.int64)


def truncate_target(target: np.ndarray, eos: int, budget: int) -> np.ndarray:
    """``y1..ym [eos]`` from a binarized ``tgt [eos]`` line, cut to ``budget`` tokens."""
    body = target[:-1] if len(target) and target[-1] == eos else target
    body = body[:max(budget - 1, 0)]
    return np.concatenate([body, [eos]]).astype(np.int64)


def log_truncation(name: str, what: str, lengths: np.ndarray, budget: int, flag: str) -> int:
    """Count the examples longer than ``budget`` and warn once with the count."""
    count = int((lengths > budget).sum())
    if count:
        logger.warning(f"{name}: {count} of {len(lengths)} {what} are longer than {flag} "
                       f"{budget} and are truncated to it (none is dropped)")
    return count


def collate_sources(sources: List[np.ndarray], pad_idx: int) -> Dict[str, torch.Tensor]:
    """Plain right-padded sources, as ``SequenceGenerator`` feeds ``model.encoder``."""
    tokens = data_utils.collate_tokens([torch.from_numpy(s) for s in sources], pad_idx)
    return {"src_tokens": tokens,
            "src_lengths": torch.tensor([len(s) for s in sources], dtype=torch.long)}


class Seq2SeqDataset(FairseqDataset):
    """Training / validation pairs in the packed layout, with the pseudo-token corruption.

    A collated batch has ``net_input`` (``src_tokens`` = packed tokens, ``src_lengths``,
    ``positions``, ``segment_labels``, and the ``roles`` and ``steps`` from which the model
    builds the attention mask; the loss is read at the PSEUDO roles), ``target``
    (``y1..ym [eos]`` right-padded; in row-major order its non-pad entries are the labels of
    the pseudo tokens) and ``generation_input`` (the plain sources
    and fairseq's ``prev_output_tokens``, which the task hands to ``SequenceGenerator``, or to
    ``SequenceScorer`` with ``--score-reference``, in ``fairseq-generate``).
    """

    def __init__(self, name: str, src, tgt, dictionary, mask_idx: int, cfg, seed: int = 1,
                 shuffle: bool = True, source_type_id: int = 0, target_type_id: int = 1):
        self.src, self.tgt = src, tgt
        self.dictionary = dictionary
        self.mask_idx = mask_idx
        self.cfg = cfg
        self.seed = seed
        self.epoch = 1
        self.shuffle = shuffle
        self.source_type_id, self.target_type_id = source_type_id, target_type_id
        if cfg.max_source_positions is None or cfg.max_target_positions is None:
            # The task fills unset budgets from the model's position table before loading data.
            raise ValueError(f"{name}: the source and target budgets are unset: set "
                             "--max-source-positions and --max-target-positions (the "
                             "unilm_seq2seq task fits unset ones to the model)")
        # +1: the [bos] that the source gains; binarized lines already end with eos.
        self.src_sizes = np.minimum(np.asarray(src.sizes) + 1, cfg.max_source_positions)
        self.tgt_sizes = np.minimum(np.asarray(tgt.sizes), cfg.max_target_positions)
        self.truncated_sources = log_truncation(name, "sources", np.asarray(src.sizes) + 1,
                                                cfg.max_source_positions, "--max-source-positions")
        self.truncated_targets = log_truncation(name, "targets", np.asarray(tgt.sizes),
                                                cfg.max_target_positions, "--max-target-positions")
        # Random replacements are drawn from the ordinary symbols, never specials or <mask>.
        self.random_vocab = np.array([i for i in range(dictionary.nspecial, len(dictionary))
                                      if i != mask_idx], dtype=np.int64)

    def set_epoch(self, epoch: int, **unused):
        self.epoch = epoch

    # Batching does not depend on the epoch, the corruption does: the reused iterator's
    # data-loader workers are forked anew each epoch, after set_epoch (compat fix 9).
    @property
    def can_reuse_epoch_itr_across_epochs(self):
        return True

    def __len__(self):
        return len(self.src)

    def source(self, index: int) -> np.ndarray:
        d = self.dictionary
        return truncate_source(self.src[index].numpy(), d.bos(), d.eos(),
                               self.cfg.max_source_positions)

    def target(self, index: int) -> np.ndarray:
        return truncate_target(self.tgt[index].numpy(), self.dictionary.eos(),
                               self.cfg.max_target_positions)

    def corrupt(self, target: np.ndarray, rng: np.random.RandomState):
        """Pseudo tokens (mask / random / original by the configured probabilities) and the
        teacher-forced inputs, where each target token is replaced by its pseudo token with
        probability ``target_mask_prob`` (SPEC 4)."""
        cfg = self.cfg
        choice = rng.choice(3, size=len(target),
                            p=[cfg.pseudo_mask_prob, cfg.pseudo_random_prob, cfg.pseudo_keep_prob])
        pseudo = np.where(choice == 0, self.mask_idx, target)
        random_rows = choice == 1
        if random_rows.any() and len(self.random_vocab):
            pseudo[random_rows] = rng.choice(self.random_vocab, size=int(random_rows.sum()))
        replace = rng.random_sample(len(target)) < cfg.target_mask_prob
        return pseudo.astype(np.int64), np.where(replace, pseudo, target).astype(np.int64)

    def __getitem__(self, index: int):
        with data_utils.numpy_seed(self.seed, self.epoch, index):
            rng = np.random.RandomState(np.random.randint(2 ** 31))
        source, target = self.source(index), self.target(index)
        pseudo, target_inputs = self.corrupt(target, rng)
        layout = seq2seq_layout(source, target_inputs, pseudo, self.source_type_id,
                                self.target_type_id)
        return {"id": index, "source": source, "target": target, "layout": layout}

    def collater(self, samples):
        if not samples:
            return {}
        pad = self.dictionary.pad()
        packed = collate_layouts([s["layout"] for s in samples], pad)
        packed["src_lengths"] = torch.tensor([len(s["layout"].tokens) for s in samples])
        # Host-side: the pseudo tokens (one per target token) of one example at most and in
        # all, and the leading CONTEXT block (the sources), so that the model needs not read
        # them off the device.
        packed["max_predicted"] = max(len(s["target"]) for s in samples)
        packed["num_predicted"] = sum(len(s["target"]) for s in samples)
        packed["leading_block"] = leading_context_block(packed["roles"])
        targets = [torch.from_numpy(s["target"]) for s in samples]
        target = data_utils.collate_tokens(targets, pad)
        return {
            "id": torch.tensor([s["id"] for s in samples], dtype=torch.long),
            "nsentences": len(samples),
            "ntokens": int(target.ne(pad).sum()),
            "net_input": packed,
            "target": target,
            "generation_input": {
                **collate_sources([s["source"] for s in samples], pad),
                # [eos] y1..ym, fairseq's decoder input: what --score-reference feeds the model.
                "prev_output_tokens": data_utils.collate_tokens(
                    targets, pad, eos_idx=self.dictionary.eos(), move_eos_to_beginning=True),
            },
        }

    def num_tokens(self, index: int) -> int:
        return int(self.src_sizes[index] + 2 * self.tgt_sizes[index])

    def num_tokens_vec(self, indices):
        return self.src_sizes[indices] + 2 * self.tgt_sizes[indices]

    def size(self, index: int):
        return (int(self.src_sizes[index]), int(self.tgt_sizes[index]))

    @property
    def sizes(self):
        return np.stack([self.src_sizes, self.tgt_sizes], axis=1)

    def ordered_indices(self):
        if self.shuffle:
            with data_utils.numpy_seed(self.seed, self.epoch):
                order = np.random.permutation(len(self))
        else:
            order = np.arange(len(self))
        # Sort by packed length (stable), so batches hold similar lengths.
        return order[np.argsort(self.num_tokens_vec(order), kind="mergesort")]

    @property
    def supports_prefetch(self):
        return getattr(self.src, "supports_prefetch", False) and \
            getattr(self.tgt, "supports_prefetch", False)

    def prefetch(self, indices):
        self.src.prefetch(indices)
        self.tgt.prefetch(indices)


class Seq2SeqInferenceDataset(FairseqDataset):
    """Plain sources ``[bos] src [eos]`` (right-padded) for generation from raw input.

    Takes what ``fairseq-interactive`` and the hub interface binarize (``src [eos]``), adds the
    [bos] and truncates to ``max_source_positions`` (counted and logged, never dropped).
    """

    def __init__(self, src_tokens: List[torch.Tensor], dictionary, max_source_positions: int,
                 constraints=None):
        d = dictionary
        self.sources = [truncate_source(t.numpy(), d.bos(), d.eos(), max_source_positions)
                        for t in src_tokens]
        log_truncation("inference", "sources", np.array([len(t) + 1 for t in src_tokens]),
                       max_source_positions, "--max-source-positions")
        self.pad = d.pad()
        self.constraints = constraints
        self.source_lengths = np.array([len(s) for s in self.sources], dtype=np.int64)

    def __len__(self):
        return len(self.sources)

    def __getitem__(self, index: int):
        item = {"id": index, "source": self.sources[index]}
        if self.constraints is not None:
            item["constraints"] = self.constraints[index]
        return item

    def collater(self, samples):
        if not samples:
            return {}
        batch = {
            "id": torch.tensor([s["id"] for s in samples], dtype=torch.long),
            "nsentences": len(samples),
            "ntokens": sum(len(s["source"]) for s in samples),
            "net_input": collate_sources([s["source"] for s in samples], self.pad),
            "target": None,
        }
        if self.constraints is not None:
            batch["constraints"] = data_utils.collate_tokens(
                [s["constraints"] for s in samples], pad_idx=0)
        return batch

    def num_tokens(self, index: int) -> int:
        return int(self.source_lengths[index])

    def size(self, index: int):
        # (source, target) as for language pairs, so fairseq's (source, target) limits apply.
        return (int(self.source_lengths[index]), 0)

    def ordered_indices(self):
        return np.argsort(self.source_lengths, kind="mergesort")
