from .blockwise_masking import BlockwiseMask, blockwise_mask, corrupt_masked  # noqa: F401
from .pmlm_dataset import PMLMDataset  # noqa: F401
from .seq2seq_dataset import Seq2SeqDataset, Seq2SeqInferenceDataset  # noqa: F401
