"""CNN/DailyMail from its raw release -> one article and one summary a line.

Inputs: See et al.'s ``.story`` files (article paragraphs, then ``@highlight`` lines each
followed by a summary sentence), in the order of one of their URL lists (``all_test.txt``: a
story is named by the SHA-1 of its URL) or in file-name order; or the common tabular form,
CSV or JSON lines with ``article`` and ``highlights`` (sentences separated by newlines) and an
optional ``id``.

Stories are read as See et al.'s ``make_datafiles.py`` reads them: empty lines dropped, a
period added to a line that ends without ``. ! ? ' ` " ’ ” )`` (captions run into the text
otherwise), every line after the first ``@highlight`` a summary sentence. Written per example:

- ``PREFIX.src``: the article on one line; ``PREFIX.tgt``: the summary sentences joined with
  `` [X_SEP] `` (the marker s2s-ft's prepared targets carry, which the model learns to write
  and ``score.py --cnndm`` splits at); ``PREFIX.ref``: the summary sentences in the terms of
  See et al.'s gold files, which s2s-ft scores against (:func:`reference_sentence`: Penn
  Treebank tokens, lower case, then the missing final period), joined with `` <S_SEP> ``;
  ``PREFIX.id``: the story's name or id;
- with a WordPiece vocabulary, ``BPE_PREFIX.src/.tgt``: the article's first 606 pieces (s2s-ft
  keeps ``max_source_seq_length`` 608 minus ``[CLS]`` and ``[SEP]``), the summary's pieces
  with ``[X_SEP]`` kept whole between sentences.

A story without highlights, or without article text, cannot be a training pair: it is left
out and named in the log (the raw CNN release has a few).
"""
import csv
import hashlib
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional, Sequence

from .common import BadInput, OutputFiles, one_line, read_lines, where

logger = logging.getLogger(__name__)

TARGET_SENTENCE_SEP = "[X_SEP]"
REFERENCE_SENTENCE_SEP = "<S_SEP>"
# See et al.'s END_TOKENS, as characters (their "..." ends in "." anyway).
SENTENCE_ENDS = (".", "!", "?", "'", "`", '"', "\u2019", "\u201d", ")")
S2S_FT_MAX_SOURCE_PIECES = 608 - 2


@dataclass
class Story:
    id: str
    article: str
    highlights: List[str]  # as read, a missing final period added (the targets)
    origin: str  # file (and line) it came from, for messages
    raw_highlights: Optional[List[str]] = None  # as read, for the references (else highlights)


def fix_missing_period(line: str) -> str:
    if "@highlight" in line or not line or line.endswith(SENTENCE_ENDS):
        return line
    return line + " ."


_TREEBANK = None


def reference_sentence(sentence: str) -> str:
    """One summary sentence as See et al.'s ``make_datafiles.py`` writes it into the gold
    files: Penn Treebank tokens (they ran Stanford CoreNLP's PTBTokenizer; here NLTK's
    ``TreebankWordTokenizer`` with ``convert_parentheses``: ``(`` -> ``-LRB-``, ``didn't`` ->
    ``did n't``, ``"`` -> `````` / ``''``), then lower case, then a period added to a line that
    ends without one of their end tokens (``)`` is one, ``-rrb-`` is not: ``... -rrb- .``)."""
    global _TREEBANK
    if _TREEBANK is None:
        try:
            from nltk.tokenize import TreebankWordTokenizer
        except ImportError as err:
            raise ImportError("CNN/DailyMail references are tokenized with NLTK's "
                              "TreebankWordTokenizer: pip install nltk (rouge-score installs "
                              "it)") from err
        _TREEBANK = TreebankWordTokenizer()
    tokens = _TREEBANK.tokenize(sentence, convert_parentheses=True)
    return fix_missing_period(" ".join(tokens).lower())


def decode(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise BadInput(f"{where(path, line)}: not UTF-8 text ({err.reason})") from err


def parse_story(text: str, story_id: str, origin: str) -> Story:
    article, highlights, in_highlights = [], [], False
    for line in text.splitlines():
        line = one_line(line)
        if not line:
            continue
        if line.startswith("@highlight"):
            in_highlights = True  # See et al. never switch back: all later lines are summary
        elif in_highlights:
            highlights.append(line)
        else:
            article.append(fix_missing_period(line))
    return Story(story_id, " ".join(article), [fix_missing_period(h) for h in highlights],
                 origin, highlights)


def story_files(inputs: Sequence[Path], url_list: Optional[Path]) -> Iterator[Path]:
    """``.story`` files of the inputs (folders or files), in URL-list or name order."""
    folders = [p for p in inputs if p.is_dir()]
    if url_list is None:
        for path in inputs:
            yield from sorted(path.glob("*.story")) if path.is_dir() else [path]
        return
    for number, url in enumerate(read_lines(url_list), 1):
        if not url.strip():
            continue
        name = hashlib.sha1(url.strip().encode("utf-8")).hexdigest() + ".story"
        found = [folder / name for folder in folders if (folder / name).exists()]
        if not found:
            raise BadInput(f"{where(url_list, number)}: no {name} (the story of {url.strip()}) "
                           f"in {', '.join(map(str, folders)) or 'the inputs (give folders)'}")
        yield found[0]


def highlight_sentences(value, origin: str) -> List[str]:
    if isinstance(value, list):
        return [one_line(str(s)) for s in value if one_line(str(s))]
    if not isinstance(value, str):
        raise BadInput(f"{origin}: \"highlights\" is neither text nor a list")
    return [one_line(s) for s in value.splitlines() if one_line(s)]


def table_stories(path: Path) -> Iterator[Story]:
    """Stories of a CSV file (header with article, highlights[, id]) or JSON lines."""
    if path.suffix == ".csv":
        csv.field_size_limit(sys.maxsize)
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            missing = {"article", "highlights"} - set(reader.fieldnames or [])
            if missing:
                raise BadInput(f"{where(path, 1)}: the CSV header has no "
                               f"{' / '.join(sorted(missing))} column")
            for number, row in enumerate(reader, 1):
                origin = where(path, reader.line_num)
                if row.get("article") is None or row.get("highlights") is None:
                    raise BadInput(f"{origin}: too few fields")
                yield Story(row.get("id") or str(number), one_line(row["article"]),
                            highlight_sentences(row["highlights"], origin), origin)
        return
    for number, line in enumerate(read_lines(path), 1):
        if not line.strip():
            continue
        origin = where(path, number)
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise BadInput(f"{origin}: not a JSON object ({err})") from err
        if not isinstance(row, dict) or "article" not in row or "highlights" not in row:
            raise BadInput(f"{origin}: needs \"article\" and \"highlights\"")
        yield Story(str(row.get("id", number)), one_line(str(row["article"])),
                    highlight_sentences(row["highlights"], origin), origin)


def read_stories(inputs: Sequence[Path], url_list: Optional[Path] = None) -> Iterator[Story]:
    tables = [p for p in inputs if p.is_file() and p.suffix in (".csv", ".jsonl", ".json")]
    for path in tables:
        yield from table_stories(path)
    stories = [p for p in inputs if p not in tables]
    if stories:
        for path in story_files(stories, url_list):
            yield parse_story(decode(path), path.stem, str(path))


def truncated_pieces(text: str, encode, max_pieces: int) -> str:
    return " ".join(encode(text).split()[:max_pieces])


def prepare_cnndm(inputs: Sequence[Path], output_prefix: str, url_list: Optional[Path] = None,
                  vocab: Optional[Path] = None, bpe_prefix: Optional[str] = None,
                  max_source_pieces: int = S2S_FT_MAX_SOURCE_PIECES) -> int:
    """Write the files of one split (module docstring); returns the examples written."""
    inputs = [Path(p) for p in inputs]
    for path in inputs:
        if not path.exists():
            raise BadInput(f"{path}: no such file or folder")
    encode = None
    if vocab is not None:
        from fairseq_unilmv2.convert.vocab import read_wordpiece_vocab, wordpiece_tokenizer

        encode = wordpiece_tokenizer(vocab).encode
        if TARGET_SENTENCE_SEP not in read_wordpiece_vocab(vocab):
            logger.warning(f"{vocab} has no {TARGET_SENTENCE_SEP} token: in the binarized "
                           "targets it will be <unk> (s2s-ft's vocabularies have it)")
    kept = left_out = 0
    with OutputFiles() as out:
        files = {side: out.open(f"{output_prefix}.{side}") for side in ("src", "tgt", "ref", "id")}
        if encode is not None:
            prefix = bpe_prefix or str(Path(output_prefix).parent / "bpe" /
                                       Path(output_prefix).name)
            files["bpe.src"] = out.open(f"{prefix}.src")
            files["bpe.tgt"] = out.open(f"{prefix}.tgt")
        for story in read_stories(inputs, url_list):
            if not story.highlights or not story.article:
                logger.warning(f"{story.origin}: no {'highlights' if story.article else 'article'}"
                               ", left out")
                left_out += 1
                continue
            files["src"].write(story.article + "\n")
            files["tgt"].write(f" {TARGET_SENTENCE_SEP} ".join(story.highlights) + "\n")
            files["ref"].write(f" {REFERENCE_SENTENCE_SEP} ".join(
                reference_sentence(h) for h in story.raw_highlights or story.highlights) + "\n")
            files["id"].write(story.id + "\n")
            if encode is not None:
                files["bpe.src"].write(truncated_pieces(story.article, encode,
                                                        max_source_pieces) + "\n")
                files["bpe.tgt"].write(f" {TARGET_SENTENCE_SEP} ".join(
                    encode(s) for s in story.highlights) + "\n")
            kept += 1
        for f in files.values():
            f.close()
        if not kept:
            raise BadInput(f"no story with an article and highlights in "
                           f"{', '.join(map(str, inputs))}")
    logger.info(f"{output_prefix}: {kept} examples, {left_out} left out")
    return kept
