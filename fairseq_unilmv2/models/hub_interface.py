"""Python interface to a trained UniLMv2 model, in the style of fairseq's hub interfaces.

``UniLMv2Model.from_pretrained(...)`` returns a :class:`UniLMv2HubInterface`: it inherits
fairseq's ``GeneratorHubInterface`` (``sample``, ``translate``, ``generate``, ``encode``,
``decode`` for sequence-to-sequence use) and adds the encoder-side helpers.
"""
from fairseq.hub_utils import GeneratorHubInterface


class UniLMv2HubInterface(GeneratorHubInterface):
    """``sample(["source text", ...], beam=5)`` returns the generated strings."""

    @property
    def model(self):
        return self.models[0]
