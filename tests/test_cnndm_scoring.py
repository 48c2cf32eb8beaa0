"""``scripts/score.py --cnndm``: s2s-ft's CNN/DailyMail post-processing and sentence-level
ROUGE-L, on examples worked out by hand from ``evaluations/eval_for_cnndm.py`` (issue 12)."""
import json

import pytest
from helpers import run_script, write_lines

from fairseq_unilmv2.scoring.cnndm import (cnndm_scores, fix_tokenization, hypothesis_sentences,
                                           reference_sentences)


@pytest.mark.parametrize("tokens, ptb", [
    # brackets, a quote pair, "3 , 000", "..."; lower-case letters are no acronym
    ('the u . s . ( and others ) won 3 , 000 dollars . . . he said " great "',
     "the u . s . -LRB- and others -RRB- won 3,000 dollars ... he said `` great ''"),
    # 's, n't, a hyphen between words
    ("it ' s a well - known fact that she didn ' t", "it 's a well-known fact that she did n't"),
    # a decimal, "--", a hyphen at the end stays a token
    ("2 . 5 million -- or - so -", "2.5 million -- or-so -"),
    # single quotes open with ` and close with '
    ("' hello ' world", "` hello ' world"),
    # a hyphen next to punctuation is not joined
    ("yes , - no", "yes , - no"),
    # capital letters: "U . N ." becomes "U.N." and, as in s2s-ft, its last period stays
    ("the U . N . says", "the U.N. . says"),
])
def test_fix_tokenization_by_hand(tokens, ptb):
    assert fix_tokenization(tokens) == ptb


HYPOTHESIS = ("the cat sat on the mat . [X_SEP] a dog ran . [X_SEP] the cat sat on a mat today . "
              "[X_SEP] police said the man ( 45 ) was arrested .")


def test_post_processing_by_hand():
    # "a dog ran ." has 4 tokens: dropped. "the cat sat on a mat today ." has 8 distinct words,
    # 6 of them (the cat sat on mat .) in the first sentence: 0.75 > 0.7, dropped. The last has
    # 2 of 10 seen before: kept, its brackets as -LRB- / -RRB-.
    assert hypothesis_sentences(HYPOTHESIS) == [
        "the cat sat on the mat .", "police said the man -LRB- 45 -RRB- was arrested ."]
    # 10 tokens in all: 7 from the first sentence, 3 from the next.
    assert hypothesis_sentences(HYPOTHESIS, trunc_len=10) == [
        "the cat sat on the mat .", "police said the"]
    # duplicate_rate 0.8 keeps the near duplicate (0.75); 0 switches the step off.
    assert len(hypothesis_sentences(HYPOTHESIS, duplicate_rate=0.8)) == 3
    assert len(hypothesis_sentences(HYPOTHESIS, duplicate_rate=0)) == 3


def test_reference_sentences_split_at_s_sep():
    assert reference_sentences(" one two . <S_SEP> three four . \n") == ["one two .",
                                                                         "three four ."]


# The same two sentences in the other order: the summary-level LCS matches every word of each
# reference sentence (ROUGE-L 100), where the LCS of the whole lines covers only one sentence
# (5 of 10 words: 50). ROUGE-2: 8 of the 9 bigrams match ("now red" / "away the" do not).
SWAPPED_HYP = "the sky was dim now [X_SEP] red fox ran far away"
SWAPPED_REF = "red fox ran far away <S_SEP> the sky was dim now"


def test_sentence_level_rouge_l_by_hand():
    scores = cnndm_scores([SWAPPED_HYP], [SWAPPED_REF])
    assert scores["rouge1"] == pytest.approx(100.0)
    assert scores["rouge2"] == pytest.approx(100 * 8 / 9)
    assert scores["rougeL"] == pytest.approx(100.0)


def test_score_script_cnndm(tmp_path):
    hyp = write_lines(tmp_path / "hyp", [SWAPPED_HYP, "a b c"])  # too short: nothing is left
    ref = write_lines(tmp_path / "ref", [SWAPPED_REF, "a b c d e"])
    cnndm = json.loads(run_script("score.py", "--cnndm", "--hyp", hyp, "--ref", ref, "--json"))
    assert cnndm == pytest.approx({"rouge1": 50.0, "rouge2": 100 * 8 / 9 / 2, "rougeL": 50.0})
    # Without --cnndm the swapped sentences score as whole lines.
    hyp = write_lines(tmp_path / "hyp1", [SWAPPED_HYP])
    ref = write_lines(tmp_path / "ref1", [SWAPPED_REF])
    plain = json.loads(run_script("score.py", "--hyp", hyp, "--ref", ref, "--json"))
    assert plain["rougeL"] < 50


@pytest.mark.parametrize("text, split", [
    # fairseq's --bpe bert D- lines glue punctuation back: split as s2s-ft's decoder writes it
    ("he didn't pay 1, 500 for u. s. stock.", "he didn ' t pay 1 , 500 for u . s . stock ."),
    # already split: unchanged
    ("he didn ' t pay 1 , 500", "he didn ' t pay 1 , 500"),
    # PTB tokens stay whole
    ("-LRB- cnn -rrb- he did n't say `` it 's '' -- no ...",
     "-LRB- cnn -rrb- he did n't say `` it 's '' -- no ..."),
])
def test_split_punctuation_by_hand(text, split):
    from fairseq_unilmv2.scoring.cnndm import split_punctuation

    assert split_punctuation(text) == split


def test_glued_and_split_hypotheses_post_process_alike():
    glued = "he didn't pay $ 1, 500 ( in cash ) for the \" well - known \" car."
    split = "he didn ' t pay $ 1 , 500 ( in cash ) for the \" well - known \" car ."
    assert hypothesis_sentences(glued) == hypothesis_sentences(split) == [
        "he did n't pay $ 1,500 -LRB- in cash -RRB- for the `` well-known '' car ."]
