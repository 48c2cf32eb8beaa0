"""WordPiece ``vocab.txt`` <-> fairseq ``Dictionary``: the row permutation of the embeddings.

fairseq's ``Dictionary`` starts with its own specials ``<s> <pad> </s> <unk>``, then the symbols
of ``dict.txt`` in file order, and the UniLMv2 tasks append ``<mask>`` last. The released
checkpoints index their embedding rows by the WordPiece vocabulary instead, whose specials sit
anywhere (``[PAD]`` = 0, ``[CLS]`` = 101 ... in BERT's). So the converter writes ``dict.txt`` =
the WordPiece tokens minus the five specials, in vocabulary order, and maps the specials onto
fairseq's (SPEC 6): ``[CLS]`` -> bos, ``[PAD]`` -> pad, ``[SEP]`` -> eos, ``[UNK]`` -> unk,
``[MASK]`` -> mask. After the task appends ``<mask>`` the fairseq dictionary has exactly as many
entries as the WordPiece vocabulary, and :func:`wordpiece_rows` gives, for every fairseq id, the
WordPiece row that holds its embedding (computed from the real dictionary, not assumed).
"""
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import torch
from fairseq.data import Dictionary

from .errors import ConversionError

MASK_SYMBOL = "<mask>"

# WordPiece special token -> the fairseq symbol that takes its embedding row.
SPECIAL_TOKENS: Dict[str, str] = {
    "[CLS]": "<s>",
    "[PAD]": "<pad>",
    "[SEP]": "</s>",
    "[UNK]": "<unk>",
    "[MASK]": MASK_SYMBOL,
}
FAIRSEQ_TO_WORDPIECE: Dict[str, str] = {v: k for k, v in SPECIAL_TOKENS.items()}


def read_wordpiece_vocab(path: Union[str, Path]) -> List[str]:
    """The tokens of a WordPiece ``vocab.txt`` (one a line, line number = row), checked."""
    path = Path(path)
    if not path.is_file():
        raise ConversionError(f"vocabulary file {path} does not exist: pass the WordPiece "
                              "vocab.txt released with the checkpoint (--vocab)")
    tokens = path.read_text(encoding="utf-8").split("\n")
    if tokens and tokens[-1] == "":
        tokens.pop()  # the final newline
    check_wordpiece_vocab(tokens, str(path))
    return tokens


def read_tokenizer_json_vocab(path: Union[str, Path]) -> List[str]:
    """The WordPiece tokens, in id order, of a Hugging Face ``tokenizer.json`` (what a model
    directory ships instead of ``vocab.txt`` when only the fast tokenizer was saved)."""
    import json

    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ConversionError(f"cannot read {path} as a tokenizer.json: {err}") from None
    model = document.get("model") if isinstance(document, dict) else None
    if not isinstance(model, dict) or model.get("type") != "WordPiece":
        kind = model.get("type") if isinstance(model, dict) else None
        raise ConversionError(f"{path} holds a {kind or 'unknown'} tokenizer, not WordPiece: "
                              "only BERT-style (WordPiece) vocabularies convert")
    vocab = model.get("vocab")
    if not isinstance(vocab, dict) or sorted(vocab.values()) != list(range(len(vocab))):
        raise ConversionError(f"{path}: model.vocab must map each token to a distinct id "
                              f"0..{len(vocab or ()) - 1}")
    tokens = sorted(vocab, key=vocab.get)
    check_wordpiece_vocab(tokens, str(path))
    return tokens


def read_vocab(path: Union[str, Path]) -> List[str]:
    """A WordPiece ``vocab.txt``, or the vocabulary of a ``tokenizer.json`` (by its name)."""
    if Path(path).suffix == ".json":
        return read_tokenizer_json_vocab(path)
    return read_wordpiece_vocab(path)


def write_wordpiece_vocab(tokens: Sequence[str], path: Union[str, Path]) -> None:
    """A ``vocab.txt``: one token a line, line number = row."""
    Path(path).write_text("".join(f"{token}\n" for token in tokens), encoding="utf-8")


def check_wordpiece_vocab(tokens: Sequence[str], where: str = "the vocabulary") -> None:
    """Every row a distinct token that a fairseq dict.txt line can hold, all five specials."""
    seen: Dict[str, int] = {}
    for row, token in enumerate(tokens):
        if token.endswith("\r"):
            raise ConversionError(f"{where}, line {row + 1}: Windows line ending; convert the "
                                  "file to Unix line endings (dos2unix)")
        if token == "" or " " in token:
            raise ConversionError(f"{where}, line {row + 1}: token {token!r} is empty or holds "
                                  "a space; a WordPiece vocab.txt has one token a line")
        if token in FAIRSEQ_TO_WORDPIECE:
            raise ConversionError(f"{where}, line {row + 1}: token {token!r} is a fairseq "
                                  "special symbol and would collide with it")
        if token in seen:
            raise ConversionError(f"{where}: token {token!r} appears on lines {seen[token] + 1} "
                                  f"and {row + 1}; each row needs a distinct token")
        seen[token] = row
    missing = [t for t in SPECIAL_TOKENS if t not in seen]
    if missing:
        raise ConversionError(f"{where} lacks the special token(s) {', '.join(missing)}; "
                              "UniLMv2 / BERT vocabularies have [CLS] [SEP] [PAD] [UNK] [MASK]")


def is_cased(tokens: Sequence[str]) -> bool:
    """True when the vocabulary holds upper-case word pieces (an uncased one never does)."""
    return any(t != t.lower() for t in tokens if not (t.startswith("[") and t.endswith("]")))


def wordpiece_tokenizer(vocab: Union[str, Path], cased: Optional[bool] = None):
    """fairseq's ``--bpe bert`` tokenizer over a WordPiece ``vocab.txt``; lower-casing follows
    the vocabulary (:func:`is_cased`) unless ``cased`` says otherwise."""
    from fairseq.data.encoders.hf_bert_bpe import BertBPE, BertBPEConfig

    cased = is_cased(read_wordpiece_vocab(vocab)) if cased is None else cased
    return BertBPE(BertBPEConfig(bpe_cased=cased, bpe_vocab_file=str(vocab)))


def dictionary_symbols(tokens: Sequence[str]) -> List[str]:
    """The symbols of ``dict.txt``: the WordPiece tokens in order, without the five specials."""
    return [t for t in tokens if t not in SPECIAL_TOKENS]


def write_fairseq_dict(tokens: Sequence[str], path: Union[str, Path]) -> None:
    """Write ``dict.txt``. Counts decrease down the file so that even a count-sorted reload
    would keep the order; fairseq's ``Dictionary.load`` keeps file order anyway."""
    symbols = dictionary_symbols(tokens)
    lines = [f"{symbol} {len(symbols) - i}" for i, symbol in enumerate(symbols)]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def load_task_dictionary(path: Union[str, Path]) -> Dictionary:
    """``dict.txt`` as the UniLMv2 tasks load it: fairseq specials, the file, then ``<mask>``."""
    dictionary = Dictionary.load(str(path))
    dictionary.add_symbol(MASK_SYMBOL)
    return dictionary


def wordpiece_rows(dictionary: Dictionary, tokens: Sequence[str]) -> torch.Tensor:
    """For each fairseq id, the WordPiece row holding its embedding (a LongTensor).

    ``new_table = old_table[wordpiece_rows(...)]`` permutes an embedding table or an output
    bias from WordPiece order to fairseq order.
    """
    row_of = {token: row for row, token in enumerate(tokens)}
    rows = []
    for index, symbol in enumerate(dictionary.symbols):
        token = FAIRSEQ_TO_WORDPIECE.get(symbol, symbol)
        if token not in row_of:
            raise ConversionError(
                f"fairseq dictionary symbol {symbol!r} (id {index}) has no row in the WordPiece "
                "vocabulary: binarize with the dict.txt written by scripts/convert_checkpoint.py "
                "(fairseq-preprocess --srcdict DIR/dict.txt), not a dictionary built from data")
        rows.append(row_of[token])
    if len(rows) != len(tokens):
        raise ConversionError(
            f"the fairseq dictionary has {len(rows)} entries but the WordPiece vocabulary "
            f"{len(tokens)}: the task must add exactly one symbol ({MASK_SYMBOL}) to dict.txt")
    return torch.tensor(rows, dtype=torch.long)


def wordpiece_tokens(dictionary: Dictionary) -> List[str]:
    """A WordPiece vocabulary for a fairseq dictionary (export): specials renamed back,
    ``[PAD]`` first as BERT expects (``pad_token_id`` 0), then the other symbols in id order."""
    tokens = [FAIRSEQ_TO_WORDPIECE.get(s, s) for s in dictionary.symbols]
    pad = FAIRSEQ_TO_WORDPIECE[dictionary.pad_word]
    return [pad] + [t for t in tokens if t != pad]
