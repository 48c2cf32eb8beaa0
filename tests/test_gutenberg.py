"""``prepare_data.py gutenberg``: a wrapped Project Gutenberg book as one paragraph a line."""
import subprocess
import sys
import textwrap

from fairseq_unilmv2.prepare import gutenberg

from helpers import REPO, shared_file

PARAGRAPHS = [
    "No translation can expect to equal, much less to excel, the original. The excellence of a "
    "translation can only be judged by noting how far it has succeeded.",
    "It is short.",
    "The task of the translator becomes doubly hazardous in case of translating a European "
    "language into Japanese, or vice versa, with no visible kinship in word-form.",
]


def wrapped_book(width=60):
    body = [line for p in PARAGRAPHS for line in textwrap.wrap(p, width)]  # no blank lines
    return ["The Project Gutenberg EBook of Something", "licence text, many lines",
            "*** START OF THIS PROJECT GUTENBERG EBOOK SOMETHING ***", *body,
            "*** END OF THIS PROJECT GUTENBERG EBOOK SOMETHING ***", "more licence text"]


def test_wrapped_lines_are_joined_back_into_their_paragraphs():
    lines = gutenberg.book_body(wrapped_book())
    assert gutenberg.paragraphs(lines, width=60) == PARAGRAPHS


def test_the_licence_is_left_out_and_the_width_found(tmp_path):
    book = tmp_path / "book.txt"
    # A long, unwrapped header line would make the longest line a wrong width.
    book.write_text("\n".join(wrapped_book()) + "\n", encoding="utf-8")
    out = tmp_path / "paragraphs.txt"
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "prepare_data.py"), "gutenberg",
                           "--input", str(book), "--output", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert out.read_text(encoding="utf-8").splitlines() == PARAGRAPHS


def test_botchan_is_a_ninth_of_the_ablation_corpus():
    text = shared_file("botchan", "botchan.txt").read_text(encoding="utf-8-sig").splitlines()
    found = gutenberg.paragraphs(gutenberg.book_body(text))
    assert not any("Gutenberg License" in p or "gutenberg.org" in p for p in found)
    long_ones = [p for p in found if len(p.split()) >= 6]
    assert 500 < len(long_ones) < 1000
    assert 40_000 < sum(len(p.split()) for p in long_ones) < 55_000  # 452,606 in WikiText's two
    # Most paragraphs end a sentence. Not all: a few lines of the book are wrapped narrower than
    # the lines around them, and the rule ends a paragraph there (measured: 63 of 629).
    assert sum(p.rstrip()[-1] in ".!?\"'-)]:;" for p in long_ones) / len(long_ones) > 0.85
