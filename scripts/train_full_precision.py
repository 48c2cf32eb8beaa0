"""``fairseq-train`` whose logged scalars keep full precision instead of being rounded
(``wall`` to whole seconds, losses to 3 decimals): for tests and benchmarks that read the log.

    python scripts/train_full_precision.py <fairseq-train arguments>
"""
import sys

# fairseq_cli.train first, as the fairseq-train launcher imports it: it sets the root logger's
# format ("<time> | INFO | train | epoch 001 | ...") before it imports fairseq, and the first
# basicConfig wins. Importing fairseq first lets fairseq.models.wav2vec's own
# logging.basicConfig(level=DEBUG) set "INFO:train:epoch 001 | ..." instead, which the
# readers of these logs (benchmarks/epoch_stall.py) do not parse.
from fairseq_cli.train import cli_main  # noqa: I001  (must come first)
from fairseq.logging import meters, progress_bar  # noqa: E402

meters.safe_round = lambda number, ndigits: number
_format_stat = progress_bar.format_stat
progress_bar.format_stat = lambda stat: (repr(float(stat)) if isinstance(stat, float)
                                         else _format_stat(stat))

if __name__ == "__main__":
    sys.exit(cli_main())
