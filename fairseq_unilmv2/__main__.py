"""``python -m fairseq_unilmv2``: print the plugin's directory, the ``--user-dir`` to give fairseq.

    fairseq-train --user-dir "$(python -m fairseq_unilmv2)" ...

works from any directory once the package is installed (``pip install .`` or ``pip install -e
.``, or ``make setup``), whereas ``--user-dir fairseq_unilmv2`` is a path relative to the current
directory (fairseq falls back to the directory beside fairseq's own, which only a non-editable
install fills). Nothing is imported or registered to print it (see ``__init__.py``).
"""
import sys
from pathlib import Path

USAGE = """usage: python -m fairseq_unilmv2

Prints the directory of the fairseq_unilmv2 plugin, for fairseq's --user-dir:
    fairseq-train --user-dir "$(python -m fairseq_unilmv2)" ...
    fairseq-hydra-train ... common.user_dir="$(python -m fairseq_unilmv2)"
"""


def main(argv) -> int:
    if argv in (["-h"], ["--help"]):
        print(USAGE, end="")
        return 0
    if argv:
        print(f"python -m fairseq_unilmv2 takes no arguments (got {' '.join(argv)})\n\n{USAGE}",
              end="", file=sys.stderr)
        return 2
    print(Path(__file__).resolve().parent)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
