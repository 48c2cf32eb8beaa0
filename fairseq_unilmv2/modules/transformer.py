"""The UniLMv2 Transformer: BERT post-LayerNorm layers with a shared relative position bias.

The whole network is batch-first and role-agnostic: what it computes (bidirectional encoder,
prefix LM, pseudo-masked LM) is decided only by the position ids, token types and boolean
attention mask it is given (see ``fairseq_unilmv2.data.layout``). Attention goes through
``F.scaled_dot_product_attention`` with one additive float mask that carries both the structure
mask and the relative position bias; CPU training with attention dropout writes SDPA's
computation out, to draw the dropout mask with ``modules.dropout``.
"""
from typing import List, NamedTuple, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from fairseq import utils
from fairseq.modules import LayerNorm
from fairseq.modules.transformer_sentence_encoder import init_bert_params
from torch import nn

from ..data.layout import PADDING, attention_mask, leading_context_block
from .attention import FlexPlan, pad_to_blocks, use_flex
from .dropout import Dropout, draws_cheap_masks, dropout
from .relative_position import RelativePositionBias

KeyValue = Tuple[torch.Tensor, torch.Tensor]
# Elements every row of an attention bias starts at a multiple of (its strides but the last):
# what SDPA's memory-efficient CUDA kernel takes without copying (preprocess_mask in torch).
BIAS_ALIGNMENT = 8


def masked_fill_value(dtype: torch.dtype) -> float:
    """A large negative that stays finite in fp16/bf16 after adding a bias or a score to it,
    so a query with every key masked (a padding row) gets a uniform softmax, never NaN."""
    return torch.finfo(dtype).min / 2


def rows_of(selected: torch.Tensor,
            width: Optional[int] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Indices (B, Q) of the True entries of a bool (B, T) mask, each example's in ascending
    order and padded with 0 up to Q, and a bool (B, Q) mask of the real ones, so that
    ``gather_rows(x, rows)[valid]`` equals ``x[selected]``. Q is ``width`` when the caller
    knows an upper bound of the counts from the host (the collaters do), else the largest count,
    read off the device (a sync on a GPU)."""
    counts = selected.sum(dim=1)
    if width is None:
        width = int(counts.max()) if counts.numel() else 0
    # A stable sort puts each example's selected positions first, in their order.
    order = torch.sort((~selected).to(torch.uint8), dim=1, stable=True).indices[:, :width]
    valid = torch.arange(width, device=selected.device) < counts.unsqueeze(1)
    return order.masked_fill(~valid, 0), valid


def select_rows(x: torch.Tensor, mask: torch.Tensor, count: Optional[int] = None) -> torch.Tensor:
    """``x[mask]`` for a bool ``mask`` over the leading dims of ``x``.

    Boolean indexing reads the number of selected rows off the device: on a GPU the host waits
    for every queued kernel. With ``count``, the number the host already knows (the collaters
    put ``num_predicted`` in ``net_input``), the rows are found by ``nonzero_static`` instead,
    which needs no such read. On the CPU, where reading is free, the count is checked.
    """
    if count is None:
        return x[mask]
    if mask.device.type == "cpu" and int(mask.sum()) != count:
        raise ValueError(f"the batch announces {count} predicted tokens (num_predicted) but "
                         f"its mask selects {int(mask.sum())}: the collater and the mask disagree")
    index = torch.nonzero_static(mask.reshape(-1), size=count).squeeze(1)
    return x.reshape(-1, *x.shape[mask.dim():]).index_select(0, index)


def attention_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype of queries and keys: autocast's where it is on (they come out of its linear
    layers), else that of ``x``. The bias all layers share is built in it once; built in fp32
    under autocast, every layer would cast a (B, H, T, T) copy of it, and its backward another."""
    device = x.device.type
    if torch.amp.is_autocast_available(device) and torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return x.dtype


def gather_rows(x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``x[b, rows[b, i]]`` for x (B, T, ...) and rows (B, Q): (B, Q, ...)."""
    index = rows.view(*rows.shape, *([1] * (x.dim() - 2))).expand(*rows.shape, *x.shape[2:])
    return x.gather(1, index)


class LeadingBlockBias(NamedTuple):
    """The additive attention bias split at a leading block
    (:func:`~fairseq_unilmv2.data.layout.leading_context_block`): ``head`` (B, H, n_q, n_k) for
    the leading rows against the leading keys, ``tail`` (B, H, T - n_q, T) for the rest."""

    n_queries: int
    n_keys: int
    head: torch.Tensor
    tail: torch.Tensor


AttentionBias = Union[torch.Tensor, LeadingBlockBias]


class SelfAttention(nn.Module):
    """Multi-head attention with separate q/k/v projections (BERT's parameter layout)."""

    def __init__(self, embed_dim: int, num_heads: int, attention_dropout: float):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"--encoder-embed-dim {embed_dim} is not a multiple of "
                             f"--encoder-attention-heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.attention_dropout = attention_dropout
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)

    def _attend(self, q, k, v, attn_bias):
        if self.training and self.attention_dropout > 0 and draws_cheap_masks(q):
            # SDPA would draw its CPU dropout mask with bernoulli_; see modules/dropout.py.
            return self._attend_segments(q, [(k, v)], attn_bias)
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_bias.to(q.dtype),
            dropout_p=self.attention_dropout if self.training else 0.0)

    def _attend_segments(self, q, segments: List[KeyValue], attn_bias):
        """SDPA's computation written out, over keys/values given as segments (cached source,
        cached targets, new tokens) without concatenating them: only the (B, H, T, P + T)
        scores are joined. Decoding feeds a couple of queries per step against hundreds of
        cached keys, so copying every cache into one tensor in every layer at every step
        would dominate."""
        q = q * self.head_dim ** -0.5
        scores = [q @ k.transpose(-1, -2) for k, _ in segments]
        scores = (scores[0] if len(scores) == 1 else torch.cat(scores, dim=-1)) \
            + attn_bias.to(q.dtype)
        probs = dropout(torch.softmax(scores.float(), dim=-1).to(q.dtype),
                        self.attention_dropout, self.training)
        if len(segments) == 1:
            return probs @ segments[0][1]
        out, start = 0, 0
        for _, v in segments:
            out = out + probs[..., start:start + v.size(2)] @ v
            start += v.size(2)
        return out

    def forward(self, queries: torch.Tensor, x: torch.Tensor, attn_bias: "AttentionBias",
                past: Optional[List[KeyValue]] = None) -> Tuple[torch.Tensor, KeyValue]:
        """queries: (B, Tq, C), the rows that ask (``x`` itself, or some of its rows);
        x: (B, T, C), the new tokens, which give keys and values; attn_bias: (B, H or 1, Tq,
        P + T) additive, or a :class:`LeadingBlockBias` (queries must be ``x`` then) whose
        leading rows are scored against the leading keys only; past: keys/values of P earlier
        tokens, as a list of (B, H, P_i, d) segments in key order, that the new tokens may
        attend to. Returns the output (B, Tq, C) and the keys/values of the T new tokens."""
        q = self._heads(self.q_proj(queries))
        k, v = self._heads(self.k_proj(x)), self._heads(self.v_proj(x))
        new_kv = (k, v)
        if past is not None:
            out = self._attend_segments(q, [*past, new_kv], attn_bias)
        elif isinstance(attn_bias, FlexPlan):
            out = attn_bias.attend(q, k, v)
        elif isinstance(attn_bias, LeadingBlockBias):
            n_q, n_k = attn_bias.n_queries, attn_bias.n_keys
            head = self._attend(q[:, :, :n_q], k[:, :, :n_k], v[:, :, :n_k], attn_bias.head)
            tail = self._attend(q[:, :, n_q:], k, v, attn_bias.tail)
            out = torch.cat([head, tail], dim=2)
        else:
            out = self._attend(q, k, v, attn_bias)
        batch, _, length, _ = out.shape
        out = out.transpose(1, 2).reshape(batch, length, self.num_heads * self.head_dim)
        return self.out_proj(out), new_kv


class UniLMv2Layer(nn.Module):
    """BERT layer: residual then LayerNorm (post-LN), after attention and after the FFN."""

    def __init__(self, embed_dim: int, ffn_embed_dim: int, num_heads: int, dropout: float,
                 attention_dropout: float, activation_dropout: float, activation_fn: str,
                 layer_norm_eps: float):
        super().__init__()
        self.self_attn = SelfAttention(embed_dim, num_heads, attention_dropout)
        self.self_attn_layer_norm = LayerNorm(embed_dim, eps=layer_norm_eps)
        self.fc1 = nn.Linear(embed_dim, ffn_embed_dim)
        self.fc2 = nn.Linear(ffn_embed_dim, embed_dim)
        self.final_layer_norm = LayerNorm(embed_dim, eps=layer_norm_eps)
        self.activation_fn = utils.get_activation_fn(activation_fn)
        self.dropout = Dropout(dropout)
        self.activation_dropout = Dropout(activation_dropout)

    def forward(self, x: torch.Tensor, attn_bias: "AttentionBias",
                past: Optional[List[KeyValue]] = None,
                query_rows: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, KeyValue]:
        """With ``query_rows`` (B, Q) only those rows of ``x`` are computed (``attn_bias``
        then has Q query rows) and the output is (B, Q, C); keys and values come from all."""
        queries = x if query_rows is None else gather_rows(x, query_rows)
        attn_out, new_kv = self.self_attn(queries, x, attn_bias, past)
        x = self.self_attn_layer_norm(queries + self.dropout(attn_out))
        ffn_out = self.fc2(self.activation_dropout(self.activation_fn(self.fc1(x))))
        x = self.final_layer_norm(x + self.dropout(ffn_out))
        return x, new_kv


class LMHead(nn.Module):
    """dense -> activation -> LayerNorm -> projection tied to the token embedding, plus a bias."""

    def __init__(self, embed_dim: int, activation_fn: str, weight: nn.Parameter,
                 layer_norm_eps: float):
        super().__init__()
        self.dense = nn.Linear(embed_dim, embed_dim)
        self.activation_fn = utils.get_activation_fn(activation_fn)
        self.layer_norm = LayerNorm(embed_dim, eps=layer_norm_eps)
        self.weight = weight
        self.bias = nn.Parameter(torch.zeros(weight.size(0)))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.layer_norm(self.activation_fn(self.dense(features)))
        return F.linear(x, self.weight, self.bias)


class UniLMv2Transformer(nn.Module):
    """Embeddings, the layer stack, the shared relative position bias and the LM head."""

    def __init__(self, cfg, vocab_size: int, padding_idx: int):
        super().__init__()
        dim = cfg.encoder_embed_dim
        self.padding_idx = padding_idx
        self.num_heads = cfg.encoder_attention_heads
        self.attention_backend = getattr(cfg, "attention_backend", "dense")
        self.attention_dropout = cfg.attention_dropout
        self.embed_tokens = nn.Embedding(vocab_size, dim, padding_idx)
        self.embed_positions = nn.Embedding(cfg.max_positions, dim)
        self.embed_token_types = nn.Embedding(cfg.type_vocab_size, dim)
        self.embed_layer_norm = LayerNorm(dim, eps=cfg.layer_norm_eps)
        self.embed_dropout = Dropout(cfg.dropout)
        self.rel_pos_bias = (RelativePositionBias(self.num_heads, cfg.rel_pos_bins, cfg.max_rel_pos)
                             if cfg.rel_pos_bins > 0 else None)
        self.layers = nn.ModuleList(
            UniLMv2Layer(dim, cfg.encoder_ffn_embed_dim, self.num_heads, cfg.dropout,
                         cfg.attention_dropout, cfg.activation_dropout, cfg.activation_fn,
                         cfg.layer_norm_eps)
            for _ in range(cfg.encoder_layers))
        self.lm_head = LMHead(dim, cfg.activation_fn, self.embed_tokens.weight, cfg.layer_norm_eps)
        self.apply(init_bert_params)

    @property
    def max_positions(self) -> int:
        return self.embed_positions.num_embeddings

    def embed(self, tokens: torch.Tensor, positions: torch.Tensor,
              segments: torch.Tensor) -> torch.Tensor:
        # Read on the CPU only: on a GPU it would wait for the device in every forward. There
        # the tasks check the length budgets when they build the model, and an embedding
        # lookup past the table fails on the device anyway.
        if positions.device.type == "cpu" and positions.numel() \
                and int(positions.max()) >= self.max_positions:
            raise ValueError(
                f"position id {int(positions.max())} is beyond the {self.max_positions} learned "
                "positions: shorten the input (--tokens-per-sample, --max-source-positions, "
                "--max-len-b) or extend the table (scripts/convert_checkpoint.py --max-positions)")
        x = self.embed_tokens(tokens) + self.embed_positions(positions) \
            + self.embed_token_types(segments)
        return self.embed_dropout(self.embed_layer_norm(x))

    def attention_bias(self, may_attend: torch.Tensor, query_positions: torch.Tensor,
                       key_positions: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """Boolean (B, Tq, Tk) mask + relative position bias -> additive (B, H or 1, Tq, Tk).

        The bias is computed over keys padded to a multiple of :data:`BIAS_ALIGNMENT` and
        returned as a view of the first Tk, so that every row starts aligned: SDPA's
        memory-efficient CUDA kernel otherwise copies a bias into an aligned buffer (and its
        gradient back) in every layer, and this one is (B, H, T, T)."""
        keys = key_positions.size(1)
        pad = -keys % BIAS_ALIGNMENT
        if pad:
            may_attend = F.pad(may_attend, (0, pad), value=False)
            key_positions = F.pad(key_positions, (0, pad))
        if self.rel_pos_bias is not None:
            bias = self.rel_pos_bias(query_positions, key_positions, dtype)
        else:
            bias = torch.zeros(may_attend.shape, dtype=dtype, device=may_attend.device).unsqueeze(1)
        bias = bias.masked_fill(~may_attend.unsqueeze(1), masked_fill_value(dtype))
        return bias[..., :keys]

    def forward(self, tokens: torch.Tensor, positions: torch.Tensor, segments: torch.Tensor,
                roles: Optional[torch.Tensor] = None, steps: Optional[torch.Tensor] = None,
                may_attend: Optional[torch.Tensor] = None,
                past: Optional[List[List[KeyValue]]] = None,
                past_positions: Optional[torch.Tensor] = None,
                return_all_hiddens: bool = False, output_rows: Optional[torch.Tensor] = None,
                output_width: Optional[int] = None, output_count: Optional[int] = None,
                leading_block: Optional[Tuple[int, int]] = None):
        """Run T new tokens, optionally attending to the cached keys/values of P earlier ones.

        Who attends to whom comes from the (B, T) ``roles`` and ``steps`` of a packed input
        (:func:`~fairseq_unilmv2.data.layout.attention_mask` builds the mask on the device), or
        from an explicit bool ``may_attend`` (B, T, P + T) over [past | new], which decoding
        against a cache uses. ``past`` holds, for each layer, the cached keys/values as a list
        of segments in key order (e.g. source, then earlier targets); ``past_positions`` (B, P)
        their position ids. Returns the final hidden states (B, T, C), the per-layer
        keys/values of the new tokens, and the list of hidden states (embeddings then each
        layer) when ``return_all_hiddens``.

        ``output_rows`` (bool (B, T)) names the rows whose final hidden state will be read,
        e.g. the predicted positions of a pre-training or fine-tuning step. The last layer then
        computes only those rows (its keys and values still come from every row), and the
        final hidden states are (N, C), in row-major order of the mask, as ``x[output_rows]``.
        Three host-side numbers from the collaters spare a GPU reading them off the device:
        ``output_width`` bounds the rows of one example (see :func:`rows_of`), ``output_count``
        is their total (see :func:`select_rows`) and ``leading_block`` is the
        :func:`~fairseq_unilmv2.data.layout.leading_context_block` of ``roles``.
        """
        if output_rows is not None and (return_all_hiddens or not self.layers):
            raise ValueError("output_rows needs at least one layer and no return_all_hiddens")
        if may_attend is None and (roles is None or steps is None):
            raise ValueError("the transformer needs the tokens' roles and steps, or may_attend")
        if may_attend is None and past is None and use_flex(
                self.attention_backend, tokens.device, self.training, self.attention_dropout):
            return self._flex_forward(tokens, positions, segments, roles, steps,
                                      return_all_hiddens, output_rows, output_count)
        x = self.embed(tokens, positions, segments)
        key_positions = positions if past_positions is None else torch.cat([past_positions, positions], 1)
        block = None
        if may_attend is None:
            block = self._leading_block(roles, leading_block)
            may_attend = attention_mask(roles, steps)
        dtype = attention_dtype(x)
        attn_bias = self._layer_bias(may_attend, positions, key_positions, dtype, block)
        new_kvs: List[KeyValue] = []
        hiddens = [x] if return_all_hiddens else []
        for i, layer in enumerate(self.layers):
            layer_past = None if past is None else past[i]
            if output_rows is not None and i == len(self.layers) - 1:
                rows, valid = rows_of(output_rows, output_width)
                last_bias = self.attention_bias(gather_rows(may_attend, rows),
                                                positions.gather(1, rows), key_positions, dtype)
                x, kv = layer(x, last_bias, layer_past, query_rows=rows)
                x = select_rows(x, valid, output_count)
            else:
                x, kv = layer(x, attn_bias, layer_past)
            new_kvs.append(kv)
            if return_all_hiddens:
                hiddens.append(x)
        return x, new_kvs, hiddens

    def _flex_forward(self, tokens, positions, segments, roles, steps, return_all_hiddens,
                      output_rows, output_count):
        """The packed forward on FlexAttention (``modules/attention.py``): the batch is padded
        to whole blocks for the kernels and cut back to its length after every layer."""
        length = tokens.size(1)
        roles, steps = pad_to_blocks(roles, PADDING), pad_to_blocks(steps, 0)
        positions = pad_to_blocks(positions, 0)
        distance_bias = (self.rel_pos_bias.bias_by_distance(self.max_positions)
                         if self.rel_pos_bias is not None else None)
        plan = FlexPlan(roles, steps, positions, distance_bias)
        x = self.embed(pad_to_blocks(tokens, self.padding_idx), positions,
                       pad_to_blocks(segments, 0))
        new_kvs: List[KeyValue] = []
        hiddens = [x[:, :length]] if return_all_hiddens else []
        for layer in self.layers:
            x, (k, v) = layer(x, plan)
            new_kvs.append((k[:, :, :length], v[:, :, :length]))
            if return_all_hiddens:
                hiddens.append(x[:, :length])
        x = x[:, :length]
        if output_rows is not None:
            x = select_rows(x, output_rows, output_count)
        return x, new_kvs, hiddens

    @staticmethod
    def _leading_block(roles: torch.Tensor,
                       hint: Optional[Tuple[int, int]]) -> Optional[Tuple[int, int]]:
        """The leading CONTEXT block of the batch: the collater's ``hint``, found on the host.
        Reading ``roles`` here is free on the CPU (the hint is checked there) but would wait
        for the device elsewhere, where a batch without the hint gets no block."""
        if roles.device.type != "cpu":
            return hint
        block = leading_context_block(roles)
        if hint is not None and tuple(hint) != block:
            raise ValueError(f"the batch's leading_block {tuple(hint)} is not that of its roles "
                             f"({block}): the collater and the roles disagree")
        return block

    def _layer_bias(self, may_attend: torch.Tensor, positions: torch.Tensor,
                    key_positions: torch.Tensor, dtype: torch.dtype,
                    block: Optional[Tuple[int, int]]) -> AttentionBias:
        """The attention bias all layers share, split at a leading ``block`` (n_q, n_k) when
        there is one. The two blocks are built directly, once per forward: slicing one full
        bias in every layer would also cost a zero-filled full-size gradient per slice."""
        if block is None:
            return self.attention_bias(may_attend, positions, key_positions, dtype)
        n_q, n_k = block
        return LeadingBlockBias(
            n_q, n_k,
            head=self.attention_bias(may_attend[:, :n_q, :n_k], positions[:, :n_q],
                                     key_positions[:, :n_k], dtype),
            tail=self.attention_bias(may_attend[:, n_q:], positions[:, n_q:],
                                     key_positions, dtype))
