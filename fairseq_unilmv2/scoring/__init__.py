from . import cnndm, rouge, squad  # noqa: F401
