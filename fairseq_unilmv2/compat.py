"""Fixes that fairseq 0.12 needs on today's PyTorch, applied once when the plugin is imported.

``--user-dir fairseq_unilmv2`` imports this into the user's whole fairseq, so each fix says
whether it can change the results of another task (translation, language_modeling, masked_lm,
...). Fixes of crashes and hangs apply everywhere. Fixes that change results apply to this
plugin's own tasks and datasets only, except four (1, 2 at inference, 5 and 10) whose change
*is* the fix for every task; ``tests/test_compat_scope.py`` runs fairseq's own translation
task through its CLIs to show that change, and the README lists them under "What loading the
plugin changes for other fairseq tasks". ``tests/fairseq_suite.py`` runs fairseq's own tests
with and without the plugin.

1. Loading a checkpoint runs no code. torch >= 2.6 loads with ``weights_only=True`` by default,
   which refuses fairseq checkpoints (they pickle the argparse / omegaconf config). fairseq's
   own loaders (``checkpoint_utils``: ``load_checkpoint_to_cpu``, hence the trainer's restore,
   ``--finetune-from-model``, ``fairseq-generate`` / ``-interactive`` / ``-validate --path``,
   ``from_pretrained``; and ``distributed_utils.broadcast_object``, through which rank 0 sends
   the restored state to the other ranks) now load with ``weights_only=True`` and an
   allow-list of exactly the types fairseq checkpoints hold (:func:`checkpoint_safe_globals`).
   A file holding anything else is refused by :class:`UntrustedCheckpointError`, which names
   the file, the types and the switch that trusts it: ``FAIRSEQ_UNILMV2_TRUST_CHECKPOINTS=1``
   in the environment (off by default) loads with full unpickling, as stock fairseq on an old
   torch did. Every other ``torch.load`` in the process is left alone. *Global, the change is
   the fix*: every checkpoint of fairseq's own tasks loads as before; a pickle that would run
   code is refused instead of run.
2. fairseq-fixed's ``batch_by_size`` silently drops the last batch when
   ``--required-batch-size-multiple`` does not divide its size, which loses examples in
   ``fairseq-generate``, ``fairseq-validate`` and every validation. The wrapper keeps that
   batch. *Scoped*: a training epoch keeps it only for this plugin's tasks; the training
   batches of other tasks (built by ``Trainer.get_train_iterator``) stay as fairseq-fixed
   makes them. *Global at inference, the change is the fix*: every task's generation and
   validation now see all their examples.
3. fairseq writes a checkpoint atomically (temporary file, then rename) but then *copies* it to
   ``checkpoint_last.pt`` in place, so a run killed during that copy leaves a truncated
   ``checkpoint_last.pt`` and cannot resume. Checkpoint copies now go through a temporary file
   and a rename too. *Global, a crash fix*: the same bytes end up in the same file.
4. fairseq's ``BufferedIterator`` prefetches batches in a daemon thread. When a run ends (e.g.
   ``--max-update``) while that thread is inside a torch op, torch >= 2.x aborts the process at
   exit ("terminate called without an active exception", exit status 134) or hangs. The
   prefetching threads are now stopped and joined at exit, before the interpreter shuts down.
   *Global, a crash fix*: it acts only once the interpreter is exiting.
5. An explicit ``--restore-file`` that does not exist makes fairseq log "No existing checkpoint
   found" and train from scratch; it is now an error (``data.checks.check_restore_file``),
   checked through fairseq's ``PathManager``, as fairseq then opens it (iopath's remote paths
   included). *Global, the change is the fix*: any task's training stops with that error
   instead of silently starting from scratch.
6. ``fairseq-validate --task sentence_prediction`` crashed before loading anything
   ("Interpolation key 'criterion.classification_head_name' not found"): the task's head name
   is an interpolation of the criterion's, and fairseq-validate has no criterion options. The
   interpolation now falls back to the criterion's default name when there is no criterion;
   fairseq-validate then uses the task and criterion saved in the checkpoint, as for any task.
   *Global, a crash fix*: with a criterion the name resolves exactly as before.
7. fairseq's ``TokenBlockDataset`` (``--sample-break-mode eos``) and bucketed
   ``LanguagePairDataset`` use ``np.compat.long``, which NumPy 2 removed; it is given back as
   ``np.int64`` (what it meant on 64-bit platforms) when absent. *Global, a crash fix*.
8. fairseq's ``options.parse_args_and_arch`` turns ``--bf16`` (and ``--memory-efficient-bf16``)
   into ``--tpu``, so that on CUDA, or with ``--cpu``, the trainer calls
   ``xm.xla_device()`` on a missing torch_xla (``AttributeError: 'NoneType' object has no
   attribute 'xla_device'``; fairseq issue 4696), and ``fairseq-validate`` on several GPUs
   imports torch_xla to spawn its workers. ``tpu`` now stays off with bf16 unless ``--tpu`` was
   given or torch_xla is the device (installed, no CUDA, no ``--cpu``). The plugin is imported
   by ``--user-dir`` *inside* the parse of the very command line it must fix, after which that
   call still sets ``tpu``; so the namespaces that very parse returns are remembered and
   settled where fairseq turns them into its config (``convert_namespace_to_omegaconf``, also
   as the fairseq CLIs imported it), and every later ``parse_args_and_arch`` settles its own
   result against its own arguments. No other namespace is touched (a legacy checkpoint's
   ``args`` keep their ``tpu``). *Global, a crash fix*: ``tpu`` changes only where it would
   have crashed (bf16 without torch_xla as the device).
9. Data-loader workers of this plugin's datasets are not persistent. fairseq 0.12 gives every
   ``EpochBatchIterator`` persistent workers, which is wrong both ways. (a) An iterator that
   fairseq caches and reuses across epochs keeps the workers forked in its first epoch, with
   their copy of the dataset: ``set_epoch`` never reaches them, so epoch-dependent examples
   stay those of the first epoch (``Seq2SeqDataset``'s corruption) whenever
   ``--num-workers`` > 0. (b) An iterator built afresh each epoch (``PMLMDataset``, whose
   masks change with the epoch and so cannot reuse one; sharded data; each validation) leaves
   its workers running after the epoch. An epoch iterator also keeps its data loader iterator
   after its last batch (it stops at its length, so the loader is never exhausted and never
   stops its workers). All of it hangs off the old ``EpochBatchIterator``, which sits in a
   reference cycle (its batch sampler holds one of its methods), so only the cyclic garbage
   collector frees it, at whatever allocation triggers a collection; by then the collector
   has closed the workers' index queues (their weakref finalizers run before the loader's
   ``__del__``), the stop message never reaches a worker, and the loader waits out its 5 s
   join timeout for each one: with ``--num-workers 4``, stalls of 40-100 s at epoch starts (or
   inside a training step). Now the workers of this plugin's datasets are forked for each
   epoch after ``set_epoch``, and an epoch iterator (``CountingIterator``) lets go of its
   source as it hands out its last batch, so reference counting stops the workers there and
   then, their queues still open. *Scoped* (non-persistent workers: this plugin's datasets;
   other tasks keep fairseq's, and their own ``persistent_workers`` setting, e.g. masked_lm's
   masks stay those of its first epoch as in stock fairseq). *Global* (releasing the source
   after the last batch, a hang fix: the same batches in the same order).
10. ``--no-repeat-ngram-size`` blocked nothing without fairseq's CUDA extension (on the CPU,
   and on GPUs where it is not built): the Python fallback of ``NGramRepeatBlock`` compares
   every earlier n-gram with the last n - 1 entries of the whole token buffer, which lie past
   the current step and hold padding. It now sees the tokens up to the current step, which is
   what the CUDA extension reads. *Global, the change is the fix*: CPU generation of every
   task with ``--no-repeat-ngram-size`` now blocks repeated n-grams, as on CUDA. The
   replacement stays TorchScript-compilable (``torch.jit.script`` of ``SequenceGenerator``).
11. ``--ddp-backend pytorch_ddp`` (alias ``c10d``, fairseq's default on GPUs) crashed with
   ``--cpu``: fairseq passes ``device_ids=[device_id]`` to ``DistributedDataParallel``, which
   torch refuses for a module on the CPU. A module on the CPU is now wrapped with no device
   ids (what torch asks for there); a module on an accelerator gets fairseq's arguments
   unchanged. *Global, a crash fix*: CPU runs (gloo) train with DDP's bucketed all-reduce and
   its unused-parameter check, as GPU runs do.
12. ``sentence_prediction`` with ``--report-mcc``, ``--report-acc-and-f1`` or
   ``--report-pearson-and-spearman`` (GLUE's CoLA, MRPC, QQP, STS-B) crashed at the first
   validation on several processes (``TypeError: unsupported operand type(s) for +: 'int' and
   'list'``): its criterion then logs each example's prediction and target as lists, yet tells
   the trainer that its logging outputs can be summed across workers. It now says so only when
   it keeps no predictions, so the trainer gathers them (``all_gather_list``) and the metric is
   computed over every rank's examples. *Global, a crash fix*: one process is unchanged (the
   trainer aggregates across workers only with several). fairseq's gathering itself,
   ``distributed_utils.all_gather_list``, allocates a CUDA buffer, so on the CPU (gloo) it
   crashed too ("type torch.cuda.ByteTensor not available"); under any backend but NCCL it now
   gathers through ``torch.distributed.all_gather_object``. *Global, a crash fix*: NCCL runs
   take fairseq's code unchanged.
"""
import atexit
import contextvars
import functools
import importlib.util
import math
import os
import pickle
import queue
import re
import sys
import threading
import time
import types
import weakref
from typing import List

import numpy as np
import torch

_APPLIED = False
_PACKAGE = __name__.split(".")[0]


def _is_this_plugins(obj) -> bool:
    """``obj`` (a task, a dataset) is an instance of a class defined in this plugin."""
    return type(obj).__module__.split(".")[0] == _PACKAGE


TRUST_CHECKPOINTS_ENV = "FAIRSEQ_UNILMV2_TRUST_CHECKPOINTS"


class UntrustedCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds a type outside :func:`checkpoint_safe_globals`: loading it could run
    code, so it is refused (fix 1)."""


def checkpoint_safe_globals(broadcast: bool = False) -> list:
    """The types fairseq 0.12 checkpoints hold beyond tensors and plain containers.

    Measured on this plugin's checkpoints and fairseq's own tasks: ``argparse.Namespace``
    (``args`` of older files, ``cfg["model"]`` of architectures with legacy arguments);
    omegaconf's containers and the metadata they pickle (a checkpoint re-saved after
    ``load_checkpoint_to_cpu`` holds a ``DictConfig``), with ``typing.Any`` and the builtin
    types that metadata names; ``collections.defaultdict``; NumPy scalars and their dtypes,
    under NumPy 2's module name and NumPy 1's. ``broadcast`` adds the placeholder that
    ``distributed_utils.broadcast_object`` puts where the tensors it sends separately were.
    """
    import argparse
    import collections
    import typing

    from omegaconf import DictConfig, ListConfig
    from omegaconf.base import ContainerMetadata, Metadata
    from omegaconf.nodes import AnyNode

    scalar = np.float64(0).__reduce__()[0]  # numpy's multiarray.scalar
    # The dtype a scalar is rebuilt with is an instance of its own class (NumPy >= 1.25).
    dtype_classes = {type(np.dtype(code)) for code in "?bhilqBHILQefd"} - {np.dtype}
    safe = [argparse.Namespace, DictConfig, ListConfig, ContainerMetadata, Metadata, AnyNode,
            typing.Any, collections.defaultdict, dict, list, int,
            np.dtype, *sorted(dtype_classes, key=str), (scalar, "numpy._core.multiarray.scalar"),
            (scalar, "numpy.core.multiarray.scalar")]
    if broadcast:
        from fairseq.distributed.utils import _TensorPlaceholder
        safe.append(_TensorPlaceholder)
    return safe


def _trusted_by_the_user() -> bool:
    return os.environ.get(TRUST_CHECKPOINTS_ENV, "").strip().lower() in ("1", "true", "yes")


def _unsafe_globals(source) -> List[str]:
    """The globals a (zip-format) checkpoint names outside torch's own allow-list."""
    try:
        if hasattr(source, "seek"):
            source.seek(0)
        return torch.serialization.get_unsafe_globals_in_checkpoint(source)
    except Exception:  # an older or non-zip format: the unpickler's message names one
        return []


def _refusal(source, error: Exception, safe: list) -> UntrustedCheckpointError:
    allowed = {entry[1] if isinstance(entry, tuple) else f"{entry.__module__}.{entry.__qualname__}"
               for entry in safe}
    offending = [name for name in _unsafe_globals(source) if name not in allowed]
    if not offending:
        offending = [a or b for a, b in re.findall(r"GLOBAL ([\w.]+)|got <class '([\w.]+)'>",
                                                   str(error))]
    name = getattr(source, "name", None)
    where = f"checkpoint {name}" if isinstance(name, str) else "a checkpoint (in memory)"
    types_ = ", ".join(offending) if offending else f"({error})"
    return UntrustedCheckpointError(
        f"refused to load {where}: it holds {types_}, which fairseq checkpoints do not hold, "
        f"and unpickling it could run code. If you trust the file (you made it, or its source), "
        f"load it with {TRUST_CHECKPOINTS_ENV}=1 in the environment.")


def _torch_loading_safely(broadcast: bool = False) -> types.ModuleType:
    """A stand-in for the ``torch`` module, for fairseq's loaders: its ``load`` unpickles with
    ``weights_only=True`` and :func:`checkpoint_safe_globals`."""
    proxy = types.ModuleType("torch")
    proxy.__dict__.update(torch.__dict__)

    @functools.wraps(torch.load)
    def load(f, *args, **kwargs):
        if _trusted_by_the_user():
            kwargs["weights_only"] = False
            return torch.load(f, *args, **kwargs)
        kwargs["weights_only"] = True
        safe = checkpoint_safe_globals(broadcast)
        try:
            with torch.serialization.safe_globals(safe):
                return torch.load(f, *args, **kwargs)
        except pickle.UnpicklingError as error:
            raise _refusal(f, error, safe) from None

    proxy.load = load
    return proxy


# True while Trainer.get_train_iterator makes the training batches of a task that is not this
# plugin's: those keep fairseq-fixed's rule (fix 2 is scoped there).
_OTHER_TASKS_TRAINING_BATCHES = contextvars.ContextVar("other_tasks_training_batches",
                                                       default=False)


def _batch_by_size_keeping_last(original):
    @functools.wraps(original)
    def batch_by_size(indices, *args, **kwargs):
        batches = original(indices, *args, **kwargs)
        if kwargs.get("fixed_shapes") is not None or _OTHER_TASKS_TRAINING_BATCHES.get():
            return batches
        order = np.asarray(indices if isinstance(indices, np.ndarray) else list(indices),
                           dtype=np.int64)
        batched = sum(len(b) for b in batches)
        if batched < len(order):
            # The dropped batch is the tail of the (contiguous) order: put it back.
            batches = list(batches) + [order[batched:]]
        return batches

    return batch_by_size


def _other_tasks_training_batches_as_fairseq_makes_them(original):
    @functools.wraps(original)
    def get_train_iterator(self, *args, **kwargs):
        if _is_this_plugins(self.task):
            return original(self, *args, **kwargs)
        token = _OTHER_TASKS_TRAINING_BATCHES.set(True)
        try:
            return original(self, *args, **kwargs)
        finally:
            _OTHER_TASKS_TRAINING_BATCHES.reset(token)

    return get_train_iterator


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


# The namespaces parsed by the fairseq command line that imported this plugin through
# --user-dir (id -> (weak reference, the arguments parsed)): only those are settled when
# fairseq converts a namespace to its config.
_CLI_NAMESPACES = {}


def _xla_is_the_device(args) -> bool:
    """torch_xla is installed and nothing else is the device (no CUDA, no --cpu)."""
    if getattr(args, "cpu", False) or torch.cuda.is_available():
        return False
    return importlib.util.find_spec("torch_xla") is not None


def _settle_tpu(args, argv) -> None:
    """Turn off the ``tpu`` that fairseq's option parsing derives from ``--bf16`` alone.

    ``argv`` is the command line ``args`` was parsed from; ``--tpu`` on it keeps ``tpu`` on
    (fairseq parsers do not accept abbreviations, so the option is spelled out).
    """
    if not (getattr(args, "bf16", False) and getattr(args, "tpu", False)):
        return
    if "--tpu" not in argv and not _xla_is_the_device(args):
        args.tpu = False


def _parse_args_and_arch_settling_tpu(original):
    @functools.wraps(original)
    def parse_args_and_arch(parser, input_args=None, *args, **kwargs):
        result = original(parser, input_args, *args, **kwargs)
        parsed = result[0] if isinstance(result, tuple) else result  # parse_known=True
        _settle_tpu(parsed, sys.argv[1:] if input_args is None else list(input_args))
        return result

    return parse_args_and_arch


def _remember_the_namespaces_of_the_parse_in_progress(parse_args_and_arch) -> None:
    """When --user-dir imports the plugin, fairseq's ``parse_args_and_arch`` is on the stack,
    parsing the CLI's command line: record the namespaces its parser returns from now on."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code is not parse_args_and_arch.__code__:
        frame = frame.f_back
    if frame is None:  # imported by a program, not by a command line's --user-dir
        return
    parser, input_args = frame.f_locals["parser"], frame.f_locals["input_args"]
    argv = sys.argv[1:] if input_args is None else list(input_args)
    parse_known_args = parser.parse_known_args  # parse_args calls it too

    def remembering_parse_known_args(*args, **kwargs):
        namespace, extra = parse_known_args(*args, **kwargs)
        _CLI_NAMESPACES[id(namespace)] = (weakref.ref(namespace), argv)
        return namespace, extra

    parser.parse_known_args = remembering_parse_known_args
    del frame


def _convert_namespace_settling_tpu(original):
    @functools.wraps(original)
    def convert_namespace_to_omegaconf(args):
        ref, argv = _CLI_NAMESPACES.get(id(args), (None, None))
        if ref is not None and ref() is args:
            _settle_tpu(args, argv)
        return original(args)

    return convert_namespace_to_omegaconf


def _settle_bf16_tpu() -> None:
    from fairseq import options
    from fairseq.dataclass import utils as dataclass_utils

    _remember_the_namespaces_of_the_parse_in_progress(options.parse_args_and_arch)
    options.parse_args_and_arch = _parse_args_and_arch_settling_tpu(options.parse_args_and_arch)
    original = dataclass_utils.convert_namespace_to_omegaconf
    patched = _convert_namespace_settling_tpu(original)
    # fairseq_cli.train/validate/generate (and fairseq's own modules) bound the function by
    # name when imported, which happened before --user-dir imported this plugin.
    for name, module in list(sys.modules.items()):
        if (name.split(".")[0] in ("fairseq", "fairseq_cli")
                and getattr(module, "convert_namespace_to_omegaconf", None) is original):
            module.convert_namespace_to_omegaconf = patched


def _without_persistent_workers_for_this_plugins_datasets(original_init):
    @functools.wraps(original_init)
    def __init__(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        if _is_this_plugins(self.dataset):
            # Read when the DataLoader is made (next_epoch_itr), after set_epoch.
            self.persistent_workers = False

    return __init__


def _counting_next_releasing_source(original):
    @functools.wraps(original)
    def __next__(self):
        item = original(self)
        if not self.has_next():
            # That was the epoch's last batch: drop the data loader iterator (or the
            # prefetching iterator that holds it) now, not when the collector gets to this
            # epoch's objects. Not only at StopIteration: fairseq's GroupedIterator stops at
            # its own length and never asks the iterator below it for one more.
            self._itr = iter(())
        return item

    return __next__


def _no_repeat_ngram(self, tokens: torch.Tensor, lprobs: torch.Tensor, bsz: int,
                     beam_size: int, step: int):
    """``NGramRepeatBlock``'s Python fallback, reading the tokens up to ``step`` (the CUDA
    extension's view) instead of the end of the padded buffer. Written out in full, in the
    subset of Python that TorchScript compiles, so that ``torch.jit.script`` of fairseq's
    ``SequenceGenerator`` still works (a wrapper around fairseq's method does not compile)."""
    n = self.no_repeat_ngram_size
    starts = step + 2 - n  # positions where an earlier n-gram can start
    if starts <= 0:
        return lprobs
    generated: List[List[int]] = tokens[:, :step + 1].cpu().tolist()
    for row in range(bsz * beam_size):
        hypothesis = generated[row]
        context = hypothesis[-(n - 1):]  # its last n - 1 tokens (as fairseq slices them)
        banned: List[int] = []
        for i in range(starts):
            if hypothesis[i:i + n - 1] == context:
                banned.append(hypothesis[i + n - 1])
        if len(banned) > 0:
            lprobs[row, torch.tensor(banned, dtype=torch.int64, device=lprobs.device)] = \
                -math.inf
    return lprobs


def _ddp_without_device_ids_on_the_cpu(ddp_class):
    class DistributedDataParallel(ddp_class):
        """torch's DDP; a module on the CPU is wrapped without device ids (fix 11)."""

        def __init__(self, module, device_ids=None, output_device=None, *args, **kwargs):
            first = next(module.parameters(), None)
            if first is not None and first.device.type == "cpu":
                device_ids = output_device = None
            super().__init__(module, device_ids, output_device, *args, **kwargs)

    DistributedDataParallel.__module__ = ddp_class.__module__
    DistributedDataParallel.__qualname__ = ddp_class.__qualname__
    return DistributedDataParallel


def _summable_unless_keeping_predictions(self=None) -> bool:
    """``SentencePredictionCriterion.logging_outputs_can_be_summed`` (fix 12); on the class
    (no instance) it answers as fairseq did."""
    return not getattr(self, "keep_pred_and_targ", False)


def _all_gather_list_off_nccl(original):
    @functools.wraps(original)
    def all_gather_list(data, group=None, max_size=16384):
        from fairseq import utils
        from fairseq.distributed import utils as distributed_utils

        group = distributed_utils.get_global_group() if group is None else group
        if torch.distributed.get_backend(group) == "nccl":
            return original(data, group=group, max_size=max_size)
        gathered = [None] * distributed_utils.get_world_size(group)
        torch.distributed.all_gather_object(gathered, utils.move_to_cpu(data), group=group)
        return gathered

    return all_gather_list


def apply() -> None:
    global _APPLIED
    if _APPLIED:
        return
    from fairseq import checkpoint_utils
    from fairseq.data import data_utils
    from fairseq.distributed import utils as distributed_utils

    checkpoint_utils.torch = _torch_loading_safely()
    distributed_utils.torch = _torch_loading_safely(broadcast=True)
    data_utils.batch_by_size = _batch_by_size_keeping_last(data_utils.batch_by_size)
    from fairseq.trainer import Trainer
    Trainer.get_train_iterator = _other_tasks_training_batches_as_fairseq_makes_them(
        Trainer.get_train_iterator)
    checkpoint_utils.PathManager = _AtomicCopyPathManager(checkpoint_utils.PathManager)
    checkpoint_utils.load_checkpoint = _load_checkpoint_checking_restore_file(
        checkpoint_utils.load_checkpoint)
    from fairseq.data import iterators
    iterators.BackgroundConsumer.__init__ = _register_consumer(iterators.BackgroundConsumer.__init__)
    atexit.register(_stop_consumers)
    _sentence_prediction_head_name_fallback()
    _settle_bf16_tpu()
    iterators.EpochBatchIterator.__init__ = _without_persistent_workers_for_this_plugins_datasets(
        iterators.EpochBatchIterator.__init__)
    iterators.CountingIterator.__next__ = _counting_next_releasing_source(
        iterators.CountingIterator.__next__)
    from fairseq.ngram_repeat_block import NGramRepeatBlock
    NGramRepeatBlock._no_repeat_ngram = _no_repeat_ngram
    from fairseq.models import distributed_fairseq_model
    distributed_fairseq_model.DistributedDataParallel = _ddp_without_device_ids_on_the_cpu(
        distributed_fairseq_model.DistributedDataParallel)
    distributed_utils.all_gather_list = _all_gather_list_off_nccl(
        distributed_utils.all_gather_list)
    from fairseq.criterions.sentence_prediction import SentencePredictionCriterion
    SentencePredictionCriterion.logging_outputs_can_be_summed = \
        _summable_unless_keeping_predictions
    if not hasattr(np, "compat"):
        np.compat = types.SimpleNamespace(long=np.int64)
    _APPLIED = True
