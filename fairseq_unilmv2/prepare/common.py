"""What the preparation commands share: their error, all-or-nothing output files, text lines."""
import logging
import os
import tempfile
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Union

from ..convert.errors import run_cli

logger = logging.getLogger(__name__)


class BadInput(ValueError):
    """An input file that cannot be prepared as given; the message names the file (and its
    line) and what is wrong. The command line prints it and exits with status 2."""


def where(path: Union[str, Path], line: Optional[int] = None) -> str:
    return f"{path}:{line}" if line is not None else str(path)


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines, tabs, non-breaking spaces) made one
    space: one example must stay one line."""
    return " ".join(text.split())


class OutputFiles:
    """Output files written to temporary names beside their targets and renamed into place
    only when the whole preparation succeeded: an error leaves no file half-written (and no
    earlier output replaced).

        with OutputFiles() as out:
            out.write_lines("qg/test.src", lines)
    """

    def __init__(self):
        self.pending: Dict[Path, Path] = {}  # target -> temporary file

    def open(self, target: Union[str, Path]):
        target = Path(target)
        if target in self.pending:
            raise ValueError(f"{target} is written twice")
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.",
                                             suffix=".partial")
        self.pending[target] = Path(temporary)
        return os.fdopen(handle, "w", encoding="utf-8")

    def write_lines(self, target: Union[str, Path], lines: Iterable[str]) -> int:
        count = 0
        with self.open(target) as f:
            for line in lines:
                f.write(line + "\n")
                count += 1
        return count

    def __enter__(self) -> "OutputFiles":
        return self

    def __exit__(self, error_type, error, traceback) -> None:
        if error_type is None:
            umask = os.umask(0)
            os.umask(umask)
            for target, temporary in self.pending.items():
                os.chmod(temporary, 0o666 & ~umask)  # mkstemp's files are private
                os.replace(temporary, target)
                logger.info(f"wrote {target}")
        else:
            for temporary in self.pending.values():
                temporary.unlink(missing_ok=True)


def read_lines(path: Union[str, Path]) -> List[str]:
    try:
        with open(path, encoding="utf-8") as f:
            return [line.rstrip("\n") for line in f]
    except UnicodeDecodeError as err:
        raise BadInput(f"{path}: not UTF-8 text ({err})") from err


def run_command(prog: str, action) -> int:
    """Run a preparation: fairseq-style log lines on stdout, a :class:`BadInput` (or a missing
    file) printed as ``prog: error: ...`` with exit status 2 instead of a traceback."""
    return run_cli(prog, action, errors=(BadInput, FileNotFoundError))
