"""fairseq ``unilm_v2`` checkpoint -> a Hugging Face BERT directory (``save_pretrained`` shape).

Writes ``config.json`` (BERT fields plus ``source_type_id`` / ``target_type_id`` and, with a
relative position bias, ``rel_pos_bins`` / ``max_rel_pos``), ``model.safetensors`` with
``BertForMaskedLM`` names, ``vocab.txt`` and ``tokenizer_config.json``. Without a relative
position bias, ``transformers.BertForMaskedLM.from_pretrained(dir)`` computes what the fairseq
model computes in bidirectional mode. With one, the bias is kept under its s2s-ft name
(``bert.rel_pos_bias.weight``): BERT ignores it, ``scripts/convert_checkpoint.py`` reads it back.
"""
import json
import logging
from pathlib import Path
from typing import Optional, Union

from fairseq import checkpoint_utils

from . import layouts
from .errors import ConversionError
from .vocab import (is_cased, load_task_dictionary, read_wordpiece_vocab, wordpiece_rows,
                    wordpiece_tokens)

logger = logging.getLogger(__name__)

PathLike = Union[str, Path]


def export_checkpoint(checkpoint: PathLike, out_dir: PathLike, dict_path: Optional[PathLike] = None,
                      vocab: Optional[PathLike] = None) -> Path:
    """Export ``checkpoint`` (a fairseq ``unilm_v2`` ``model.pt``) to ``out_dir``.

    ``dict_path`` defaults to ``dict.txt`` beside the checkpoint. ``vocab`` (a WordPiece
    ``vocab.txt`` holding the same tokens, e.g. the original release's) fixes the row order of
    the export; without it ``[PAD]`` comes first and the rest follow in fairseq id order.
    """
    checkpoint, out_dir = Path(checkpoint), Path(out_dir)
    if not checkpoint.is_file():
        raise ConversionError(f"checkpoint {checkpoint} does not exist")
    state = checkpoint_utils.load_checkpoint_to_cpu(str(checkpoint))
    cfg = state["cfg"]["model"] if state.get("cfg") is not None else None
    if cfg is None or "rel_pos_bins" not in cfg:
        raise ConversionError(f"{checkpoint} is not a unilm_v2 checkpoint (its cfg has no "
                              "unilm_v2 model section)")
    model_state = state["model"]

    dict_path = Path(dict_path) if dict_path else checkpoint.parent / "dict.txt"
    if not dict_path.is_file():
        raise ConversionError(f"dictionary {dict_path} does not exist: pass --dict, the "
                              "dict.txt the model was trained with")
    dictionary = load_task_dictionary(dict_path)
    embed = model_state["transformer.embed_tokens.weight"]
    if len(dictionary) != embed.size(0):
        raise ConversionError(f"{dict_path} gives {len(dictionary)} symbols (with <mask>) but the "
                              f"model has {embed.size(0)} embedding rows")
    tokens = read_wordpiece_vocab(vocab) if vocab else wordpiece_tokens(dictionary)
    rows = wordpiece_rows(dictionary, tokens)  # fairseq id -> row of the export

    hf_state = layouts.to_hf_bert(model_state, cfg.encoder_layers)
    for name in ("bert.embeddings.word_embeddings.weight", "cls.predictions.bias"):
        table = hf_state[name]
        permuted = table.new_empty(table.shape)
        permuted[rows] = table
        hf_state[name] = permuted
    _write(out_dir, hf_state, layouts.hf_config(cfg, len(tokens), tokens.index("[PAD]")), tokens)
    logger.info(f"exported {checkpoint} to {out_dir} ({len(hf_state)} tensors)")
    return out_dir


def _write(out_dir: Path, hf_state, config, tokens) -> None:
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    # safetensors refuses tensors that share memory: store each one on its own.
    save_file({k: v.detach().clone().contiguous() for k, v in hf_state.items()},
              str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    (out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    (out_dir / "vocab.txt").write_text("\n".join(tokens) + "\n", encoding="utf-8")
    tokenizer = {"tokenizer_class": "BertTokenizer", "do_lower_case": not is_cased(tokens)}
    (out_dir / "tokenizer_config.json").write_text(json.dumps(tokenizer, indent=2) + "\n",
                                                   encoding="utf-8")
