"""CNN/DailyMail evaluation as s2s-ft's ``evaluations/eval_for_cnndm.py`` does it.

Each hypothesis line is split into sentences at ``[X_SEP]`` (what s2s-ft's decoder writes
between sentences); each sentence has its punctuation split off as s2s-ft's decoder writes it
(:func:`split_punctuation`: fairseq's ``--bpe bert`` output glues ``didn't`` back), then is
re-tokenized the Penn Treebank way the references are
(:func:`fix_tokenization`: ``(`` -> ``-LRB-``, quotes -> `````` / ``''``, ``n't``, ``'s``,
``3,000``, ``2.5``, hyphenated words joined); sentences of 4 tokens or fewer are dropped, then
any sentence whose words are mostly (``duplicate_rate``, 0.7) words of the sentences before it,
and the rest is cut to ``trunc_len`` (60) tokens in all. References are split at ``<S_SEP>``
(s2s-ft's gold files). ROUGE-1/2 F1 and the sentence-level (summary-level, "ROUGE-Lsum")
ROUGE-L F1 over those sentences, Porter stemming on, as percentages.

sacremoses does not serve here: its detokenizer and Penn tokenizer follow other rules (``3 ,
000`` becomes ``3, 000``, ``u . s .`` becomes ``u. s.``), so the rules are written out below.
"""
import string
import unicodedata
from typing import Dict, List, Sequence

from .rouge import rouge_f1

HYPOTHESIS_SENTENCE_SEP = "[X_SEP]"
REFERENCE_SENTENCE_SEP = "<S_SEP>"
PTB_BRACKETS = {"(": "-LRB-", ")": "-RRB-", "[": "-LSB-", "]": "-RSB-", "{": "-LCB-", "}": "-RCB-"}
# Tokens of already PTB-tokenized text that the punctuation split leaves whole.
PTB_TOKENS = {t.lower() for t in PTB_BRACKETS.values()} | {
    "``", "''", "--", "...", "n't", "'s", "'re", "'ve", "'m", "'ll", "'d"}


def _digits_and_commas(word: str) -> bool:
    return all(ch.isdigit() or ch == "," for ch in word)


def _is_capital_letter(word: str) -> bool:
    return len(word) == 1 and word.isupper()


def _joins_hyphen(out: List[str], next_word: str) -> bool:
    # s2s-ft tests ``word not in string.punctuation``: a substring test, kept as it is.
    return out[-1] not in string.punctuation and next_word[0] not in string.punctuation


def fix_tokenization(text: str, token_map: Dict[str, str] = PTB_BRACKETS) -> str:
    """s2s-ft's ``fix_tokenization``: WordPiece-style tokens -> Penn Treebank tokens.
    ``token_map`` replaces whole tokens (UniLM's QG evaluation uses its own, :mod:`.qg`)."""
    words = text.split()
    out: List[str] = []
    open_double = open_single = after_joining_hyphen = False
    i, n = 0, len(words)
    while i < n:
        word = words[i]
        nxt = words[i + 1] if i + 1 < n else None
        nxt2 = words[i + 2] if i + 2 < n else None
        joining_hyphen = False
        if word in token_map:
            out.append(token_map[word])
            i += 1
        elif word == '"':
            out.append("''" if open_double else "``")
            open_double = not open_double
            i += 1
        elif word == "'" and out and out[-1].endswith("n") and nxt == "t":  # didn ' t
            out[-1] = out[-1][:-1]
            out.append("n't")
            i += 2
        elif word == "'" and nxt in ("s", "d", "ll"):  # it ' s
            out.append("'" + nxt)
            i += 2
        elif word == "'":
            out.append("'" if open_single else "`")
            open_single = not open_single
            i += 1
        elif word == "." and nxt == "." and nxt2 == ".":
            out.append("...")
            i += 3
        elif word == "," and out and _digits_and_commas(out[-1]) and nxt is not None \
                and _digits_and_commas(nxt):  # 3 , 000
            out[-1] += "," + nxt
            i += 2
        elif word == "." and out and out[-1].isdigit() and nxt is not None and nxt.isdigit():
            out[-1] += "." + nxt  # 2 . 5
            i += 2
        elif word == "." and out and _is_capital_letter(out[-1]) and nxt2 is not None \
                and _is_capital_letter(nxt) and nxt2 == ".":
            # U . N . -> U.N.; as in s2s-ft the scan looks for further letters only while two
            # words remain after them, and only ". N" is consumed (the second period stays).
            end = i + 3
            while end + 2 < n and _is_capital_letter(words[end + 1]) and words[end + 2] == ".":
                end += 2
            out[-1] += "".join(words[i:end])
            i += 2
        elif word == "-":
            if nxt == "-":
                out.append("--")
                i += 2
            elif nxt is None or i == 0:
                out.append("-")
                i += 1
            elif _joins_hyphen(out, nxt):  # well - known -> well-known
                out[-1] += "-"
                joining_hyphen = True
                i += 1
            else:
                out.append("-")
                i += 1
        elif after_joining_hyphen and out and word[0] not in string.punctuation:
            out[-1] += word
            i += 1
        else:
            out.append(word)
            i += 1
        after_joining_hyphen = joining_hyphen
    return " ".join(out)


def _is_punctuation(char: str) -> bool:
    """BERT's basic tokenizer's punctuation: ASCII symbols and Unicode ``P*``."""
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def split_punctuation(text: str) -> str:
    """Every punctuation character a token of its own, as s2s-ft's decoder writes its
    WordPiece output (``didn ' t``, ``3 , 000``). fairseq's ``--bpe bert`` detokenizer glues
    some back (``didn't``, ``3, 000``: transformers' ``clean_up_tokenization``); splitting
    again gives :func:`fix_tokenization` s2s-ft's input. Text already split is unchanged, and
    so are tokens that are Penn Treebank tokens already (``-lrb-``, ``n't``, ``''``, ...)."""
    tokens = []
    for token in text.split():
        if token.lower() in PTB_TOKENS:
            tokens.append(token)
        else:
            tokens.extend("".join(f" {c} " if _is_punctuation(c) else c for c in token).split())
    return " ".join(tokens)


def remove_near_duplicates(sentences: Sequence[str], duplicate_rate: float) -> List[str]:
    """Drop a sentence when more than ``duplicate_rate`` of its distinct (lower-cased) words
    appeared in the sentences before it, dropped ones included."""
    kept, seen = [], set()
    for sentence in sentences:
        words = set(sentence.lower().split())
        if len(words & seen) / len(words) <= duplicate_rate:
            kept.append(sentence)
        seen |= words
    return kept


def truncate(sentences: Sequence[str], max_tokens: int) -> List[str]:
    """The first ``max_tokens`` tokens of the sentences, in sentence order."""
    kept, left = [], max_tokens
    for sentence in sentences:
        tokens = sentence.split()[:left]
        kept.append(" ".join(tokens))
        left -= len(tokens)
        if left <= 0:
            break
    return kept


def hypothesis_sentences(line: str, trunc_len: int = 60, duplicate_rate: float = 0.7,
                         sentence_sep: str = HYPOTHESIS_SENTENCE_SEP) -> List[str]:
    """A decoded line after s2s-ft's CNN/DailyMail post-processing, one sentence a string.
    ``trunc_len`` 0 and ``duplicate_rate`` 0 (or >= 1) switch those steps off, as in s2s-ft."""
    sentences = []
    for sentence in line.strip().split(sentence_sep):
        sentence = fix_tokenization(split_punctuation(sentence))
        for bracket in "()[]":  # brackets glued to words, which fix_tokenization leaves
            sentence = sentence.replace(bracket, f" {PTB_BRACKETS[bracket]} ")
        while "  " in sentence:
            sentence = sentence.replace("  ", " ")
        # (s2s-ft also drops a sentence whose unigram F1 with a kept one exceeds 1.0, which
        # never happens.)
        if len(sentence.split()) > 4:
            sentences.append(sentence)
    if duplicate_rate and duplicate_rate < 1:
        sentences = remove_near_duplicates(sentences, duplicate_rate)
    return truncate(sentences, trunc_len) if trunc_len else sentences


def reference_sentences(line: str, sentence_sep: str = REFERENCE_SENTENCE_SEP) -> List[str]:
    return line.strip().split(f" {sentence_sep} ")


def cnndm_scores(hypotheses: Sequence[str], references: Sequence[str], trunc_len: int = 60,
                 duplicate_rate: float = 0.7, use_stemmer: bool = True,
                 hypothesis_sep: str = HYPOTHESIS_SENTENCE_SEP,
                 reference_sep: str = REFERENCE_SENTENCE_SEP) -> Dict[str, float]:
    """Mean ROUGE-1, ROUGE-2 and sentence-level ROUGE-L F1 (``rouge1``, ``rouge2``, ``rougeL``)
    in percent, after s2s-ft's post-processing of the hypotheses."""
    hyp_texts = ["\n".join(hypothesis_sentences(hyp, trunc_len, duplicate_rate, hypothesis_sep))
                 for hyp in hypotheses]
    ref_texts = ["\n".join(reference_sentences(ref, reference_sep)) for ref in references]
    return rouge_f1(hyp_texts, ref_texts, use_stemmer, summary_level=True)
