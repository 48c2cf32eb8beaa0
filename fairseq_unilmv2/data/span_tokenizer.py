"""Subword tokenizers that keep, for every piece, the characters of the original text it covers.

Extractive question answering predicts a span of pieces and must hand back the exact characters
of the context that span stands for (SQuAD's official scripts compare texts). fairseq's
``--bpe bert`` / ``--bpe sentencepiece`` give pieces only, so the ``squad`` task tokenizes with
these instead, which give the same pieces plus ``(start, end)`` character offsets:

- :class:`WordPieceSpanTokenizer`: Hugging Face ``tokenizers``' BERT pipeline (the one behind
  ``BertTokenizerFast``: BERT's normalizer, with clean-up of every Unicode ``C*`` character,
  CJK split, optional lower-casing and accent stripping; BERT's pre-tokenizer; greedy
  longest-match WordPiece) over the vocabulary, whose offsets follow every normalization back
  to the original characters; a piece's end is moved over the combining marks accent
  stripping dropped (a decomposed ``e`` + U+0301 is covered whole). It gives the pieces of
  ``transformers.BertTokenizer``, which fairseq's ``--bpe bert`` calls;
- :class:`SentencePieceSpanTokenizer`: sentencepiece's own piece offsets (byte offsets into the
  original string, turned into character offsets), with surrounding whitespace trimmed.

Pieces are vocabulary strings: WordPiece's ``[UNK]`` and the converted dictionary's specials
are mapped by :func:`piece_ids`.
"""
import unicodedata
from typing import List, Optional, Sequence, Tuple

from ..convert.vocab import SPECIAL_TOKENS, is_cased, read_wordpiece_vocab

Offsets = List[Tuple[int, int]]
WORDPIECE_UNK = "[UNK]"


class SpanTokenizer:
    """``tokenize(text) -> (pieces, offsets)``: ``text[start:end]`` is what a piece covers."""

    def tokenize(self, text: str) -> Tuple[List[str], Offsets]:
        raise NotImplementedError


# ----------------------------------------------------------------------------- WordPiece
class WordPieceSpanTokenizer(SpanTokenizer):
    """BERT's tokenizer over a WordPiece ``vocab.txt``, with character offsets.

    Lower-casing (and accent stripping) follows the vocabulary, as ``scripts/wordpiece.py`` and
    the converter do, unless ``cased`` says otherwise; a cased vocabulary's text is not
    normalized at all (as ``BertTokenizer(do_lower_case=False)``).
    """

    def __init__(self, vocab_path: str, cased: Optional[bool] = None,
                 max_input_chars_per_word: int = 100):
        try:
            from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
        except ImportError as err:
            raise ImportError("the squad task's WordPiece tokenizer needs Hugging Face's "
                              "tokenizers package: pip install tokenizers (it comes with "
                              "transformers)") from err
        tokens = read_wordpiece_vocab(vocab_path)
        if WORDPIECE_UNK not in tokens:
            raise ValueError(f"{vocab_path} has no {WORDPIECE_UNK} token: a BERT WordPiece "
                             "vocab.txt needs it for the words it cannot split; pass the "
                             "checkpoint's own vocab.txt")
        self.vocab = {token: index for index, token in enumerate(tokens)}
        self.cased = is_cased(tokens) if cased is None else cased
        self.max_input_chars_per_word = max_input_chars_per_word
        tokenizer = Tokenizer(models.WordPiece(vocab=self.vocab, unk_token=WORDPIECE_UNK,
                                               max_input_chars_per_word=max_input_chars_per_word))
        tokenizer.normalizer = normalizers.BertNormalizer(
            clean_text=True, handle_chinese_chars=True, strip_accents=not self.cased,
            lowercase=not self.cased)
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        self.tokenizer = tokenizer

    def tokenize(self, text: str) -> Tuple[List[str], Offsets]:
        encoding = self.tokenizer.encode(text, add_special_tokens=False)
        return list(encoding.tokens), _over_trailing_marks(text, encoding.offsets)


def _over_trailing_marks(text: str, offsets: Sequence[Tuple[int, int]]) -> Offsets:
    """Offsets whose end is moved over the combining marks that follow it (up to the next
    piece): accent stripping drops a decomposed accent (``e`` + U+0301) from the normalized
    text, and ``tokenizers`` then ends the piece at its base character."""
    out: Offsets = []
    for i, (start, end) in enumerate(offsets):
        limit = max(end, offsets[i + 1][0]) if i + 1 < len(offsets) else len(text)
        while end < limit and unicodedata.category(text[end]).startswith("M"):
            end += 1
        out.append((start, end))
    return out


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
