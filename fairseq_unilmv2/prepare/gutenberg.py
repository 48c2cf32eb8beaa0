"""A Project Gutenberg book as one paragraph a line (``--text`` of ``scripts/ablation.py``).

Gutenberg's plain-text books wrap their lines, and some (Botchan, #8868) keep no blank line
between paragraphs. A paragraph ends where the next line's first word would have fit on the
line: a greedy line wrapper would have put it there unless a paragraph ended. The width is
taken from the lines around (the longest of the nearest few): parts of one book are wrapped at
different widths. The licence text before ``*** START OF`` and after ``*** END OF`` is left
out.
"""
import re
from pathlib import Path
from typing import List, Sequence

from .common import OutputFiles

START = re.compile(r"^\*\*\* ?START OF (THIS|THE) PROJECT GUTENBERG")
END = re.compile(r"^\*\*\* ?END OF (THIS|THE) PROJECT GUTENBERG")


def book_body(lines: Sequence[str]) -> List[str]:
    """The lines between the START and END markers (all lines when there are none)."""
    starts = [i for i, line in enumerate(lines) if START.match(line)]
    ends = [i for i, line in enumerate(lines) if END.match(line)]
    first = starts[0] + 1 if starts else 0
    last = ends[-1] if ends and (not starts or ends[-1] > first) else len(lines)
    return list(lines[first:last])


# Lines on each side whose longest length is taken as the wrap width at a line.
NEIGHBOURS = 4


def local_widths(lines: Sequence[str]) -> List[int]:
    """The wrap width at each line: the longest of the lines within NEIGHBOURS of it."""
    lengths = [len(line) for line in lines]
    return [max(lengths[max(0, i - NEIGHBOURS):i + NEIGHBOURS + 1]) for i in range(len(lines))]


def paragraphs(lines: Sequence[str], width: int = 0) -> List[str]:
    """Join wrapped lines into paragraphs. ``width``: the wrap width (0: :func:`local_widths`).
    A blank line always ends a paragraph."""
    lines = [line.rstrip() for line in lines]
    widths = [width] * len(lines) if width else local_widths(lines)
    result, current = [], []
    for i, line in enumerate(lines):
        if not line.strip():
            if current:
                result.append(" ".join(current))
            current = []
            continue
        current.append(line.strip())
        following = lines[i + 1].split() if i + 1 < len(lines) else []
        if not following or len(line) + 1 + len(following[0]) <= widths[i]:
            result.append(" ".join(current))
            current = []
    if current:
        result.append(" ".join(current))
    return result


def prepare_gutenberg(book: Path, output: Path, width: int = 0) -> int:
    """Write the paragraphs of ``book`` to ``output``, one a line; return how many."""
    text = book.read_text(encoding="utf-8-sig")
    found = paragraphs(book_body(text.splitlines()), width)
    with OutputFiles() as out:
        out.write_lines(output, found)
    return len(found)
