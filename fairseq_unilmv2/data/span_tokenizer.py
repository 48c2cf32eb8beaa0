"""Subword tokenizers that keep, for every piece, the characters of the original text it covers.

Extractive question answering predicts a span of pieces and must hand back the exact characters
of the context that span stands for (SQuAD's official scripts compare texts). fairseq's
``--bpe bert`` / ``--bpe sentencepiece`` give pieces only, so the ``squad`` task tokenizes with
these instead, which give the same pieces plus ``(start, end)`` character offsets:

- :class:`WordPieceSpanTokenizer`: BERT's basic tokenizer (clean-up, CJK split, optional
  lower-casing and accent stripping, punctuation split) then greedy longest-match WordPiece, as
  ``transformers.BertTokenizer`` (fairseq's ``--bpe bert``) does, written per character so that
  each normalized character remembers the original one it came from;
- :class:`SentencePieceSpanTokenizer`: sentencepiece's own piece offsets (byte offsets into the
  original string, turned into character offsets), with surrounding whitespace trimmed.

Pieces are vocabulary strings: WordPiece's ``[UNK]`` and the converted dictionary's specials
are mapped by :func:`piece_ids`.
"""
import unicodedata
from typing import List, Optional, Sequence, Tuple

from ..convert.vocab import SPECIAL_TOKENS, is_cased, read_wordpiece_vocab

Offsets = List[Tuple[int, int]]


class SpanTokenizer:
    """``tokenize(text) -> (pieces, offsets)``: ``text[start:end]`` is what a piece covers."""

    def tokenize(self, text: str) -> Tuple[List[str], Offsets]:
        raise NotImplementedError


# ----------------------------------------------------------------------------- WordPiece
def _is_whitespace(char: str) -> bool:
    if char in (" ", "\t", "\n", "\r"):
        return True
    return unicodedata.category(char) == "Zs"


def _is_control(char: str) -> bool:
    if char in ("\t", "\n", "\r"):
        return False
    return unicodedata.category(char) in ("Cc", "Cf")


def _is_punctuation(char: str) -> bool:
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _is_cjk(char: str) -> bool:
    cp = ord(char)
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
            or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF
            or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


class WordPieceSpanTokenizer(SpanTokenizer):
    """BERT's tokenizer over a WordPiece ``vocab.txt``, with character offsets.

    Lower-casing (and accent stripping) follows the vocabulary, as ``scripts/wordpiece.py`` and
    the converter do, unless ``cased`` says otherwise.
    """

    def __init__(self, vocab_path: str, cased: Optional[bool] = None,
                 max_input_chars_per_word: int = 100):
        tokens = read_wordpiece_vocab(vocab_path)
        self.vocab = set(tokens)
        self.cased = is_cased(tokens) if cased is None else cased
        self.max_input_chars_per_word = max_input_chars_per_word

    def _normalize(self, text: str) -> Tuple[str, List[int]]:
        """Normalized text and, per normalized character, the index of its original one.
        Separators become ' '; lower-casing and accent stripping (uncased) or NFC (cased)
        apply per character group (a base character and its combining marks)."""
        out: List[str] = []
        origin: List[int] = []
        i = 0
        while i < len(text):
            j = i + 1
            while j < len(text) and unicodedata.combining(text[j]):
                j += 1  # keep combining marks with their base character
            group = text[i:j]
            if len(group) == 1 and (ord(group) in (0, 0xFFFD) or _is_control(group)):
                i = j
                continue
            if len(group) == 1 and _is_whitespace(group):
                normalized = " "
            elif self.cased:
                normalized = unicodedata.normalize("NFC", group)
            else:
                normalized = "".join(c for c in unicodedata.normalize("NFD", group.lower())
                                     if unicodedata.category(c) != "Mn")
            if len(group) == 1 and _is_cjk(group):
                normalized = f" {normalized} "
            for k, char in enumerate(normalized):
                out.append(char)
                # Characters of a group map onto the group's own characters where they can.
                origin.append(i + min(k, len(group) - 1))
            i = j
        return "".join(out), origin

    def _words(self, text: str) -> List[Tuple[int, int]]:
        """(start, end) in the normalized text of each word after the punctuation split."""
        words = []
        start = None
        for k, char in enumerate(text):
            if char == " ":
                if start is not None:
                    words.append((start, k))
                start = None
            elif _is_punctuation(char):
                if start is not None:
                    words.append((start, k))
                words.append((k, k + 1))
                start = None
            elif start is None:
                start = k
        if start is not None:
            words.append((start, len(text)))
        return words

    def _wordpieces(self, word: str) -> Optional[List[Tuple[str, int, int]]]:
        """Greedy longest-match pieces of one word as (piece, start, end), None if it fails."""
        if len(word) > self.max_input_chars_per_word:
            return None
        pieces, start = [], 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.vocab:
                    break
                end -= 1
            if end == start:
                return None
            pieces.append((piece, start, end))
            start = end
        return pieces

    def tokenize(self, text: str) -> Tuple[List[str], Offsets]:
        normalized, origin = self._normalize(text)
        pieces: List[str] = []
        offsets: Offsets = []
        for word_start, word_end in self._words(normalized):
            found = self._wordpieces(normalized[word_start:word_end])
            if found is None:
                found = [("[UNK]", 0, word_end - word_start)]
            for piece, start, end in found:
                pieces.append(piece)
                offsets.append((origin[word_start + start], origin[word_start + end - 1] + 1))
        return pieces, offsets


# ----------------------------------------------------------------------------- sentencepiece
class SentencePieceSpanTokenizer(SpanTokenizer):
    """A sentencepiece model's pieces (as ``sp.encode(text, out_type=str)`` gives them, the
    strings the quickstart's binarized data holds) with character offsets: sentencepiece
    reports each piece's byte span in the original string; leading / trailing whitespace (the
    ``▁`` of a word start) is trimmed off the span, so a piece of only ``▁`` covers nothing."""

    def __init__(self, model_path: str):
        import sentencepiece as spm

        self.model_path = model_path
        self.processor = spm.SentencePieceProcessor(model_file=str(model_path))

    def tokenize(self, text: str) -> Tuple[List[str], Offsets]:
        encoded = self.processor.encode(text, out_type="proto")
        data = text.encode("utf-8")
        # Byte offset -> character offset (every character boundary of the UTF-8 text).
        char_at = [0] * (len(data) + 1)
        position = 0
        for index, char in enumerate(text):
            width = len(char.encode("utf-8"))
            for b in range(width):
                char_at[position + b] = index
            position += width
        char_at[len(data)] = len(text)
        pieces, offsets = [], []
        for piece in encoded.pieces:
            start, end = char_at[piece.begin], char_at[piece.end]
            while start < end and text[start].isspace():
                start += 1
            while end > start and text[end - 1].isspace():
                end -= 1
            # An unknown character comes out as <unk>; its surface is what fairseq's data holds.
            pieces.append(piece.surface if piece.id == self.processor.unk_id() and piece.surface
                          else piece.piece)
            offsets.append((start, end))
        return pieces, offsets


def build_span_tokenizer(wordpiece_vocab: Optional[str] = None, spm_model: Optional[str] = None,
                         cased: Optional[bool] = None) -> SpanTokenizer:
    """The tokenizer named by ``--wordpiece-vocab`` or ``--spm-model`` (exactly one)."""
    import os

    if bool(wordpiece_vocab) == bool(spm_model):
        raise ValueError("the squad task needs the checkpoint's tokenizer: give exactly one of "
                         "--wordpiece-vocab vocab.txt (a converted checkpoint's WordPiece "
                         "vocabulary) or --spm-model spm.model (a sentencepiece model)"
                         + ("; both were given" if wordpiece_vocab else ""))
    path = wordpiece_vocab or spm_model
    if not os.path.isfile(path):
        flag = "--wordpiece-vocab" if wordpiece_vocab else "--spm-model"
        raise FileNotFoundError(f"{flag} {path} does not exist (looked relative to "
                                f"{os.getcwd()}): pass the tokenizer file the checkpoint's data "
                                "was tokenized with")
    if wordpiece_vocab:
        return WordPieceSpanTokenizer(wordpiece_vocab, cased=cased)
    return SentencePieceSpanTokenizer(spm_model)


def piece_ids(pieces: Sequence[str], dictionary) -> List[int]:
    """Dictionary ids of pieces; WordPiece specials map to fairseq's (``[UNK]`` -> ``<unk>``),
    pieces the dictionary lacks to ``<unk>``."""
    return [dictionary.index(SPECIAL_TOKENS.get(p, p)) for p in pieces]
