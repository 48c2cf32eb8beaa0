"""Fixes that fairseq 0.12 needs on today's PyTorch, applied once when the plugin is imported.

1. ``torch.load`` defaults to ``weights_only=True`` since torch 2.6, which rejects fairseq
   checkpoints (they pickle the argparse/omegaconf config) and the objects fairseq's distributed
   utilities exchange. fairseq's own loaders get a ``torch`` whose ``load`` defaults to
   ``weights_only=False``; every other ``torch.load`` in the process is left alone. Only load
   checkpoints you trust, as with any pickle.
2. fairseq-fixed's ``batch_by_size`` silently drops the last batch when
   ``--required-batch-size-multiple`` does not divide its size, which loses examples in
   ``fairseq-generate`` and ``fairseq-validate``. The wrapper keeps that batch.
3. fairseq writes a checkpoint atomically (temporary file, then rename) but then *copies* it to
   ``checkpoint_last.pt`` in place, so a run killed during that copy leaves a truncated
   ``checkpoint_last.pt`` and cannot resume. Checkpoint copies now go through a temporary file
   and a rename too.
4. fairseq's ``BufferedIterator`` prefetches batches in a daemon thread. When a run ends (e.g.
   ``--max-update``) while that thread is inside a torch op, torch >= 2.x aborts the process at
   exit ("terminate called without an active exception", exit status 134) or hangs. The
   prefetching threads are now stopped and joined at exit, before the interpreter shuts down.
5. An explicit ``--restore-file`` that does not exist makes fairseq log "No existing checkpoint
   found" and train from scratch; it is now an error (``data.checks.check_restore_file``).
6. ``fairseq-validate --task sentence_prediction`` crashed before loading anything
   ("Interpolation key 'criterion.classification_head_name' not found"): the task's head name
   is an interpolation of the criterion's, and fairseq-validate has no criterion options. The
   interpolation now falls back to the criterion's default name when there is no criterion;
   fairseq-validate then uses the task and criterion saved in the checkpoint, as for any task.
7. fairseq's ``TokenBlockDataset`` (``--sample-break-mode eos``) and bucketed
   ``LanguagePairDataset`` use ``np.compat.long``, which NumPy 2 removed; it is given back as
   ``np.int64`` (what it meant on 64-bit platforms) when absent.
"""
import atexit
import functools
import queue
import threading
import time
import types
import weakref

import numpy as np
import torch

_APPLIED = False


def _torch_with_pickle_load() -> types.ModuleType:
    """A stand-in for the ``torch`` module whose ``load`` unpickles full fairseq checkpoints."""
    proxy = types.ModuleType("torch")
    proxy.__dict__.update(torch.__dict__)

    @functools.wraps(torch.load)
    def load(*args, **kwargs):
        kwargs.setdefault("weights_only", False)
        return torch.load(*args, **kwargs)

    proxy.load = load
    return proxy


def _batch_by_size_keeping_last(original):
    @functools.wraps(original)
    def batch_by_size(indices, *args, **kwargs):
        batches = original(indices, *args, **kwargs)
        if kwargs.get("fixed_shapes") is not None:
            return batches
        order = np.asarray(indices if isinstance(indices, np.ndarray) else list(indices),
                           dtype=np.int64)
        batched = sum(len(b) for b in batches)
        if batched < len(order):
            # The dropped batch is the tail of the (contiguous) order: put it back.
            batches = list(batches) + [order[batched:]]
        return batches

    return batch_by_size


class _AtomicCopyPathManager:
    """fairseq's ``PathManager`` whose ``copy`` never leaves a partly written destination."""

    def __init__(self, path_manager):
        self._path_manager = path_manager

    def __getattr__(self, name):
        return getattr(self._path_manager, name)

    def copy(self, src_path: str, dst_path: str, overwrite: bool = False) -> bool:
        pm = self._path_manager
        if not pm.supports_rename(dst_path):
            return pm.copy(src_path, dst_path, overwrite=overwrite)
        tmp_path = dst_path + ".tmp"
        copied = pm.copy(src_path, tmp_path, overwrite=True)
        pm.rename(tmp_path, dst_path)
        return copied


_CONSUMERS = weakref.WeakSet()
_STOPPING = threading.Event()


def _stoppable(source):
    """Yield from ``source`` until the process starts exiting."""
    for item in source:
        if _STOPPING.is_set():
            return
        yield item


def _register_consumer(original_init):
    @functools.wraps(original_init)
    def __init__(self, queue, source, *args, **kwargs):
        original_init(self, queue, _stoppable(source), *args, **kwargs)
        _CONSUMERS.add(self)

    return __init__


def _stop_consumers(timeout_s: float = 30.0) -> None:
    """atexit: let every prefetching thread finish its batch and return (daemon threads still
    run normally while atexit handlers do)."""
    _STOPPING.set()
    deadline = time.monotonic() + timeout_s
    for consumer in list(_CONSUMERS):
        while consumer.is_alive() and time.monotonic() < deadline:
            try:  # unblock a put() on a full queue
                while True:
                    consumer._queue.get_nowait()
            except queue.Empty:
                pass
            consumer.join(timeout=0.05)


def _load_checkpoint_checking_restore_file(original):
    @functools.wraps(original)
    def load_checkpoint(cfg, trainer, **passthrough_args):
        from .data.checks import check_restore_file

        check_restore_file(cfg.restore_file, trainer.checkpoint_suffix)
        return original(cfg, trainer, **passthrough_args)

    return load_checkpoint


def _sentence_prediction_head_name_fallback() -> None:
    from fairseq.criterions.sentence_prediction import SentencePredictionConfig as CriterionConfig
    from fairseq.tasks.sentence_prediction import SentencePredictionConfig as TaskConfig

    head_name = TaskConfig.__dataclass_fields__["classification_head_name"]
    default = CriterionConfig.__dataclass_fields__["classification_head_name"].default
    # Read by fairseq's namespace -> omegaconf conversion; resolves as before with a criterion.
    head_name.default = f"${{oc.select:criterion.classification_head_name,{default}}}"


def apply() -> None:
    global _APPLIED
    if _APPLIED:
        return
    from fairseq import checkpoint_utils
    from fairseq.data import data_utils
    from fairseq.distributed import utils as distributed_utils

    pickle_torch = _torch_with_pickle_load()
    checkpoint_utils.torch = pickle_torch
    distributed_utils.torch = pickle_torch
    data_utils.batch_by_size = _batch_by_size_keeping_last(data_utils.batch_by_size)
    checkpoint_utils.PathManager = _AtomicCopyPathManager(checkpoint_utils.PathManager)
    checkpoint_utils.load_checkpoint = _load_checkpoint_checking_restore_file(
        checkpoint_utils.load_checkpoint)
    from fairseq.data import iterators
    iterators.BackgroundConsumer.__init__ = _register_consumer(iterators.BackgroundConsumer.__init__)
    atexit.register(_stop_consumers)
    _sentence_prediction_head_name_fallback()
    if not hasattr(np, "compat"):
        np.compat = types.SimpleNamespace(long=np.int64)
    _APPLIED = True
