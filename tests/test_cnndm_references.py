"""CNN/DailyMail references in the terms of See et al.'s gold files, which s2s-ft scores against:
``prepare_data.py cnndm`` writes ``.ref`` as PTB tokens (NLTK's ``TreebankWordTokenizer``,
``convert_parentheses``), lower case, then the missing final period. Expected lines are worked
out by hand from those rules; then the highlights as a decoder writes them score ROUGE 100
against ``.ref`` through ``score.py --cnndm``, and s2s-ft's cuts (sentences of 4 tokens or
fewer, text past 60 tokens) lower it."""
import json

import pytest
from helpers import run_script, write_lines

from fairseq_unilmv2.prepare.cnndm import prepare_cnndm, reference_sentence

pytest.importorskip("nltk")

# Highlights with contractions, brackets, quotes, dollar amounts, hyphens and numbers with
# commas; each more than 4 tokens, a story's together at most 60, no two alike.
HIGHLIGHTS = {
    "money": ['He didn\'t pay the $1,500 fee (in cash) for the "well-known" car',
              '"We\'re not done," she said of the $2.5 million plan'],
    "team": ["The U.S. team's 3,000 fans weren't happy",
             "Police say the 23-year-old man can't be named (yet)"],
}
# By hand: "didn't" -> "did n't", "$1,500" -> "$ 1,500" (the comma stays inside a number),
# "(" -> "-LRB-", '"' -> "``" opening / "''" closing, "well-known" and "23-year-old" kept
# whole, "we're" -> "we 're", "done," -> "done ,", "team's" -> "team 's", "U.S." kept whole
# inside the line, "can't" -> "ca n't"; lower case; " ." added to every line (none ends with
# an end token: "car", "plan", "happy", "-rrb-").
EXPECTED_REF = {
    "money": "he did n't pay the $ 1,500 fee -lrb- in cash -rrb- for the `` well-known '' car . "
             "<S_SEP> `` we 're not done , '' she said of the $ 2.5 million plan .",
    "team": "the u.s. team 's 3,000 fans were n't happy . <S_SEP> "
            "police say the 23-year-old man ca n't be named -lrb- yet -rrb- .",
}


SHORT = "Markets fell sharply today"  # 4 tokens
LONG = ("Officials in the northern city of Leeds announced new rules for taxi drivers on Monday "
        "after weeks of protests by local residents")


def story(article, highlights):
    return article + "\n\n" + "".join(f"@highlight\n\n{h}\n\n" for h in highlights)


def prepare(tmp_path, highlights_by_name):
    stories = tmp_path / "stories"
    stories.mkdir(parents=True, exist_ok=True)
    for name, highlights in highlights_by_name.items():
        (stories / f"{name}.story").write_text(story(f"The article about {name}.", highlights),
                                               encoding="utf-8")
    out = tmp_path / "out"
    prepare_cnndm([stories], str(out / "test"))
    names = (out / "test.id").read_text().split()
    refs = (out / "test.ref").read_text(encoding="utf-8").split("\n")[:-1]
    return dict(zip(names, refs)), out / "test.ref", names


@pytest.mark.parametrize("highlight, ref", [
    # A closing bracket is no end token once it is -RRB-: the period follows it.
    ("Shares fell (again)", "shares fell -lrb- again -rrb- ."),
    # A closing quote is one: no period after ''.
    ('She called it "a disaster"', "she called it `` a disaster ''"),
    # An end period is split off, not doubled; "!" ends the line.
    ("It cost $5.", "it cost $ 5 ."), ("Wow!", "wow !"),
])
def test_reference_sentence_by_hand(highlight, ref):
    assert reference_sentence(highlight) == ref


def test_ref_file_by_hand(tmp_path):
    refs, _, _ = prepare(tmp_path, HIGHLIGHTS)
    assert refs == EXPECTED_REF


@pytest.fixture(scope="module")
def decoders(tmp_path_factory):
    """Two ways a decoder writes the highlights from an uncased WordPiece vocabulary trained
    on them (small, so that words split into pieces): s2s-ft's (pieces with ``##`` merged)
    and fairseq's ``--bpe bert`` ``D-`` lines (transformers' detokenizer, which also glues
    ``didn't`` and ``1, 500`` back)."""
    tokenizers = pytest.importorskip("tokenizers")
    from fairseq_unilmv2.convert.vocab import wordpiece_tokenizer

    root = tmp_path_factory.mktemp("vocab")
    texts = [h for hs in HIGHLIGHTS.values() for h in hs] + [SHORT, LONG]
    trainer = tokenizers.BertWordPieceTokenizer(lowercase=True)
    trainer.train_from_iterator(texts, vocab_size=120, special_tokens=[
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[X_SEP]"])
    trainer.save_model(str(root))
    bpe = wordpiece_tokenizer(root / "vocab.txt")

    def s2s_ft(text):
        return bpe.encode(text).replace(" ##", "")

    def fairseq_d_line(text):
        return bpe.decode(bpe.encode(text))

    assert any("##" in bpe.encode(t) for t in texts)  # pieces, not only whole words
    assert not any("[UNK]" in bpe.encode(t) for t in texts)
    return {"s2s-ft": s2s_ft, "fairseq": fairseq_d_line}


def score(tmp_path, hyps, ref_file, *flags):
    hyp = write_lines(tmp_path / "hyp.txt", hyps)
    return json.loads(run_script("score.py", "--cnndm", "--hyp", hyp, "--ref", ref_file, "--json",
                                 *flags))


@pytest.mark.parametrize("decoder", ["s2s-ft", "fairseq"])
def test_decoded_highlights_score_100_against_ref(tmp_path, decoders, decoder):
    _, ref_file, names = prepare(tmp_path, HIGHLIGHTS)
    write = decoders[decoder]
    hyps = [" [X_SEP] ".join(write(h) for h in HIGHLIGHTS[name]) for name in names]
    assert "did n't" not in hyps[names.index("money")]  # the decoder's form, not the PTB one
    assert score(tmp_path, hyps, ref_file) == {"rouge1": 100.0, "rouge2": 100.0,
                                               "rougeL": 100.0}


def test_short_sentences_and_long_text_lower_the_score(tmp_path, decoders):
    write = decoders["s2s-ft"]
    # A 4-token sentence: the hypothesis drops it (s2s-ft keeps sentences of more than 4
    # tokens), the reference keeps it: recall, so F1, falls below 100.
    short = {"short": [SHORT, HIGHLIGHTS["money"][0]]}
    _, ref_file, names = prepare(tmp_path / "a", short)
    hyps = [" [X_SEP] ".join(write(h) for h in short["short"])]
    scores = score(tmp_path, hyps, ref_file)
    assert all(value < 100.0 for value in scores.values()), scores
    assert score(tmp_path, [write(short["short"][1])], ref_file)["rouge1"] == \
        pytest.approx(scores["rouge1"], abs=1e-4)  # as if the short sentence were not written

    # Text past 60 tokens: s2s-ft keeps the first 60 (--trunc-len), the reference all of it.
    long = {"long": [HIGHLIGHTS["money"][0], HIGHLIGHTS["team"][0], HIGHLIGHTS["team"][1], LONG]}
    _, ref_file, _ = prepare(tmp_path / "b", long)
    hyps = [" [X_SEP] ".join(write(h) for h in long["long"])]
    assert score(tmp_path, hyps, ref_file, "--trunc-len", "0") == {
        "rouge1": 100.0, "rouge2": 100.0, "rougeL": 100.0}
    cut = score(tmp_path, hyps, ref_file)
    assert all(value < 100.0 for value in cut.values()), cut
