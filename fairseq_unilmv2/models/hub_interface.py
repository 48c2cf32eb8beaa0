"""Python interface to a trained UniLMv2 model, in the style of fairseq's hub interfaces.

``UniLMv2Model.from_pretrained(...)`` returns a :class:`UniLMv2HubInterface`: it inherits
fairseq's ``GeneratorHubInterface`` (``sample``, ``translate``, ``generate``, ``encode``,
``decode`` for sequence-to-sequence use) and adds the encoder-side helpers of RoBERTa's hub
interface (``extract_features``, ``register_classification_head``, ``predict``) and, for a
checkpoint of ``--task squad``, ``answer`` (extractive question answering).
"""
from typing import List, Union

import torch
import torch.nn.functional as F
from fairseq.hub_utils import GeneratorHubInterface


class UniLMv2HubInterface(GeneratorHubInterface):
    """``sample(["source text", ...], beam=5)`` returns the generated strings;
    ``predict(head, encode_for_prediction("a", "b"))`` classifies a sentence (pair)."""

    @property
    def model(self):
        return self.models[0]

    def encode_for_prediction(self, sentence: str, *addl_sentences: str) -> torch.LongTensor:
        """Tokens of a sentence (pair) laid out exactly as ``sentence_prediction`` lays out its
        binarized data: the task's ``--init-token`` first (if set), every sentence ending with
        eos, and ``--separator-token`` (if set) before each additional sentence."""
        init_token = getattr(self.task.cfg, "init_token", None)
        separator = getattr(self.task.cfg, "separator_token", None)
        parts: List[torch.Tensor] = []
        if init_token is not None:
            parts.append(torch.tensor([init_token]))
        parts.append(self.encode(sentence))
        for extra in addl_sentences:
            if separator is not None:
                parts.append(torch.tensor([separator]))
            parts.append(self.encode(extra))
        return torch.cat(parts).long()

    def extract_features(self, tokens: torch.LongTensor,
                         return_all_hiddens: bool = False) -> Union[torch.Tensor, List[torch.Tensor]]:
        """Last-layer features (B, T, C) of right-padded tokens (T or (B, T)); with
        ``return_all_hiddens`` the embeddings and every layer's output, each (B, T, C)."""
        if tokens.dim() == 1:
            tokens = tokens.unsqueeze(0)
        if tokens.size(-1) > self.model.max_positions():
            raise ValueError(f"tokens exceed the maximum length: {tokens.size(-1)} > "
                             f"{self.model.max_positions()}; truncate the input")
        features, extra = self.model(tokens.to(device=self.device), features_only=True,
                                     return_all_hiddens=return_all_hiddens)
        return extra["inner_states"] if return_all_hiddens else features

    def register_classification_head(self, name: str, num_classes: int = None,
                                     inner_dim: int = None, **kwargs):
        self.model.register_classification_head(name, num_classes=num_classes,
                                                 inner_dim=inner_dim, **kwargs)

    def predict(self, head: str, tokens: torch.LongTensor, return_logits: bool = False):
        """Log-probabilities (B, num_classes) of head ``head``; raw outputs with
        ``return_logits`` (the values of a ``--regression-target`` head)."""
        if head not in self.model.classification_heads:
            raise KeyError(f"no classification head '{head}'; the model has "
                           f"{sorted(self.model.classification_heads.keys())}")
        features = self.extract_features(tokens.to(device=self.device))
        logits = self.model.classification_heads[head](features)
        return logits if return_logits else F.log_softmax(logits, dim=-1)

    def answer(self, question: str, context: str, version_2: bool = None) -> dict:
        """The best answer span of ``context`` for ``question`` (a ``--task squad`` model):
        ``{"text", "start", "end", "score", "null_odds"}`` where ``context[start:end] ==
        text`` and ``score`` is the span's start + end logit. For a v2.0 model (or with
        ``version_2=True``) a question the model finds unanswerable gets text "" and start /
        end None; ``null_odds`` is the null score minus the best span's score."""
        from ..data.squad_examples import SquadExample

        if not hasattr(self.task, "windower"):
            raise ValueError("answer() needs a checkpoint fine-tuned with --task squad; this one "
                             f"has task '{getattr(self.task.cfg, '_name', '?')}'")
        if version_2 is None:
            version_2 = bool(self.task.cfg.version_2_with_negative)
        example = SquadExample("question", question, context, [], False)
        prediction = self.task.predict(self.model, [example], version_2)["question"]
        return {"text": prediction.text, "start": prediction.char_start,
                "end": prediction.char_end, "score": prediction.score,
                "null_odds": prediction.null_odds}
