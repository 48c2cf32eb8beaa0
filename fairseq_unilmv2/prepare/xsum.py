"""XSum from EdinburghNLP/XSum's release -> one document and one summary a line, per split.

Inputs: the folder of per-article files (``bbc-summary-data/<id>.summary``: sections opened by
``[SN]URL[SN]``, ``[SN]TITLE[SN]``, ``[SN]FIRST-SENTENCE[SN]`` (the summary) and
``[SN]RESTBODY[SN]`` (the document); ``<id>.data`` files of the release's
``parse-bbc-html-data.py``, with ``[XSUM]INTRODUCTION[XSUM]`` for the summary, read too) and
``XSum-TRAINING-DEV-TEST-SPLIT-90-5-5.json`` (``train`` / ``validation`` / ``test`` id lists).

Written: ``DIR/{train,valid,test}.src`` (the body's lines joined by spaces), ``.tgt`` (the
summary) and ``.id`` (the BBC id of each line, in the split file's order, so that predictions
join back). An id whose file is absent (the release misses a few articles), or whose summary
or body is empty, is left out and named in the log; a file that does not have the sections is
an error naming it and its line.
"""
import json
import logging
import re
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .common import BadInput, OutputFiles, one_line, read_lines, where

logger = logging.getLogger(__name__)

SPLITS = {"train": "train", "validation": "valid", "test": "test"}
SECTION_MARKER = re.compile(r"\[(SN|XSUM)\]([A-Z][A-Z-]*)\[(SN|XSUM)\]")
SUMMARY_SECTIONS = ("FIRST-SENTENCE", "INTRODUCTION")
BODY_SECTION = "RESTBODY"
EXTENSIONS = (".summary", ".data")


def parse_article(path: Path) -> Tuple[str, str]:
    """(summary, document) of one release file."""
    sections: Dict[str, List[str]] = {}
    opened_at: Dict[str, int] = {}
    current: Optional[str] = None
    for number, line in enumerate(read_lines(path), 1):
        marker = SECTION_MARKER.fullmatch(line.strip())
        if marker:
            current = marker.group(2)
            if current in sections:
                raise BadInput(f"{where(path, number)}: a second [SN]{current}[SN] section")
            sections[current], opened_at[current] = [], number
        elif current is None:
            if line.strip():
                raise BadInput(f"{where(path, number)}: text before the first section marker "
                               "(an XSum file starts with [SN]URL[SN])")
        else:
            sections[current].append(line)
    summary_section = next((s for s in SUMMARY_SECTIONS if s in sections), None)
    if summary_section is None or BODY_SECTION not in sections:
        missing = "[SN]FIRST-SENTENCE[SN]" if summary_section is None else "[SN]RESTBODY[SN]"
        raise BadInput(f"{where(path, len(read_lines(path)))}: the file ends without a "
                       f"{missing} section")
    return (one_line(" ".join(sections[summary_section])),
            one_line(" ".join(sections[BODY_SECTION])))


def read_split_file(path: Path) -> Dict[str, List[str]]:
    try:
        split = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise BadInput(f"{where(path, err.lineno)}: not JSON ({err.msg})") from err
    if not isinstance(split, dict) or not any(name in split for name in SPLITS):
        raise BadInput(f"{path}: expected {{\"train\": [ids], \"validation\": [...], "
                       "\"test\": [...]}} (XSum-TRAINING-DEV-TEST-SPLIT-90-5-5.json)")
    return {name: [str(i) for i in split[name]] for name in SPLITS if name in split}


def article_file(folder: Path, bbc_id: str) -> Optional[Path]:
    for extension in EXTENSIONS:
        if (folder / f"{bbc_id}{extension}").exists():
            return folder / f"{bbc_id}{extension}"
    return None


def prepare_xsum(articles_dir: Path, split_file: Path, output_dir: Path) -> Dict[str, int]:
    """Write the splits (module docstring); returns the examples written per split."""
    articles_dir, output_dir = Path(articles_dir), Path(output_dir)
    if not articles_dir.is_dir():
        raise BadInput(f"{articles_dir}: no such folder (the release's bbc-summary-data)")
    counts = {}
    with OutputFiles() as out:
        for split, ids in read_split_file(split_file).items():
            name, rows, absent, empty = SPLITS[split], [], [], []
            for bbc_id in ids:
                path = article_file(articles_dir, bbc_id)
                if path is None:
                    absent.append(bbc_id)
                    continue
                summary, document = parse_article(path)
                if not summary or not document:
                    empty.append(bbc_id)
                    continue
                rows.append((bbc_id, document, summary))
            for what, left in (("have no file in " + str(articles_dir), absent),
                               ("have an empty summary or body", empty)):
                if left:
                    logger.warning(f"{name}: {len(left)} of {len(ids)} ids {what}, left out "
                                   f"(first: {', '.join(left[:5])})")
            if not rows:
                logger.warning(f"{name}: no example, split not written")
                continue
            out.write_lines(output_dir / f"{name}.src", (d for _, d, _ in rows))
            out.write_lines(output_dir / f"{name}.tgt", (s for _, _, s in rows))
            out.write_lines(output_dir / f"{name}.id", (i for i, _, _ in rows))
            counts[name] = len(rows)
            logger.info(f"{name}: {len(rows)} examples")
        if not any(counts.values()):
            raise BadInput(f"none of the ids of {split_file} has a file in {articles_dir}")
    return counts
