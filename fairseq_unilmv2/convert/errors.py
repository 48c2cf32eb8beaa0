"""The one exception the converters raise: a message that names the bad input and the fix."""


class ConversionError(ValueError):
    """A checkpoint, config or vocabulary that cannot be converted as given.

    The command-line scripts print the message and exit with status 2 instead of a traceback.
    """


def run_cli(prog: str, action, errors=(ConversionError,)) -> int:
    """Run a command-line action: fairseq-style log lines on stdout (level from $LOGLEVEL), and
    any of ``errors`` (exceptions whose message names the bad input and the fix) printed as
    ``prog: error: ...`` with exit status 2, not a traceback. Shared by the conversion and the
    data-preparation scripts."""
    import logging
    import os
    import sys

    logging.basicConfig(format="%(asctime)s | %(levelname)s | %(name)s | %(message)s",
                        datefmt="%Y-%m-%d %H:%M:%S",
                        level=os.environ.get("LOGLEVEL", "INFO").upper(), stream=sys.stdout,
                        force=True)
    try:
        action()
    except tuple(errors) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    return 0
