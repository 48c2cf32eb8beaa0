"""``--scoring rouge`` and ``scripts/score.py`` against rouge-score and sacrebleu called directly."""
import json
import subprocess
import sys

import pytest
import sacrebleu
from fairseq import scoring
from rouge_score import rouge_scorer

from fairseq_unilmv2.scoring.rouge import rouge_f1
from helpers import REPO, shared_file, write_lines

HYPOTHESES = [
    "the cats were running in the park",
    "a dog sat on the mat .",
    "completely unrelated words here",
    "",
]
REFERENCES = [
    "the cat ran in the park",
    "the dog is sitting on a mat .",
    "nothing in common at all",
    "an empty hypothesis scores zero",
]


def direct_rouge(hyps, refs):
    """Mean F1 in percent, computed with rouge-score itself (stemming on)."""
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    per_example = [scorer.score(ref, hyp) for hyp, ref in zip(hyps, refs)]
    return {name: 100 * sum(s[name].fmeasure for s in per_example) / len(per_example)
            for name in ("rouge1", "rouge2", "rougeL")}


def test_fairseq_rouge_scorer_matches_rouge_score():
    scorer = scoring.build_scorer("rouge", tgt_dict=None)
    for hyp, ref in zip(HYPOTHESES, REFERENCES):
        scorer.add_string(ref, hyp)  # fairseq's order: reference first
    expected = direct_rouge(HYPOTHESES, REFERENCES)
    assert scorer.scores() == pytest.approx(expected, abs=1e-9)
    assert scorer.score() == pytest.approx(expected["rougeL"], abs=1e-9)
    assert f"ROUGE-1 {expected['rouge1']:.2f}" in scorer.result_string()
    # Stemming is on, as the summarization papers report ROUGE: "cats" matches "cat".
    assert rouge_f1(["the cats"], ["the cat"])["rouge1"] == pytest.approx(100.0)
    assert rouge_f1(["the cats"], ["the cat"], use_stemmer=False)["rouge1"] == pytest.approx(50.0)


def run_score_script(*args):
    return subprocess.run([sys.executable, str(REPO / "scripts" / "score.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def test_score_script_json_matches_direct_computation(tmp_path):
    hyp = write_lines(tmp_path / "hyp.txt", HYPOTHESES)
    ref = write_lines(tmp_path / "ref.txt", REFERENCES)
    proc = run_score_script("--hyp", hyp, "--ref", ref, "--json")
    assert proc.returncode == 0, proc.stderr
    scores = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(scores) == {"rouge1", "rouge2", "rougeL", "bleu", "exact"}
    expected = direct_rouge(HYPOTHESES, REFERENCES)
    expected["bleu"] = sacrebleu.corpus_bleu(HYPOTHESES, [REFERENCES]).score
    expected["exact"] = 100.0 * sum(h == r for h, r in zip(HYPOTHESES, REFERENCES)) / len(REFERENCES)
    assert scores == pytest.approx(expected, abs=1e-3)

    text = run_score_script("--hyp", hyp, "--ref", ref)
    assert text.returncode == 0 and f"BLEU-4 {expected['bleu']:.2f}" in text.stdout


def test_score_script_rejects_misaligned_files(tmp_path):
    hyp = write_lines(tmp_path / "hyp.txt", HYPOTHESES)
    ref = write_lines(tmp_path / "ref.txt", REFERENCES[:2])
    proc = run_score_script("--hyp", hyp, "--ref", ref)
    assert proc.returncode != 0 and "aligned" in proc.stderr


def test_real_questions_score_identically():
    """Question generation references (nqg dev) scored against shuffled questions."""
    refs = shared_file("nqg", "tgt-dev.txt").read_text(encoding="utf-8").splitlines()[:200]
    hyps = refs[1:] + refs[:1]
    scorer = scoring.build_scorer("rouge", tgt_dict=None)
    for hyp, ref in zip(hyps, refs):
        scorer.add_string(ref, hyp)
    assert scorer.scores() == pytest.approx(direct_rouge(hyps, refs), abs=1e-9)


def test_exact_match_counts_lines_equal_to_their_reference():
    from fairseq_unilmv2.scoring.rouge import exact_match
    assert exact_match(["value", " True ", "theses", ""], ["value", "True", "themselves", "x"]) \
        == pytest.approx(50.0)
    assert exact_match([], []) == 0.0
