from . import cnndm, rouge  # noqa: F401
