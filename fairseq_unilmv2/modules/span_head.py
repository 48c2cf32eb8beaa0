"""The extractive QA head: a start and an end logit for every token (BERT's ``qa_outputs``)."""
import torch
from torch import nn

from .transformer import masked_fill_value


class SpanHead(nn.Module):
    """``Linear(hidden -> 2)`` over the final hidden states; padding gets a large negative
    logit so that no softmax over a window puts mass on it."""

    def __init__(self, embed_dim: int):
        super().__init__()
        self.proj = nn.Linear(embed_dim, 2)
        # BERT's initialisation (normal, std 0.02, zero bias), as init_bert_params gives the rest.
        nn.init.normal_(self.proj.weight, std=0.02)
        nn.init.zeros_(self.proj.bias)

    def forward(self, features: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        """features (B, T, C), padding bool (B, T) -> (B, T, 2) logits: start, end."""
        logits = self.proj(features)
        return logits.masked_fill(padding.unsqueeze(-1), masked_fill_value(logits.dtype))
