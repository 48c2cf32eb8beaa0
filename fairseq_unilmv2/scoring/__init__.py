from . import cnndm, qg, rouge, squad  # noqa: F401
