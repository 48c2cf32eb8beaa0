from . import adam_no_decay_bias_ln  # noqa: F401
