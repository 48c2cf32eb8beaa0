from .unilm_v2 import UniLMv2Model  # noqa: F401
