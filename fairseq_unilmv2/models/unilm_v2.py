"""The ``unilm_v2`` model: one Transformer that is a bidirectional encoder, a prefix LM and a
pseudo-masked LM, depending only on the attention mask and position ids it is given.

fairseq sees it in three ways, all sharing the same parameters (``self.transformer``):

- ``model(src_tokens, positions=..., segment_labels=..., attn_mask=..., masked_tokens=...)``:
  one packed forward, used by pre-training (``pmlm``), seq2seq fine-tuning and
  ``sentence_prediction`` (``features_only`` / ``classification_head_name``, as RoBERTa);
- ``model.encoder``: runs the source once and caches its keys and values per layer;
- ``model.decoder``: an incremental decoder over that cache (SPEC 5), so that fairseq's
  ``SequenceGenerator`` drives beam search, sampling and the rest unchanged.
"""
import logging
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import torch
from fairseq import utils
from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.models import (FairseqEncoder, FairseqEncoderDecoderModel, FairseqIncrementalDecoder,
                            register_model, register_model_architecture)
from fairseq.models.roberta.model import RobertaClassificationHead
from fairseq.utils import safe_getattr
from torch import nn

from ..data.checks import check_checkpoint_matches, check_task_fits_model, mask_index
from ..data.layout import CONTEXT, ORIGINAL, PADDING, PSEUDO, may_attend
from ..modules.attention import BACKENDS
from ..modules.span_head import SpanHead
from ..modules.transformer import UniLMv2Transformer, select_rows

logger = logging.getLogger(__name__)


@dataclass
class UniLMv2Config(FairseqDataclass):
    encoder_layers: int = field(default=12, metadata={"help": "number of Transformer layers"})
    encoder_embed_dim: int = field(default=768, metadata={"help": "hidden size"})
    encoder_ffn_embed_dim: int = field(default=3072, metadata={"help": "feed-forward hidden size"})
    encoder_attention_heads: int = field(default=12, metadata={"help": "attention heads"})
    max_positions: int = field(default=512, metadata={"help": "rows of the learned absolute "
                               "position table (position ids are 0-based)"})
    type_vocab_size: int = field(default=2, metadata={"help": "number of token types (segments)"})
    source_type_id: int = field(default=0, metadata={"help": "token type of the source / first "
                                "segment"})
    target_type_id: int = field(default=1, metadata={"help": "token type of the target / second "
                                "segment"})
    rel_pos_bins: int = field(default=32, metadata={"help": "relative position buckets shared by "
                              "all layers; 0 disables the relative position bias"})
    max_rel_pos: int = field(default=128, metadata={"help": "distance at which the relative "
                             "position buckets saturate"})
    layer_norm_eps: float = field(default=1e-5, metadata={"help": "LayerNorm epsilon (1e-5 in the "
                                  "released UniLMv2 decoders, 1e-12 in BERT configs)"})
    activation_fn: ChoiceEnum(utils.get_available_activation_fns()) = field(
        default="gelu", metadata={"help": "activation function"})
    attention_backend: ChoiceEnum(BACKENDS) = field(default="dense", metadata={
        "help": "how attention is computed: 'dense' (an additive (B, H, T, T) bias through "
                "scaled_dot_product_attention; every device) or 'flex' (FlexAttention with a "
                "block mask from the tokens' roles and steps and the relative position bias "
                "looked up per pair; for GPUs, without attention dropout: see "
                "fairseq_unilmv2/modules/attention.py)"})
    dropout: float = field(default=0.1, metadata={"help": "dropout probability"})
    attention_dropout: float = field(default=0.1, metadata={"help": "dropout on attention weights"})
    activation_dropout: float = field(default=0.0, metadata={"help": "dropout after the FFN "
                                      "activation"})
    pooler_activation_fn: ChoiceEnum(utils.get_available_activation_fns()) = field(
        default="tanh", metadata={"help": "activation of classification heads"})
    pooler_dropout: float = field(default=0.0, metadata={"help": "dropout in classification heads"})
    keep_lm_head_trainable: bool = field(default=False, metadata={"help": "with a "
                                         "classification or span head registered "
                                         "(sentence_prediction, squad), keep the LM head's own "
                                         "parameters (dense, LayerNorm, bias) trainable. By "
                                         "default they are frozen there: those tasks never run "
                                         "the LM head, and fairseq's default --ddp-backend "
                                         "pytorch_ddp stops on a trained parameter without a "
                                         "gradient (unless --find-unused-parameters)"})
    load_checkpoint_heads: bool = field(default=False, metadata={"help": "when loading a "
                                        "checkpoint, register the classification heads it holds "
                                        "(from_pretrained sets it); otherwise heads the model does "
                                        "not have are dropped"})


def _default_inputs(src_tokens: torch.Tensor, padding_idx: int):
    """Position ids, token types and mask for a plain (bidirectional) input.

    Positions count the real tokens from 0, so left- and right-padded inputs get the same ids;
    token types are 0; padding is attended by no one.
    """
    not_pad = src_tokens.ne(padding_idx)
    positions = (torch.cumsum(not_pad, dim=1) - 1).clamp(min=0)
    roles = torch.where(not_pad, CONTEXT, PADDING)
    return positions, torch.zeros_like(src_tokens), roles


def pair_token_types(src_tokens: torch.Tensor, eos: int, padding_idx: int, first_type: int,
                     second_type: int) -> torch.Tensor:
    """Token types of a single sentence or a sentence pair, read off the tokens.

    The first segment ends with its first ``eos`` (fairseq appends one to every binarized
    sentence, as BERT's ``[SEP]``); every real token after it is the second segment. This
    gives BERT's types for ``<s> a </s> b </s>`` (``sentence_prediction`` without
    ``--separator-token``) and for RoBERTa's ``<s> a </s> </s> b </s>`` (``--separator-token
    2``), where the separator itself opens the second segment. A single sentence is all
    ``first_type``.
    """
    is_eos = src_tokens.eq(eos).long()
    eos_before = torch.cumsum(is_eos, dim=1) - is_eos
    second = eos_before.gt(0) & src_tokens.ne(padding_idx)
    return torch.where(second, second_type, first_type)


@register_model("unilm_v2", dataclass=UniLMv2Config)
class UniLMv2Model(FairseqEncoderDecoderModel):
    def __init__(self, cfg: UniLMv2Config, transformer: UniLMv2Transformer, dictionary):
        encoder = UniLMv2Encoder(dictionary, transformer, cfg)
        decoder = UniLMv2Decoder(dictionary, transformer, cfg)
        super().__init__(encoder, decoder)
        self.cfg = cfg
        self.transformer = transformer
        self.classification_heads = nn.ModuleDict()
        # The extractive QA head (``--task squad``), under its own state-dict prefix
        # ``span_head.``; None until registered, so other tasks' checkpoints have no such keys.
        self.span_head: Optional[SpanHead] = None

    @classmethod
    def build_model(cls, cfg, task):
        check_task_fits_model(task)
        base_architecture(cfg)
        dictionary = task.source_dictionary
        transformer = UniLMv2Transformer(cfg, len(dictionary), dictionary.pad())
        return cls(cfg, transformer, dictionary)

    def forward(self, src_tokens: torch.Tensor, src_lengths: Optional[torch.Tensor] = None,
                positions: Optional[torch.Tensor] = None,
                segment_labels: Optional[torch.Tensor] = None,
                roles: Optional[torch.Tensor] = None, steps: Optional[torch.Tensor] = None,
                attn_mask: Optional[torch.Tensor] = None, features_only: bool = False,
                return_all_hiddens: bool = False, classification_head_name: Optional[str] = None,
                masked_tokens: Optional[torch.Tensor] = None,
                max_predicted: Optional[int] = None, num_predicted: Optional[int] = None,
                leading_block: Optional[Tuple[int, int]] = None,
                prev_output_tokens: Optional[torch.Tensor] = None, span_head: bool = False,
                **unused):
        """One packed forward over (B, T) tokens.

        With ``prev_output_tokens`` it is fairseq's encoder-decoder forward instead (the
        source through ``self.encoder``, the next-token logits of every target position from
        ``self.decoder``), as ``SequenceScorer`` (``fairseq-generate --score-reference``) calls
        it.

        ``positions`` (0-based ids), ``segment_labels`` (token types) and the per-token
        ``roles`` and ``steps`` of :mod:`fairseq_unilmv2.data.layout` (from which the attention
        mask is built on the device) default to a plain bidirectional input whose token types
        follow :func:`pair_token_types` (``source_type_id`` up to the first eos,
        ``target_type_id`` after it), so ``sentence_prediction`` pairs need nothing more;
        layouts with their own segments (pre-training, seq2seq) pass them. ``attn_mask``
        (bool (B, T, T), True = may attend) overrides roles and steps with a mask of one's own.
        With ``masked_tokens`` (bool (B, T)) the LM head runs only at those positions and the logits
        are (N, V) in row-major order of the mask. ``max_predicted`` (a bound of the masked tokens
        of one example), ``num_predicted`` (their total in the batch) and ``leading_block`` (the
        leading CONTEXT block of ``roles``), host-side numbers that the collaters put in
        ``net_input``, spare a GPU the syncs that would read them.
        With ``span_head`` the output is the span head's (B, T, 2) start / end logits.
        Returns ``(output, extra)`` as RoBERTa does.
        """
        if prev_output_tokens is not None:
            encoder_out = self.encoder(src_tokens, src_lengths)
            return self.decoder(prev_output_tokens, encoder_out=encoder_out,
                                features_only=features_only)
        default_positions, _, default_roles = _default_inputs(src_tokens,
                                                              self.transformer.padding_idx)
        positions = default_positions if positions is None else positions
        if segment_labels is None:
            segment_labels = pair_token_types(src_tokens, self.encoder.dictionary.eos(),
                                              self.transformer.padding_idx,
                                              self.cfg.source_type_id, self.cfg.target_type_id)
        if roles is None:
            roles, steps = default_roles, None
        if steps is None:
            steps = torch.zeros_like(roles)
        # When only the LM head reads the final states, the last layer computes just those rows.
        only_masked_rows = masked_tokens is not None and not (
            features_only or return_all_hiddens or classification_head_name is not None
            or span_head)
        x, _, hiddens = self.transformer(
            src_tokens, positions, segment_labels, roles, steps, may_attend=attn_mask,
            return_all_hiddens=return_all_hiddens,
            output_rows=masked_tokens if only_masked_rows else None, output_width=max_predicted,
            output_count=num_predicted, leading_block=leading_block)
        extra = {"inner_states": hiddens}
        if span_head:
            if self.span_head is None:
                raise ValueError("this model has no span head: --task squad registers one "
                                 "(or call model.register_span_head())")
            return self.span_head(x, src_tokens.eq(self.transformer.padding_idx)), extra
        if classification_head_name is not None:
            return self.classification_heads[classification_head_name](x), extra
        if features_only:
            return x, extra
        if masked_tokens is not None and not only_masked_rows:
            x = select_rows(x, masked_tokens, num_predicted)
        return self.transformer.lm_head(x), extra

    def max_positions(self):
        return self.transformer.max_positions

    def load_state_dict(self, state_dict, strict=True, model_cfg=None, args=None):
        """fairseq's loading, after a check that names a foreign architecture, another size
        or another vocabulary (instead of torch's list of mismatched tensors)."""
        if strict:
            check_checkpoint_matches(state_dict, self.state_dict())
        return super().load_state_dict(state_dict, strict=strict, model_cfg=model_cfg, args=args)

    @classmethod
    def from_pretrained(cls, model_name_or_path, checkpoint_file="model.pt",
                        data_name_or_path=".", bpe=None, **kwargs):
        """Load a checkpoint (and its dictionary from ``data_name_or_path``) for Python use.

        ``bpe`` names the tokenizer of the training data (e.g. ``"sentencepiece"`` with
        ``sentencepiece_model=...``, or ``"bert"`` with ``bpe_vocab_file=...``).
        """
        from fairseq import hub_utils

        from .hub_interface import UniLMv2HubInterface

        if bpe is not None:
            kwargs["bpe"] = bpe
        loaded = hub_utils.from_pretrained(model_name_or_path, checkpoint_file=checkpoint_file,
                                           data_name_or_path=data_name_or_path,
                                           load_checkpoint_heads=True, **kwargs)
        return UniLMv2HubInterface(loaded["args"], loaded["task"], loaded["models"])

    def register_classification_head(self, name, num_classes=None, inner_dim=None, **kwargs):
        """A RoBERTa-style head over the first token ([CLS]), as ``sentence_prediction`` expects."""
        if name in self.classification_heads:
            prev = self.classification_heads[name]
            if prev.out_proj.out_features != num_classes:
                logger.warning(f"re-registering head '{name}' with num_classes {num_classes} "
                               f"(prev: {prev.out_proj.out_features})")
        self.classification_heads[name] = RobertaClassificationHead(
            input_dim=self.cfg.encoder_embed_dim,
            inner_dim=inner_dim or self.cfg.encoder_embed_dim,
            num_classes=num_classes,
            activation_fn=self.cfg.pooler_activation_fn,
            pooler_dropout=self.cfg.pooler_dropout,
        )
        self._freeze_lm_head_under_task_heads()

    def register_span_head(self):
        """Add the extractive QA head (fresh weights) unless the model has one."""
        if self.span_head is None:
            self.span_head = SpanHead(self.cfg.encoder_embed_dim)
        self._freeze_lm_head_under_task_heads()

    def _freeze_lm_head_under_task_heads(self) -> None:
        """A model with a task head is fine-tuned through that head, so the LM head's own
        parameters would get no gradient: fairseq's optimizer and DDP skip them once frozen,
        and the state dict keeps them (the tied token embedding stays trainable)."""
        if safe_getattr(self.cfg, "keep_lm_head_trainable", False):
            return
        tied = self.transformer.embed_tokens.weight
        for parameter in self.transformer.lm_head.parameters():
            if parameter is not tied:
                parameter.requires_grad_(False)

    def upgrade_state_dict_named(self, state_dict, name):
        """Reconcile the checkpoint's classification heads with the model's, as RoBERTa does.

        With ``load_checkpoint_heads`` the checkpoint's heads are registered (hub loading);
        otherwise a checkpoint head the model lacks, or with other dimensions, is dropped with a
        warning. Heads the model has and the checkpoint lacks (fine-tuning from a pre-trained
        checkpoint) keep their fresh weights.
        """
        super().upgrade_state_dict_named(state_dict, name)
        self._upgrade_span_head(state_dict, f"{name}.span_head." if name else "span_head.")
        prefix = f"{name}.classification_heads." if name else "classification_heads."
        for head_name, (num_classes, inner_dim) in _heads_in_state_dict(state_dict, prefix).items():
            if safe_getattr(self.cfg, "load_checkpoint_heads", False):
                if head_name not in self.classification_heads:
                    self.register_classification_head(head_name, num_classes, inner_dim)
                continue
            head = self.classification_heads[head_name] if head_name in self.classification_heads else None
            if head is None or (head.out_proj.out_features, head.dense.out_features) \
                    != (num_classes, inner_dim):
                logger.warning(f"deleting classification head '{head_name}' from the checkpoint: "
                               + ("not present in the current model" if head is None else
                                  "its dimensions differ from the current model's"))
                for key in [k for k in state_dict if k.startswith(f"{prefix}{head_name}.")]:
                    del state_dict[key]
        for key, value in self.classification_heads.state_dict().items():
            if prefix + key not in state_dict:
                logger.info(f"classification head weights {prefix + key} are new: keeping the "
                            "model's initialisation")
                state_dict[prefix + key] = value

    def _upgrade_span_head(self, state_dict, prefix: str) -> None:
        """The span head, like the classification heads: a checkpoint without one (pre-trained,
        converted, another task's) leaves the model's fresh head as it is; a fine-tuned one's
        head is loaded, and registered first under ``load_checkpoint_heads`` (hub loading); a
        head the model has no use for is dropped with a warning."""
        keys = [k for k in state_dict if k.startswith(prefix)]
        if keys and self.span_head is None:
            if safe_getattr(self.cfg, "load_checkpoint_heads", False):
                self.register_span_head()
            else:
                logger.warning("deleting the checkpoint's span head: the current task does not "
                               "use one")
                for key in keys:
                    del state_dict[key]
                return
        if self.span_head is None:
            return
        if not keys:
            logger.info("the checkpoint has no span head: starting it fresh")
        for key, value in self.span_head.state_dict().items():
            state_dict.setdefault(prefix + key, value)


def _heads_in_state_dict(state_dict, prefix: str) -> Dict[str, tuple]:
    """{head name: (num_classes, inner_dim)} of the RobertaClassificationHeads in a state dict."""
    names = {k[len(prefix):].split(".")[0] for k in state_dict if k.startswith(prefix)}
    return {name: (state_dict[f"{prefix}{name}.out_proj.weight"].size(0),
                   state_dict[f"{prefix}{name}.dense.weight"].size(0)) for name in names}


class UniLMv2Encoder(FairseqEncoder):
    """Runs the source bidirectionally once and keeps its keys and values for decoding.

    Holds a reference to the model's transformer, not a copy: the parameters are registered
    once, under ``transformer.`` in the model.
    """

    def __init__(self, dictionary, transformer: UniLMv2Transformer, cfg):
        super().__init__(dictionary)
        # Bypass nn.Module registration so the shared weights appear once in the state dict.
        self.__dict__["transformer"] = transformer
        self.source_type_id = cfg.source_type_id

    def forward(self, src_tokens: torch.Tensor, src_lengths: Optional[torch.Tensor] = None,
                **unused) -> Dict[str, List[torch.Tensor]]:
        positions, _, roles = _default_inputs(src_tokens, self.transformer.padding_idx)
        segments = torch.full_like(src_tokens, self.source_type_id)
        _, kvs, _ = self.transformer(src_tokens, positions, segments, roles,
                                     torch.zeros_like(roles))
        # fairseq expects Dict[str, List[Tensor]], each tensor reorderable along dim 0.
        return {
            "source_keys": [k for k, _ in kvs],
            "source_values": [v for _, v in kvs],
            "source_positions": [positions],
            "source_roles": [roles],
            "source_lengths": [roles.ne(PADDING).sum(dim=1)],
            # Which source each row holds: rows with the same id are copies of one another.
            "source_ids": [torch.arange(src_tokens.size(0), device=src_tokens.device)],
        }

    def reorder_encoder_out(self, encoder_out: Dict[str, List[torch.Tensor]], new_order):
        """Select rows ``new_order`` of every cached tensor.

        Beam search reorders at every step, mostly among the beams of each sentence, whose
        source rows are copies of one another. When every row would get a copy of the source it
        already holds, the cache is returned as it is, as fairseq's ``MultiheadAttention`` does
        for its encoder keys and values: copying the keys and values of every layer at every
        step cost about a tenth of beam-5 decoding time (``benchmarks/decode.py``)."""
        source_ids = encoder_out["source_ids"][0]
        if torch.equal(source_ids.index_select(0, new_order), source_ids):
            return encoder_out
        return {key: [t.index_select(0, new_order) for t in tensors]
                for key, tensors in encoder_out.items()}

    def max_positions(self):
        return self.transformer.max_positions


class UniLMv2Decoder(FairseqIncrementalDecoder):
    """Predicts target position q from a mask token placed at q (SPEC 5).

    ``prev_output_tokens`` is fairseq's ``[eos, y1, ..., yt]``; the leading eos is only
    fairseq's start symbol and is never fed. Target token j sits at position n + j - 1 where n
    is the real source length. In incremental mode step t feeds y_t (whose keys and values are
    cached) and a fresh mask token at position n + t (whose output is the next-token
    distribution and which is then dropped); without an incremental state all targets and one
    mask per position are fed at once, exactly the fine-tuning layout.
    """

    def __init__(self, dictionary, transformer: UniLMv2Transformer, cfg):
        super().__init__(dictionary)
        self.__dict__["transformer"] = transformer
        self.target_type_id = cfg.target_type_id

    @property
    def mask_idx(self) -> int:
        # Checked when decoding needs it: index() would silently answer <unk> for a missing one.
        return mask_index(self.dictionary, "the decoder's dictionary")

    def forward(self, prev_output_tokens: torch.Tensor, encoder_out=None, incremental_state=None,
                features_only: bool = False, **unused):
        if incremental_state is not None:
            x = self._incremental_step(prev_output_tokens, encoder_out, incremental_state)
        else:
            x = self._all_positions(prev_output_tokens, encoder_out)
        if not features_only:
            x = self.transformer.lm_head(x)
        return x, {"attn": [None]}

    def _target_chunk(self, targets: torch.Tensor, first_step: int, n_pseudo: int,
                      source_lengths: torch.Tensor, pseudo_first_step: int):
        """Tokens, positions, roles, steps of [targets (ORIGINAL) | n_pseudo masks (PSEUDO)]."""
        batch = targets.size(0)
        device = targets.device
        target_steps = torch.arange(first_step, first_step + targets.size(1), device=device)
        pseudo_steps = torch.arange(pseudo_first_step, pseudo_first_step + n_pseudo, device=device)
        steps = torch.cat([target_steps, pseudo_steps]).unsqueeze(0).expand(batch, -1)
        tokens = torch.cat([targets, targets.new_full((batch, n_pseudo), self.mask_idx)], dim=1)
        roles = torch.cat([torch.where(targets.eq(self.dictionary.pad()), PADDING, ORIGINAL),
                           targets.new_full((batch, n_pseudo), PSEUDO)], dim=1)
        positions = source_lengths.unsqueeze(1) + steps - 1
        return tokens, positions, roles, steps

    def _run(self, tokens, positions, roles, steps, encoder_out, cached_kv=None,
             cached_steps: int = 0):
        """Run the chunk against the source cache (and the cached targets 1..cached_steps)."""
        src_keys, src_values = encoder_out["source_keys"], encoder_out["source_values"]
        src_positions = encoder_out["source_positions"][0]
        src_roles = encoder_out["source_roles"][0]
        source_lengths = encoder_out["source_lengths"][0]
        batch = tokens.size(0)
        cached = torch.arange(1, cached_steps + 1, device=tokens.device).unsqueeze(0).expand(batch, -1)
        key_roles = torch.cat([src_roles, torch.full_like(cached, ORIGINAL), roles], dim=1)
        key_steps = torch.cat([torch.zeros_like(src_roles), cached, steps], dim=1)
        past_positions = torch.cat([src_positions, source_lengths.unsqueeze(1) + cached - 1], dim=1)
        # Per layer: the source segment, then the cached targets (never copied into one).
        past = [[(src_keys[layer], src_values[layer])]
                + ([(cached_kv[f"k{layer}"], cached_kv[f"v{layer}"])] if cached_kv else [])
                for layer in range(len(src_keys))]
        mask = may_attend(roles, steps, key_roles, key_steps)
        segments = torch.full_like(tokens, self.target_type_id)
        x, new_kvs, _ = self.transformer(tokens, positions, segments, may_attend=mask, past=past,
                                         past_positions=past_positions)
        return x, new_kvs

    def _all_positions(self, prev_output_tokens, encoder_out):
        targets = prev_output_tokens[:, 1:]
        source_lengths = encoder_out["source_lengths"][0]
        chunk = self._target_chunk(targets, 1, targets.size(1) + 1, source_lengths, 1)
        x, _ = self._run(*chunk, encoder_out)
        return x[:, targets.size(1):]

    def _incremental_step(self, prev_output_tokens, encoder_out, incremental_state):
        cache = self.get_incremental_state(incremental_state, "target_kv") or {}
        n_cached = prev_output_tokens.size(1) - 2 if prev_output_tokens.size(1) > 1 else 0
        new_targets = prev_output_tokens[:, -1:] if prev_output_tokens.size(1) > 1 \
            else prev_output_tokens[:, :0]
        source_lengths = encoder_out["source_lengths"][0]
        step = prev_output_tokens.size(1)  # the step whose token the mask predicts
        chunk = self._target_chunk(new_targets, n_cached + 1, 1, source_lengths, step)
        x, new_kvs = self._run(*chunk, encoder_out, cached_kv=cache or None,
                               cached_steps=n_cached)
        if new_targets.size(1):
            # Only the real token joins the cache; the mask token is thrown away.
            updated = {}
            for layer, (k, v) in enumerate(new_kvs):
                k, v = k[:, :, :1], v[:, :, :1]
                if cache:
                    k = torch.cat([cache[f"k{layer}"], k], dim=2)
                    v = torch.cat([cache[f"v{layer}"], v], dim=2)
                updated[f"k{layer}"], updated[f"v{layer}"] = k, v
            self.set_incremental_state(incremental_state, "target_kv", updated)
        return x[:, -1:]

    def reorder_incremental_state(self, incremental_state, new_order):
        cache = self.get_incremental_state(incremental_state, "target_kv")
        if cache:
            cache = {key: t.index_select(0, new_order) for key, t in cache.items()}
            self.set_incremental_state(incremental_state, "target_kv", cache)

    def max_positions(self):
        return self.transformer.max_positions


def base_architecture(args):
    args.encoder_layers = safe_getattr(args, "encoder_layers", 12)
    args.encoder_embed_dim = safe_getattr(args, "encoder_embed_dim", 768)
    args.encoder_ffn_embed_dim = safe_getattr(args, "encoder_ffn_embed_dim", 3072)
    args.encoder_attention_heads = safe_getattr(args, "encoder_attention_heads", 12)
    args.max_positions = safe_getattr(args, "max_positions", 512)


@register_model_architecture("unilm_v2", "unilm_v2_base")
def unilm_v2_base(args):
    base_architecture(args)


@register_model_architecture("unilm_v2", "unilm_v2_large")
def unilm_v2_large(args):
    args.encoder_layers = safe_getattr(args, "encoder_layers", 24)
    args.encoder_embed_dim = safe_getattr(args, "encoder_embed_dim", 1024)
    args.encoder_ffn_embed_dim = safe_getattr(args, "encoder_ffn_embed_dim", 4096)
    args.encoder_attention_heads = safe_getattr(args, "encoder_attention_heads", 16)
    base_architecture(args)
