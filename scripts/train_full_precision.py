"""``fairseq-train`` whose logged scalars keep full precision instead of being rounded
(``wall`` to whole seconds, losses to 3 decimals): for tests and benchmarks that read the log.

    python scripts/train_full_precision.py <fairseq-train arguments>
"""
import sys

from fairseq.logging import meters, progress_bar
from fairseq_cli.train import cli_main

meters.safe_round = lambda number, ndigits: number
_format_stat = progress_bar.format_stat
progress_bar.format_stat = lambda stat: (repr(float(stat)) if isinstance(stat, float)
                                         else _format_stat(stat))

if __name__ == "__main__":
    sys.exit(cli_main())
