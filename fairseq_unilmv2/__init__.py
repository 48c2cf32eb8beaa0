"""fairseq_unilmv2: UniLMv2 pseudo-masked LM pre-training, fine-tuning and decoding for fairseq.

Use with ``--user-dir fairseq_unilmv2``: importing the package applies the compatibility fixes
of :mod:`fairseq_unilmv2.compat` and registers the model, tasks, criterions and scorers.

``python -m fairseq_unilmv2`` prints the package's directory, the ``--user-dir`` of an installed
copy (``fairseq-train --user-dir "$(python -m fairseq_unilmv2)" ...`` from any directory). Python
imports this file before it runs ``__main__.py``; that one import registers nothing, so that
printing a path neither imports fairseq nor patches it.
"""
import sys


def _run_by_python_dash_m() -> bool:
    """Whether this import is Python looking for ``python -m fairseq_unilmv2``'s ``__main__``.

    While it looks, Python sets ``sys.argv[0]`` to ``'-m'``; ``sys.orig_argv`` is the command line
    as typed, ending with ``sys.argv[1:]``, so the word before those names the module (``-m
    fairseq_unilmv2``, ``-mfairseq_unilmv2`` or grouped flags such as ``-Im fairseq_unilmv2``).
    ``python -m fairseq_unilmv2.<module>`` and any program that merely imports the package
    register as usual.
    """
    if sys.argv[:1] != ["-m"]:
        return False
    typed = sys.orig_argv[:len(sys.orig_argv) - len(sys.argv) + 1]
    module, before = typed[-1], typed[-2] if len(typed) > 1 else ""
    if module.startswith("-") and "m" in module:  # -mfairseq_unilmv2, -Imfairseq_unilmv2
        module = module[module.index("m") + 1:]
    elif not (before.startswith("-") and not before.startswith("--") and before.endswith("m")):
        return False
    return module == __name__


if not _run_by_python_dash_m():
    from . import compat

    compat.apply()

    from . import criterions, data, models, modules, optim, scoring, tasks  # noqa: E402,F401
