"""``score.py --qg``: question generation scored as Du et al.'s qgevalcap, called as UniLM's
QG evaluation calls it, against figures worked out by hand and figures recorded from UniLM's
own evaluation scripts."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from fairseq_unilmv2.scoring.qg import evaluate_qg, group_by_key, prepare_hypothesis
from helpers import REPO, write_lines

pytest.importorskip("pycocoevalcap")

# Five questions of four examples: lines 1 and 5 have one key once stripped and lower-cased
# (their questions pool, line 5's hypothesis is the one scored); line 2 differs by a double
# space. Hypotheses are WordPiece pieces as fairseq-generate's H- lines print them.
KEYS = ["The cat sat on the mat . [SEP] the mat",
        "the cat sat on the mat .  [SEP] the mat",
        "A dog ( a puppy ) walked in the park [SEP] the park",
        "The program did not print 1,000 lines [SEP] 1,000",
        " the cat sat on the mat . [SEP] the mat"]
HYPOTHESES = ["what did a cat sit upon ?",
              "where did the cat sit ?",
              "where was the dog ( a puppy ) walk ##ing ?",
              "what didn ' t the program print 1 , 000 of ?",
              "where did the cat sit on the mat ?"]
UNILM_REFERENCES = ["where did the cat sit ?",  # UniLM's test.q.tok.txt: WordPiece
                    "what did the cat sit on ?",
                    "where was the dog ( a pup ##py ) walk ##ing ?",
                    "what didn ' t the program print 1 , 000 of ?",
                    "what did the cat do on the mat ?"]
DU_REFERENCES = ["where did the cat sit ?",  # nqg's tgt-*.txt: PTB tokens
                 "what did the cat sit on ?",
                 "where was the dog -lrb- a puppy -rrb- walking ?",
                 "what did n't the program print 1,000 of ?",
                 "what did the cat do on the mat ?"]

# Recorded from microsoft/unilm's unilm-v1/src/qg scripts (Python 2; run under Python 3 with
# its three Python-2-only lines removed, over pycocoevalcap 1.2's bleu/meteor/rouge modules,
# which are nqg's qgevalcap ported line for line), the hypotheses given with their ## pieces
# joined as UniLM's decoder writes them:
#   git show HEAD:unilm-v1/src/qg/$F.py | sed -e '/reload(sys)/d' -e '/setdefaultencoding/d' \
#       -e "s/\.encode('utf-8')//" > $F.py
#   sed 's/ ##//g' hyp.txt > hyp_joined.txt
#   PYTHONPATH=$SITE_PACKAGES/pycocoevalcap python eval_on_unilm_tokenized_ref.py \
#       --out_file hyp_joined.txt --src_file key.txt --tgt_file ref_unilm.txt
#   PYTHONPATH=$SITE_PACKAGES/pycocoevalcap python eval.py \
#       --out_file hyp_joined.txt --src_file key.txt --tgt_file ref_du.txt
RECORDED = {
    "unilm": {"bleu1": 94.703, "bleu2": 91.541, "bleu3": 88.923, "bleu4": 86.020,
              "meteor": 58.141, "rougeL": 91.347},
    "du": {"bleu1": 94.246, "bleu2": 90.754, "bleu3": 87.795, "bleu4": 84.414,
           "meteor": 57.515, "rougeL": 91.347},
}


def run_score(*args, env=None):
    return subprocess.run([sys.executable, str(REPO / "scripts" / "score.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=300, env=env)


def write_case(tmp_path, references):
    return (write_lines(tmp_path / "hyp.txt", HYPOTHESES),
            write_lines(tmp_path / "ref.txt", references),
            write_lines(tmp_path / "key.txt", KEYS))


@pytest.mark.skipif(shutil.which("java") is None, reason="METEOR 1.5 needs java")
@pytest.mark.parametrize("tokenization", ["unilm", "du"])
def test_score_qg_matches_unilm_evaluation_scripts(tmp_path, tokenization):
    references = UNILM_REFERENCES if tokenization == "unilm" else DU_REFERENCES
    hyp, ref, key = write_case(tmp_path, references)
    proc = run_score("--qg", "--hyp", hyp, "--ref", ref, "--src", key, "--json",
                     "--qg-references", tokenization)
    assert proc.returncode == 0, proc.stderr
    scores = json.loads(proc.stdout.strip().splitlines()[-1])
    assert list(scores) == ["bleu1", "bleu2", "bleu3", "bleu4", "meteor", "rougeL"]
    assert scores == pytest.approx(RECORDED[tokenization], abs=1e-3)


def test_bleu_and_rouge_l_by_hand():
    # One example: 3 of 4 unigrams, 2 of 3 bigrams, 1 of 2 trigrams match, lengths equal.
    scores, _ = evaluate_qg(["a b c e"], ["a b c d"], ["k"], meteor=False)
    assert scores["bleu1"] == pytest.approx(75.0, abs=1e-4)
    assert scores["bleu2"] == pytest.approx(100 * (3 / 4 * 2 / 3) ** 0.5, abs=1e-4)
    assert scores["bleu3"] == pytest.approx(100 * (3 / 4 * 2 / 3 * 1 / 2) ** (1 / 3), abs=1e-4)
    assert scores["bleu4"] < 0.1  # no 4-gram matches (the scorer's 1e-9 smoothing)
    # LCS 3: precision = recall = 3/4, so the beta-1.2 F-measure is 3/4 too.
    assert scores["rougeL"] == pytest.approx(75.0, abs=1e-4)
    assert scores["meteor"] is None


def test_identical_keys_pool_references_and_keep_the_last_hypothesis():
    # Both lines are one example: references "a b c d" and "z z", hypothesis "a b c e" (the
    # first hypothesis, "x y", is replaced). Its best reference gives BLEU-1 and ROUGE-L 3/4;
    # "x y" would score 0.
    scores, _ = evaluate_qg(["x y", "a b c e"], ["a b c d", "z z"], ["K ", "k"], meteor=False)
    assert scores["bleu1"] == pytest.approx(75.0, abs=1e-4)
    assert scores["rougeL"] == pytest.approx(75.0, abs=1e-4)
    gts, res = group_by_key(["x y", "a b c e"], ["a b c d", "z z"], ["K ", "k"])
    assert gts == {"k": ["a b c d", "z z"]} and res == {"k": ["a b c e"]}


def test_hypothesis_preprocessing():
    assert prepare_hypothesis("Where was play ##ed ( Paris ) ?") == "where was played ( paris ) ?"
    assert prepare_hypothesis("Where was play ##ed ( Paris ) ?", "du") == \
        "where was played -lrb- paris -rrb- ?"
    assert prepare_hypothesis("who didn ' t pay $ 3 , 000 & [UNK] ?", "du") == \
        "who did n't pay $ 3,000 &amp; unk ?"


def test_without_java_meteor_is_unavailable_and_the_rest_prints(tmp_path):
    hyp, ref, key = write_case(tmp_path, UNILM_REFERENCES)
    env = dict(os.environ, PATH=str(tmp_path / "no-java-here"))
    proc = run_score("--qg", "--hyp", hyp, "--ref", ref, "--src", key, "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "METEOR unavailable: java is not on the PATH" in proc.stderr
    scores = json.loads(proc.stdout.strip().splitlines()[-1])
    assert scores["meteor"] is None
    expected = {k: v for k, v in RECORDED["unilm"].items() if k != "meteor"}
    assert {k: v for k, v in scores.items() if k != "meteor"} == pytest.approx(expected, abs=1e-3)
    text = run_score("--qg", "--hyp", hyp, "--ref", ref, "--src", key, env=env)
    assert "BLEU-4 86.02  METEOR n/a  ROUGE-L 91.35  (5 questions, 4 examples" in text.stdout


def test_qg_options_are_checked(tmp_path):
    hyp, ref, key = write_case(tmp_path, UNILM_REFERENCES)
    both = run_score("--qg", "--cnndm", "--hyp", hyp, "--ref", ref, "--src", key)
    assert both.returncode == 2 and "not allowed with argument" in both.stderr
    no_key = run_score("--qg", "--hyp", hyp, "--ref", ref)
    assert no_key.returncode == 2 and "--qg needs --src" in no_key.stderr
    short_key = write_lines(tmp_path / "short.txt", KEYS[:3])
    misaligned = run_score("--qg", "--hyp", hyp, "--ref", ref, "--src", short_key)
    assert misaligned.returncode == 2 and "--src has 3 lines but --hyp has 5" in misaligned.stderr
