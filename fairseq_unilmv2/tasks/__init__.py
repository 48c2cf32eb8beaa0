from . import pmlm  # noqa: F401
from . import unilm_seq2seq  # noqa: F401
from . import squad  # noqa: F401
