"""ROUGE-1/2/L F1 (rouge-score, Porter stemming), BLEU-4 (sacrebleu) and exact match, as
percentages.

One module computes the figures; ``--scoring rouge`` in ``fairseq-generate`` and
``scripts/score.py`` both call :func:`rouge_f1` / :func:`corpus_scores`.

ROUGE is the mean over examples of each example's F1, with stemming on, as the summarization
papers report it; BLEU-4 is sacrebleu's corpus BLEU with its default 13a tokenizer.
"""
from dataclasses import dataclass, field
from typing import Dict, Sequence

from fairseq.dataclass import FairseqDataclass
from fairseq.scoring import BaseScorer, register_scorer

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


def rouge_f1(hypotheses: Sequence[str], references: Sequence[str],
             use_stemmer: bool = True, summary_level: bool = False) -> Dict[str, float]:
    """Mean ROUGE-1/2/L F1 over aligned examples, in percent.

    With ``summary_level`` the texts hold one sentence a line and ``rougeL`` is rouge-score's
    ``rougeLsum`` (the longest common subsequences sentence by sentence), as the CNN/DailyMail
    papers report it (:mod:`.cnndm`)."""
    from rouge_score import rouge_scorer

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references: "
                         "the files must have one example a line, aligned")
    if not hypotheses:
        return {name: 0.0 for name in ROUGE_TYPES}
    # The rouge-score figure behind each reported one.
    computed = {"rouge1": "rouge1", "rouge2": "rouge2",
                "rougeL": "rougeLsum" if summary_level else "rougeL"}
    scorer = rouge_scorer.RougeScorer(list(computed.values()), use_stemmer=use_stemmer)
    totals = dict.fromkeys(ROUGE_TYPES, 0.0)
    for hyp, ref in zip(hypotheses, references):
        scores = scorer.score(ref, hyp)  # rouge-score takes (target, prediction)
        for name in ROUGE_TYPES:
            totals[name] += scores[computed[name]].fmeasure
    return {name: 100.0 * total / len(hypotheses) for name, total in totals.items()}


def bleu4(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """sacrebleu corpus BLEU-4, in percent."""
    import sacrebleu

    return float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)]).score)


def exact_match(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Percentage of hypotheses equal to their reference (surrounding spaces ignored)."""
    if not hypotheses:
        return 0.0
    same = sum(h.strip() == r.strip() for h, r in zip(hypotheses, references))
    return 100.0 * same / len(hypotheses)


def corpus_scores(hypotheses: Sequence[str], references: Sequence[str],
                  use_stemmer: bool = True) -> Dict[str, float]:
    """``{"rouge1", "rouge2", "rougeL", "bleu", "exact"}`` in percent."""
    scores = rouge_f1(hypotheses, references, use_stemmer)
    scores["bleu"] = bleu4(hypotheses, references)
    scores["exact"] = exact_match(hypotheses, references)
    return scores


@dataclass
class RougeScorerConfig(FairseqDataclass):
    rouge_use_stemmer: bool = field(default=True, metadata={
        "help": "Porter-stem words before matching (as the summarization papers report ROUGE)"})


@register_scorer("rouge", dataclass=RougeScorerConfig)
class RougeScorer(BaseScorer):
    """``--scoring rouge``: ROUGE-1/2/L F1 of the detokenized hypotheses against references."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self.use_stemmer = getattr(cfg, "rouge_use_stemmer", True)

    def scores(self) -> Dict[str, float]:
        return rouge_f1(self.pred, self.ref, self.use_stemmer)

    def score(self) -> float:
        """ROUGE-L F1 (the single figure fairseq asks a scorer for)."""
        return self.scores()["rougeL"]

    def result_string(self) -> str:
        scores = self.scores()
        return (f"ROUGE-1 {scores['rouge1']:.2f} ROUGE-2 {scores['rouge2']:.2f} "
                f"ROUGE-L {scores['rougeL']:.2f} (F1, {len(self.pred)} examples)")
