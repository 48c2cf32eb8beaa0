"""fairseq_unilmv2: UniLMv2 pseudo-masked LM pre-training, fine-tuning and decoding for fairseq.

Use with ``--user-dir fairseq_unilmv2``: importing the package applies the compatibility fixes
of :mod:`fairseq_unilmv2.compat` and registers the model, tasks, criterions and scorers.
"""
from . import compat

compat.apply()

from . import criterions, data, models, modules, optim, scoring, tasks  # noqa: E402,F401
