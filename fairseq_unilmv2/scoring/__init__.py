from . import cnndm, qg, rouge  # noqa: F401
