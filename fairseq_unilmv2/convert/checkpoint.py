"""Released UniLMv2 / UniLMv1 / MiniLM / BERT weights -> a fairseq ``unilm_v2`` checkpoint.

:func:`convert_checkpoint` reads a state dict (``.bin`` / ``.pt`` / ``.safetensors``), its
``config.json`` and its WordPiece ``vocab.txt`` (or the Hugging Face ``tokenizer.json`` holding
it), and writes into ``out_dir``:

- ``model.pt``: a fairseq checkpoint (``{"cfg", "model", ...}`` as ``fairseq-train`` saves it,
  cfg model ``unilm_v2`` and a runnable task) that ``fairseq-train --restore-file`` /
  ``--finetune-from-model``, ``fairseq-generate --path`` and ``UniLMv2Model.from_pretrained``
  load;
- ``dict.txt``: the fairseq dictionary (binarize with ``fairseq-preprocess --srcdict``);
- ``vocab.txt``: the WordPiece vocabulary, copied or written from ``tokenizer.json``
  (``--bpe bert --bpe-vocab-file``, ``scripts/wordpiece.py``);
- ``model_flags.txt``: the ``fairseq-train`` flags that rebuild this model (also logged), for
  ``fairseq-train ... $(cat DIR/model_flags.txt) --restore-file DIR/model.pt``.
"""
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import torch
from fairseq import checkpoint_utils, tasks
from fairseq.data import Dictionary
from fairseq.dataclass.configs import FairseqConfig
from omegaconf import OmegaConf

from ..data.checks import fitted_positions
from ..models.unilm_v2 import UniLMv2Config, UniLMv2Model
from ..modules.transformer import UniLMv2Transformer
from . import layouts
from .errors import ConversionError
from .vocab import (load_task_dictionary, read_vocab, wordpiece_rows, write_fairseq_dict,
                    write_wordpiece_vocab)

logger = logging.getLogger(__name__)

PathLike = Union[str, Path]
DEFAULT_TASK = "unilm_seq2seq"


@dataclass
class ConversionResult:
    model: UniLMv2Model
    dictionary: Dictionary
    layout: str
    checkpoint_path: Path


# ----------------------------------------------------------------------------- reading
def load_state_dict(path: PathLike) -> Dict[str, torch.Tensor]:
    """A state dict from ``.safetensors`` or a PyTorch pickle (tensors only, no code run)."""
    path = Path(path)
    if not path.is_file():
        raise ConversionError(f"checkpoint file {path} does not exist (--checkpoint)")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        return load_file(str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 (any unpickling failure means the same to a user)
        raise ConversionError(f"cannot read {path} as a PyTorch state dict: {err}") from None
    for wrapper in ("model", "state_dict", "module"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise ConversionError(f"{path} is not a state dict (a mapping of names to tensors)")
    return state


def load_config(path: PathLike) -> Dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConversionError(f"config file {path} does not exist (--config)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ConversionError(f"{path} is not valid JSON: {err}") from None


# ----------------------------------------------------------------------------- tensors
def extend_positions(table: torch.Tensor, rows: int) -> torch.Tensor:
    """The released recipe's table resize (SPEC 4): longer copies the rows cyclically
    (row 512 + k = row k), shorter keeps the first rows."""
    old = table.size(0)
    if rows <= old:
        return table[:rows].clone()
    return table[torch.arange(rows) % old].clone()


def _check_vocabulary(mapped: Dict[str, torch.Tensor], tokens: List[str],
                      config: Dict[str, Any]) -> None:
    rows = mapped["transformer.embed_tokens.weight"].size(0)
    if len(tokens) != rows:
        raise ConversionError(f"the vocabulary has {len(tokens)} tokens but the word embedding "
                              f"table {rows} rows: pass the vocab.txt released with this "
                              "checkpoint (--vocab)")
    if int(config["vocab_size"]) != rows:
        raise ConversionError(f"config.json vocab_size = {config['vocab_size']} but the word "
                              f"embedding table has {rows} rows: config and checkpoint differ")


def _check_shapes(mapped: Dict[str, torch.Tensor], expected: Dict[str, torch.Tensor]) -> None:
    """Every tensor against the model that config.json describes, before loading."""
    for name, tensor in mapped.items():
        want = tuple(expected[name].shape)
        if tuple(tensor.shape) != want:
            raise ConversionError(
                f"{name} has shape {tuple(tensor.shape)} in the checkpoint but config.json "
                f"(hidden_size, num_attention_heads, intermediate_size, type_vocab_size, "
                f"rel_pos_bins, max_position_embeddings) describes {want}")


def build_model(cfg: UniLMv2Config, dictionary: Dictionary) -> UniLMv2Model:
    """A ``unilm_v2`` model over ``dictionary`` without a task (as ``build_model`` does)."""
    transformer = UniLMv2Transformer(cfg, len(dictionary), dictionary.pad())
    return UniLMv2Model(cfg, transformer, dictionary)


def fairseq_state_dict(state: Dict[str, torch.Tensor], config: Dict[str, Any],
                       tokens: List[str], dictionary: Dictionary,
                       cfg: UniLMv2Config) -> Tuple[Dict[str, torch.Tensor], str]:
    """Mapped names, vocabulary rows in fairseq order, position table resized."""
    mapped, layout = layouts.to_fairseq(state, cfg)
    _check_vocabulary(mapped, tokens, config)
    positions = mapped["transformer.embed_positions.weight"]
    stored = int(config.get("max_position_embeddings", positions.size(0)))
    if positions.size(0) != stored:
        raise ConversionError(f"the position table has {positions.size(0)} rows but config.json "
                              f"max_position_embeddings = {stored}")
    if cfg.max_positions != stored:
        logger.info(f"position table {stored} -> {cfg.max_positions} rows "
                    f"({'cyclic copy' if cfg.max_positions > stored else 'truncated'})")
        mapped["transformer.embed_positions.weight"] = extend_positions(positions,
                                                                        cfg.max_positions)
    rows = wordpiece_rows(dictionary, tokens)
    embed = mapped["transformer.embed_tokens.weight"][rows].clone()
    mapped["transformer.embed_tokens.weight"] = embed
    if "transformer.lm_head.bias" in mapped:
        mapped["transformer.lm_head.bias"] = mapped["transformer.lm_head.bias"][rows].clone()
        mapped["transformer.lm_head.weight"] = embed
    return mapped, layout


# ----------------------------------------------------------------------------- fairseq cfg
def fairseq_cfg(model_cfg: UniLMv2Config, task: str, data_dir: PathLike):
    """A full ``FairseqConfig`` (as ``fairseq-train`` would save) for this model and task."""
    registry = tasks.TASK_DATACLASS_REGISTRY
    if task not in registry:
        ours = sorted(t for t in registry if t.startswith(("unilm", "pmlm")))
        raise ConversionError(f"task {task!r} is not registered (is the fairseq_unilmv2 plugin "
                              f"imported?); UniLMv2 tasks available: {', '.join(ours) or 'none'}")
    task_cfg = registry[task]()
    task_cfg._name = task
    task_cfg.data = str(Path(data_dir).resolve())
    _fit_task_cfg(task_cfg, model_cfg, Path(data_dir))
    model_cfg._name = "unilm_v2"
    return OmegaConf.structured(FairseqConfig(model=model_cfg, task=task_cfg))


def _fit_task_cfg(task_cfg, model_cfg: UniLMv2Config, data_dir: Path) -> None:
    """Make the stored task loadable from ``data_dir`` alone (``from_pretrained(DIR)``).

    A language-pair task (``unilm_seq2seq``) reads ``dict.{src,tgt}.txt``: both are written as
    copies of ``dict.txt`` and the pair is fixed to src/tgt. Its source + target budgets are
    the defaults, or what fits a smaller position table (tiny models), as fairseq-generate
    fits them when the flags are left out.
    """
    if hasattr(task_cfg, "source_lang") and hasattr(task_cfg, "target_lang"):
        task_cfg.source_lang, task_cfg.target_lang = "src", "tgt"
        for lang in ("src", "tgt"):
            shutil.copyfile(data_dir / "dict.txt", data_dir / f"dict.{lang}.txt")
    if hasattr(task_cfg, "max_source_positions") and hasattr(task_cfg, "max_target_positions"):
        task_cfg.max_source_positions, task_cfg.max_target_positions = fitted_positions(
            model_cfg.max_positions, task_cfg.max_source_positions,
            task_cfg.max_target_positions)


def model_flags(cfg: UniLMv2Config) -> List[str]:
    """The ``fairseq-train`` flags that build this same model (for --restore-file)."""
    return ["--arch", "unilm_v2_base", "--encoder-layers", str(cfg.encoder_layers),
            "--encoder-embed-dim", str(cfg.encoder_embed_dim),
            "--encoder-ffn-embed-dim", str(cfg.encoder_ffn_embed_dim),
            "--encoder-attention-heads", str(cfg.encoder_attention_heads),
            "--max-positions", str(cfg.max_positions),
            "--type-vocab-size", str(cfg.type_vocab_size),
            "--source-type-id", str(cfg.source_type_id),
            "--target-type-id", str(cfg.target_type_id),
            "--rel-pos-bins", str(cfg.rel_pos_bins), "--max-rel-pos", str(cfg.max_rel_pos),
            "--layer-norm-eps", str(cfg.layer_norm_eps), "--activation-fn", str(cfg.activation_fn)]


def save_fairseq_checkpoint(model: UniLMv2Model, cfg, path: PathLike) -> None:
    """Write ``{"cfg", "model", ...}`` shaped like a fresh ``fairseq-train`` checkpoint: no
    optimizer state, epoch 1, 0 updates, so fine-tuning starts from scratch."""
    state = {
        "args": None,
        "cfg": OmegaConf.to_container(cfg, resolve=True, enum_to_str=True),
        "model": model.state_dict(),
        "criterion": None,
        "optimizer_history": [{"criterion_name": "none", "optimizer_name": "none",
                               "lr_scheduler_state": {"best": None}, "num_updates": 0}],
        "task_state": {},
        "extra_state": {"train_iterator": {"epoch": 1, "iterations_in_epoch": 0,
                                           "version": 2, "shuffle": True}},
        "last_optimizer_state": None,
    }
    checkpoint_utils.torch_persistent_save(state, str(path))


# ----------------------------------------------------------------------------- pipeline
def convert_checkpoint(checkpoint: PathLike, config: PathLike, vocab: PathLike,
                       out_dir: PathLike, max_positions: Optional[int] = None,
                       task: str = DEFAULT_TASK) -> ConversionResult:
    """Convert one released checkpoint; see the module docstring for what is written."""
    out_dir = Path(out_dir)
    config_dict = load_config(config)
    tokens = read_vocab(vocab)
    model_cfg = layouts.model_config(config_dict, max_positions)
    state = load_state_dict(checkpoint)

    out_dir.mkdir(parents=True, exist_ok=True)
    write_fairseq_dict(tokens, out_dir / "dict.txt")
    if Path(vocab).suffix == ".json":  # tokenizer.json: its vocabulary as a vocab.txt
        write_wordpiece_vocab(tokens, out_dir / "vocab.txt")
    elif Path(vocab).resolve() != (out_dir / "vocab.txt").resolve():
        shutil.copyfile(vocab, out_dir / "vocab.txt")
    cfg = fairseq_cfg(model_cfg, task, out_dir)
    dictionary = _task_dictionary(cfg.task, out_dir)

    mapped, layout = fairseq_state_dict(state, config_dict, tokens, dictionary, model_cfg)
    logger.info(f"checkpoint layout: {layout} = {layouts.LAYOUT_DESCRIPTIONS[layout]}")
    model = build_model(model_cfg, dictionary)
    expected = model.state_dict()
    _check_shapes(mapped, expected)
    for name in expected.keys() - mapped.keys():  # only a missing LM head reaches here
        mapped[name] = expected[name]
    mapped["transformer.lm_head.weight"] = mapped["transformer.embed_tokens.weight"]  # tied
    model.load_state_dict(mapped, strict=True)
    path = out_dir / "model.pt"
    save_fairseq_checkpoint(model, cfg, path)
    flags = " ".join(model_flags(model_cfg))
    (out_dir / "model_flags.txt").write_text(flags + "\n", encoding="utf-8")
    logger.info(f"wrote {path}, {out_dir / 'dict.txt'}, {out_dir / 'vocab.txt'}, "
                f"{out_dir / 'model_flags.txt'}")
    logger.info("fairseq-train flags for this model: " + flags)
    return ConversionResult(model, dictionary, layout, path)


def _task_dictionary(task_cfg, out_dir: Path) -> Dictionary:
    """The dictionary the task itself builds from ``dict.txt``, checked against the rule the
    permutation assumes (fairseq specials, dict.txt, then ``<mask>``)."""
    task = tasks.setup_task(task_cfg)
    dictionary = task.source_dictionary
    reference = load_task_dictionary(out_dir / "dict.txt")
    if dictionary.symbols != reference.symbols:
        raise ConversionError(f"task {task_cfg._name} builds a dictionary other than "
                              "<s> <pad> </s> <unk> + dict.txt + <mask>: pick a UniLMv2 task")
    return dictionary
