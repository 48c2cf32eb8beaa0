"""SQuAD question generation in its two settings, as files for ``--task unilm_seq2seq`` and
``score.py --qg``.

- Du et al. (2017), :func:`prepare_nqg`: xinyadu/nqg's ``data/processed/{src,tgt}-{split}.txt``
  (lower-cased, PTB-tokenized sentence -> question). The model reads the text with the PTB
  bracket tokens undone (``-lrb-`` -> ``(``: WordPiece should see real characters); the key
  and reference files are nqg's own lines, what UniLM's ``qg/eval.py`` reads (score with
  ``--qg-references du``).
- UniLM (the paper's setting), :func:`prepare_squad`: ``passage [SEP] answer`` -> question,
  from SQuAD v1.1 JSON and nqg's ``data/doclist-{train,dev,test}.txt`` (Du et al.'s article
  split: SQuAD's dev articles as dev, its training articles split into train and test). The
  key file is the ``passage [SEP] answer`` text (UniLM's ``test.pa.txt``), the reference file
  the question's WordPiece tokens (UniLM's ``test.q.tok.txt``, with ``reference_vocab`` the
  vocabulary it was tokenized with, ``bert-large-cased``'s; score with the default
  ``--qg-references unilm``). WordPiece files for ``fairseq-preprocess`` are written too, with
  ``[SEP]`` as fairseq's ``</s>`` (the converted dictionary's name for BERT's ``[SEP]``: the
  text ``[SEP]`` would be ``<unk>``). Unanswerable questions (SQuAD v2.0 files) are skipped
  and counted.
"""
import json
import logging
from collections import Counter
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from .common import BadInput, OutputFiles, one_line, read_lines, where

logger = logging.getLogger(__name__)

# nqg's split name -> this project's (fairseq's valid).
SPLITS = {"train": "train", "dev": "valid", "test": "test"}
PTB_BRACKETS_UNDONE = {"-lrb-": "(", "-rrb-": ")", "-lsb-": "[", "-rsb-": "]", "-lcb-": "{",
                       "-rcb-": "}"}
PASSAGE_ANSWER_SEP = "[SEP]"
FAIRSEQ_SEP = "</s>"  # BERT's [SEP] in the converted dictionary (SPEC 6)


def undo_ptb_brackets(line: str) -> str:
    return " ".join(PTB_BRACKETS_UNDONE.get(token, token) for token in line.split())


# ----------------------------------------------------------------------------- Du et al.
def read_pairs(src_path: Path, tgt_path: Path) -> Tuple[List[str], List[str]]:
    sources, questions = read_lines(src_path), read_lines(tgt_path)
    if len(sources) != len(questions):
        raise BadInput(f"{src_path} has {len(sources)} lines but {tgt_path} has "
                       f"{len(questions)}: they must be aligned, one question a line")
    for path, lines in ((src_path, sources), (tgt_path, questions)):
        for number, line in enumerate(lines, 1):
            if not line.strip():
                raise BadInput(f"{where(path, number)}: empty line (every line is one "
                               "example; the files must stay aligned)")
    return sources, questions


def prepare_nqg(input_dir: Path, output_dir: Path) -> Dict[str, int]:
    """nqg's ``src-/tgt-{train,dev,test}.txt`` found in ``input_dir`` -> ``output_dir``'s
    ``{split}.src/.tgt`` (brackets undone) and, for dev and test, ``{split}.key/.ref`` (nqg's
    lines as they are). Returns the questions written per split."""
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    found = [s for s in SPLITS if (input_dir / f"src-{s}.txt").exists()
             or (input_dir / f"tgt-{s}.txt").exists()]
    if not found:
        raise BadInput(f"{input_dir} has no src-{{train,dev,test}}.txt: give nqg's "
                       "data/processed folder")
    counts = {}
    with OutputFiles() as out:
        for split in found:
            sources, questions = read_pairs(input_dir / f"src-{split}.txt",
                                            input_dir / f"tgt-{split}.txt")
            name = SPLITS[split]
            out.write_lines(output_dir / f"{name}.src", map(undo_ptb_brackets, sources))
            out.write_lines(output_dir / f"{name}.tgt", map(undo_ptb_brackets, questions))
            if split != "train":
                out.write_lines(output_dir / f"{name}.key", sources)
                out.write_lines(output_dir / f"{name}.ref", questions)
            counts[name] = len(sources)
            logger.info(f"{name}: {len(sources)} questions from {input_dir}/src-{split}.txt")
    return counts


# ----------------------------------------------------------------------------- UniLM
def read_doclist(path: Path) -> List[str]:
    """Article titles, one a line (nqg's ``doclist-*.txt``)."""
    return [line.strip() for line in read_lines(path) if line.strip()]


def load_squad_articles(paths: Sequence[Path]) -> Dict[str, Tuple[Path, dict]]:
    """title -> (file, article) over SQuAD JSON files (v1.1, or v2.0 with unanswerable
    questions)."""
    articles: Dict[str, Tuple[Path, dict]] = {}
    for path in map(Path, paths):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            line = f":{err.lineno}" if isinstance(err, json.JSONDecodeError) else ""
            raise BadInput(f"{path}{line}: not a SQuAD JSON file ({err})") from err
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            raise BadInput(f"{path}: not a SQuAD JSON file (no \"data\" list of articles)")
        for number, article in enumerate(data["data"]):
            title = article.get("title") if isinstance(article, dict) else None
            if not title or not isinstance(article.get("paragraphs"), list):
                raise BadInput(f"{path}: article {number} has no \"title\" or no "
                               "\"paragraphs\" list")
            if title in articles:
                raise BadInput(f"{path}: article {title!r} is also in {articles[title][0]}")
            articles[title] = (path, article)
    return articles


def squad_pairs(path: Path, article: dict, skipped: Counter) -> Iterator[Tuple[str, str, str]]:
    """(passage, answer, question) of the article's answerable questions, in file order; the
    unanswerable ones are counted in ``skipped``."""
    title = article["title"]
    for paragraph in article["paragraphs"]:
        passage = one_line(paragraph.get("context", ""))
        for qa in paragraph.get("qas", []):
            if qa.get("is_impossible"):
                skipped["unanswerable"] += 1
                continue
            question, answers = one_line(qa.get("question", "")), qa.get("answers") or []
            answer = one_line(answers[0].get("text", "")) if answers else ""
            if not (passage and question and answer):
                missing = "passage" if not passage else "question" if not question else "answer"
                raise BadInput(f"{path}: question {qa.get('id')!r} of article {title!r} has "
                               f"no {missing} (and is not marked is_impossible)")
            yield passage, answer, question


class PieceCache:
    """WordPiece tokens of passages, encoded once for all their questions."""

    def __init__(self, tokenizer):
        self.encode, self.passages = tokenizer.encode, {}

    def passage(self, text: str) -> str:
        if text not in self.passages:
            self.passages = {text: self.encode(text)}  # questions of a passage are adjacent
        return self.passages[text]


def prepare_squad(squad_files: Sequence[Path], doclist_dir: Path, vocab: Path,
                  output_dir: Path, reference_vocab: Optional[Path] = None) -> Dict[str, int]:
    """UniLM's passage-plus-answer files for each split whose doclist names articles of the
    given SQuAD files: ``{split}.src/.tgt`` (text), ``{split}.key`` (the .src text),
    ``{split}.ref`` (WordPiece questions) and ``bpe/{split}.src/.tgt``. Returns the questions
    written per split.

    ``.ref`` is tokenized with ``reference_vocab`` when given (default: ``vocab``, the model's).
    UniLM's released references (``test.q.tok.txt``) were tokenized with ``bert-large-cased``,
    whose pieces keep case and accents: its ``vocab.txt`` here gives them (casing follows the
    vocabulary: a cased one neither lower-cases nor strips accents)."""
    from fairseq_unilmv2.convert.vocab import wordpiece_tokenizer

    doclist_dir, output_dir = Path(doclist_dir), Path(output_dir)
    articles = load_squad_articles(squad_files)
    tokenizer = wordpiece_tokenizer(vocab)
    reference_tokenizer = tokenizer if reference_vocab is None else \
        wordpiece_tokenizer(reference_vocab)
    cache = PieceCache(tokenizer)
    counts, listed = {}, set()
    with OutputFiles() as out:
        for split, name in SPLITS.items():
            doclist = doclist_dir / f"doclist-{split}.txt"
            if not doclist.exists():
                logger.warning(f"{name}: no {doclist}, split not written")
                continue
            titles = read_doclist(doclist)
            listed.update(titles)
            present = [t for t in titles if t in articles]
            missing = [t for t in titles if t not in articles]
            if missing:
                logger.warning(f"{name}: {len(missing)} of the {len(titles)} articles of "
                               f"{doclist} are in none of the SQuAD files given (first: "
                               f"{', '.join(missing[:3])})")
            if not present:
                logger.warning(f"{name}: none of its articles given, split not written")
                continue
            skipped: Counter = Counter()
            rows = [(p, a, q) for t in present for p, a, q in squad_pairs(*articles[t], skipped)]
            sources = [f"{p} {PASSAGE_ANSWER_SEP} {a}" for p, a, _ in rows]
            out.write_lines(output_dir / f"{name}.src", sources)
            out.write_lines(output_dir / f"{name}.tgt", (q for _, _, q in rows))
            out.write_lines(output_dir / f"{name}.key", sources)
            question_pieces = [tokenizer.encode(q) for _, _, q in rows]
            out.write_lines(output_dir / f"{name}.ref",
                            question_pieces if reference_tokenizer is tokenizer
                            else (reference_tokenizer.encode(q) for _, _, q in rows))
            out.write_lines(output_dir / "bpe" / f"{name}.src",
                            (f"{cache.passage(p)} {FAIRSEQ_SEP} {tokenizer.encode(a)}"
                             for p, a, _ in rows))
            out.write_lines(output_dir / "bpe" / f"{name}.tgt", question_pieces)
            counts[name] = len(rows)
            logger.info(f"{name}: {len(rows)} questions of {len(present)} articles, "
                        f"{skipped['unanswerable']} unanswerable questions skipped")
        unlisted = [t for t in articles if t not in listed]
        if unlisted:
            logger.warning(f"{len(unlisted)} articles of the SQuAD files are in no doclist, "
                           f"not written (first: {', '.join(unlisted[:3])})")
        if not counts:
            raise BadInput(f"no article of the doclists in {doclist_dir} is in the SQuAD "
                           f"files given ({', '.join(map(str, squad_files))})")
    return counts
