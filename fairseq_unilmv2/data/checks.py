"""Checks of what users bring: text, dictionaries, checkpoints and paths.

Each check raises an error whose message names the bad input (file, line, key) and the fix,
instead of letting fairseq drop examples, fall back to ``<unk>``, start from scratch, or fail
later with a message about something else. Nothing here changes data: a check passes or raises.

Line numbers are 1-based and refer to the text given to ``fairseq-preprocess``, which keeps one
binarized entry per input line, empty lines included.
"""
import os
from typing import Iterable, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

MASK_SYMBOL = "<mask>"
# How many offending lines a message lists before it says "...".
SHOWN = 5


def _first_lines(indices: np.ndarray, sizes: np.ndarray = None) -> str:
    """'6 (201 tokens), 40 (77 tokens)' for the first few 0-based indices, with a '...' tail."""
    shown = [f"{i + 1}" + (f" ({int(sizes[i])} tokens)" if sizes is not None else "")
             for i in indices[:SHOWN]]
    return ", ".join(shown) + (", ..." if len(indices) > SHOWN else "")


def mask_index(dictionary, where: str) -> int:
    """Index of ``<mask>``, or a ValueError: UniLMv2 predicts every target token from it, and
    ``Dictionary.index`` would silently answer ``<unk>`` for a missing symbol."""
    if MASK_SYMBOL not in dictionary.indices:
        raise ValueError(
            f"{where} has no {MASK_SYMBOL} symbol, which UniLMv2 needs for its conventional and "
            f"pseudo masks: use --task pmlm or --task unilm_seq2seq (they append {MASK_SYMBOL} "
            f"to dict.txt, as masked_lm does), or add the line '{MASK_SYMBOL} 0' to dict.txt")
    return dictionary.indices[MASK_SYMBOL]


def check_task_fits_model(task) -> None:
    """A ``unilm_v2`` model needs a task whose dictionary holds ``<mask>`` (``unilm_seq2seq``,
    ``pmlm``, ``sentence_prediction``). fairseq-generate and fairseq-interactive without
    ``--task`` load a checkpoint into fairseq's ``translation`` task, whose dictionary lacks it,
    and would then fail on a vocabulary one entry short of the checkpoint's."""
    dictionary = task.source_dictionary
    if dictionary is None or MASK_SYMBOL in dictionary.indices:
        return
    name = getattr(getattr(task, "cfg", None), "_name", None) or type(task).__name__
    raise ValueError(
        f"this is a unilm_v2 model (a checkpoint of --arch unilm_v2_base/_large), but the task "
        f"is '{name}', whose dictionary has no {MASK_SYMBOL}: --task unilm_seq2seq is missing "
        f"(fairseq-generate and fairseq-interactive use fairseq's 'translation' task when "
        f"--task is left out). Add --task unilm_seq2seq to generate, or use --task pmlm / "
        f"sentence_prediction for pre-training / classification")


def check_text_lines(line_sizes: np.ndarray, split_path: str, break_mode: str,
                     block_tokens: int, tokens_per_sample: int) -> None:
    """Monolingual pre-training text: some text, no line that would become an empty example,
    and no line that fairseq would drop for being longer than a block.

    ``line_sizes`` are the binarized lines' lengths, each with its final eos (an empty line has
    size 1); ``block_tokens`` is how many of them fit in one block.
    """
    line_sizes = np.asarray(line_sizes)
    empty = np.flatnonzero(line_sizes <= 1)
    if len(empty) == len(line_sizes):
        raise ValueError(f"{split_path}: no text ({len(line_sizes)} lines, all empty): binarize "
                         "a text with fairseq-preprocess --only-source")
    if break_mode == "eos" and len(empty):
        raise ValueError(
            f"{split_path}: {len(empty)} empty lines, and with --sample-break-mode eos each line "
            f"is one example, so these would train nothing (lines {_first_lines(empty)}): remove "
            "them before fairseq-preprocess, or use --sample-break-mode complete_doc (empty lines "
            "separate documents) or none")
    if break_mode != "none":
        too_long = np.flatnonzero(line_sizes > block_tokens)
        if len(too_long):
            raise ValueError(
                f"{split_path}: {len(too_long)} lines are longer than the {block_tokens} tokens "
                f"of a block (--tokens-per-sample {tokens_per_sample} less [SOS] and two [EOS]); "
                f"--sample-break-mode {break_mode} never splits a line, so fairseq would drop "
                f"them: lines {_first_lines(too_long, line_sizes)}. Use --sample-break-mode none "
                "(blocks run across line ends), raise --tokens-per-sample, or split those lines")


def check_parallel_data(src_path: str, src_sizes: np.ndarray, tgt_path: str,
                        tgt_sizes: np.ndarray) -> None:
    """Sequence-to-sequence pairs: as many sources as targets, and no empty side.

    fairseq-preprocess binarizes each side on its own and accepts files of different lengths;
    pairing them by index would silently shift every pair after the first missing line.
    """
    if len(src_sizes) != len(tgt_sizes):
        raise ValueError(
            f"{src_path} has {len(src_sizes)} lines but {tgt_path} has {len(tgt_sizes)}: sources "
            "and targets pair up line by line. Make the raw files line-aligned (compare "
            "`wc -l`) and run fairseq-preprocess again")
    for path, sizes in ((src_path, src_sizes), (tgt_path, tgt_sizes)):
        empty = np.flatnonzero(np.asarray(sizes) <= 1)
        if len(empty):
            raise ValueError(
                f"{path}: {len(empty)} empty lines (lines {_first_lines(empty)}): a pair with an "
                "empty side is a broken or misaligned pair. Remove those lines from both raw "
                "files and run fairseq-preprocess again")


def check_restore_file(restore_file: str, suffix: str = "") -> None:
    """A ``--restore-file`` given explicitly must exist: fairseq would log 'No existing
    checkpoint found' and silently train from scratch. Asked of fairseq's ``PathManager``, as
    fairseq's ``load_checkpoint`` asks it (iopath's remote paths included)."""
    from fairseq.file_io import PathManager

    if restore_file == "checkpoint_last.pt":  # fairseq's default: <save-dir>/checkpoint_last.pt
        return
    path = restore_file.replace(".pt", suffix + ".pt") if suffix else restore_file
    if not PathManager.isfile(path):
        raise FileNotFoundError(
            f"--restore-file {path} does not exist (looked for it relative to "
            f"{os.getcwd()}): give an existing checkpoint, or leave --restore-file out to resume "
            "from <save-dir>/checkpoint_last.pt (to start from a pre-trained model use "
            "--finetune-from-model)")


def _layer_ids(keys: Iterable[str], prefix: str) -> set:
    return {int(k[len(prefix):].split(".")[0]) for k in keys if k.startswith(prefix)}


def check_checkpoint_matches(state_dict: Mapping[str, torch.Tensor],
                             model_state: Mapping[str, torch.Tensor],
                             prefix: str = "transformer.") -> None:
    """A checkpoint's Transformer must be a unilm_v2 one of the same size and vocabulary.

    ``model_state`` is the model's own state dict. Only the shared Transformer is compared
    (classification heads are reconciled by the model itself).
    """
    embed = prefix + "embed_tokens.weight"
    if embed not in state_dict:
        sample = ", ".join(sorted(state_dict)[:3])
        raise ValueError(
            f"the checkpoint is not a unilm_v2 model: it has no {embed} (its parameters are "
            f"named like {sample}). Load it with the architecture it was trained with, or "
            "convert a BERT / UniLM / s2s-ft checkpoint with scripts/convert_checkpoint.py")
    rows, model_rows = state_dict[embed].size(0), model_state[embed].size(0)
    if rows != model_rows:
        raise ValueError(
            f"the checkpoint's vocabulary has {rows} entries but this task's dictionary has "
            f"{model_rows} (dict.txt plus the symbols the task appends, such as {MASK_SYMBOL}): "
            "binarize the data with the checkpoint's dictionary (fairseq-preprocess --srcdict "
            "<the dict.txt the checkpoint was trained with>)")
    layers = prefix + "layers."
    ckpt_layers, model_layers = _layer_ids(state_dict, layers), _layer_ids(model_state, layers)
    mismatched = sorted(k for k, v in model_state.items() if k.startswith(prefix)
                        and k in state_dict and state_dict[k].shape != v.shape)
    missing = sorted(k for k in model_state if k.startswith(prefix) and k not in state_dict)
    if ckpt_layers != model_layers or mismatched or missing:
        details = _architecture_difference(state_dict, model_state, embed, ckpt_layers,
                                           model_layers, mismatched, missing)
        raise ValueError(
            f"the checkpoint's architecture differs from the model's: {details}. Pass the "
            "checkpoint's --arch and size flags (--encoder-layers, --encoder-embed-dim, "
            "--encoder-ffn-embed-dim, --encoder-attention-heads, --max-positions), or none of "
            "them where fairseq reads them from the checkpoint (fairseq-generate --path)")


def _architecture_difference(state_dict, model_state, embed: str, ckpt_layers: set,
                             model_layers: set, mismatched: Sequence[str],
                             missing: Sequence[str]) -> str:
    parts = []
    if ckpt_layers != model_layers:
        parts.append(f"{len(ckpt_layers)} layers in the checkpoint, {len(model_layers)} in the "
                     "model")
    dim, model_dim = state_dict[embed].size(1), model_state[embed].size(1)
    if dim != model_dim:
        parts.append(f"hidden size {dim} in the checkpoint, {model_dim} in the model")
    for key in mismatched[:2]:
        parts.append(f"{key} is {tuple(state_dict[key].shape)} in the checkpoint, "
                     f"{tuple(model_state[key].shape)} in the model")
    if missing and ckpt_layers == model_layers:
        parts.append(f"missing from the checkpoint: {', '.join(missing[:3])}")
    return "; ".join(parts)


# The source / target budgets of the paper's question generation setting (SPEC 4), which a
# 512-position table holds; the seq2seq task's unset budgets take these, or what fits a smaller
# table.
DEFAULT_SOURCE_POSITIONS, DEFAULT_TARGET_POSITIONS = 464, 48


def fitted_positions(table: int, source: Optional[int] = None,
                     target: Optional[int] = None) -> Tuple[int, int]:
    """(source, target) budgets for a model of ``table`` positions: a budget given is kept, an
    unset one takes its default, shrunk to what the table leaves (an unset target budget takes
    at most a quarter of a table smaller than both defaults)."""
    if source is None and target is None:
        if DEFAULT_SOURCE_POSITIONS + DEFAULT_TARGET_POSITIONS <= table:
            return DEFAULT_SOURCE_POSITIONS, DEFAULT_TARGET_POSITIONS
        target = min(DEFAULT_TARGET_POSITIONS, table // 4)
        return table - target, target
    if source is None:
        return min(DEFAULT_SOURCE_POSITIONS, table - target), target
    if target is None:
        return source, min(DEFAULT_TARGET_POSITIONS, table - source)
    return source, target
