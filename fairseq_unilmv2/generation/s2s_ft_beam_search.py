"""``--s2s-ft-search``: the beam search of s2s-ft's ``decode_seq2seq.py``
(``BertForSeq2SeqDecoder.beam_search`` in ``s2s_ft/modeling_decoding.py``), on this project's
encoder and incremental decoder.

Where it differs from fairseq's ``SequenceGenerator``:

- it runs ``max_tgt_length`` frames (``--max-len-b``) whatever happens. A hypothesis that chose
  [SEP] stays in the beam and keeps competing with a ``-10000`` penalty a frame; the answer is
  chosen among every hypothesis that ended with [SEP] at any frame, plus the unfinished ones at
  the last frame (or at the first frame where every beam ended with [SEP]);
- the length penalty is GNMT's: a score over ``((5 + |y|) / 6) ** alpha`` (``|y|`` counting the
  [SEP]), applied only when ``alpha = --lenpen`` is above 0;
- blocked n-grams (``--no-repeat-ngram-size``, with ``--no-repeat-ngram-exempt`` words) and
  [SEP] before ``--min-len`` cost ``-10000``, not ``-inf``;
- beam 1 is s2s-ft's greedy decoding: no n-gram blocking and no minimum length.

The returned hypotheses follow fairseq's contract (``tokens`` ending with eos, ``score``,
``positional_scores``, ``attention``, ``alignment``), best first; the first is s2s-ft's answer,
its tokens cut at the first [SEP] or [PAD] as ``decode_seq2seq.py`` cuts them.
"""
import math
from typing import AbstractSet, Dict, List, Optional

import torch
from fairseq.data import Dictionary
from torch import nn

from .ngram_blocking import blocked_words

# s2s-ft's soft penalty for blocked n-grams, early [SEP] and continuing after [SEP].
PENALTY = -10000.0


def gnmt_length_penalty(length: int, alpha: float) -> float:
    """GNMT's ``((5 + length) / 6) ** alpha``, which s2s-ft divides a finished score by."""
    return math.pow((5 + length) / 6.0, alpha)


def normalized_score(score: float, length: int, alpha: float) -> float:
    """The score s2s-ft ranks hypotheses by: GNMT-normalized only when ``alpha > 0``."""
    return score / gnmt_length_penalty(length, alpha) if alpha > 0 else score


class S2SFtBeamSearch(nn.Module):
    """fairseq generator interface (``generate(models, sample, ...)``) over s2s-ft's search."""

    def __init__(self, models, tgt_dict: Dictionary, beam_size: int, max_frames: int,
                 min_len: int = 1, alpha: float = 0.0, no_repeat_ngram_size: int = 0,
                 exempt_words: AbstractSet[int] = frozenset()):
        super().__init__()
        if len(models) != 1:
            raise ValueError(f"--s2s-ft-search decodes with one model, got an ensemble of "
                             f"{len(models)}: pass a single checkpoint to --path")
        self.model = models[0]
        self.model.eval()
        self.tgt_dict = tgt_dict
        self.eos, self.pad = tgt_dict.eos(), tgt_dict.pad()
        self.beam_size = beam_size
        self.max_frames = max_frames
        greedy = beam_size == 1  # s2s-ft's greedy path ignores both settings
        self.min_len = 0 if greedy else min_len
        self.no_repeat_ngram_size = 0 if greedy else no_repeat_ngram_size
        self.alpha = alpha
        self.exempt_words = frozenset(exempt_words)
        # fairseq-generate / -interactive strip these from the printed hypotheses.
        self.symbols_to_strip_from_output = {self.eos}

    @torch.no_grad()
    def generate(self, models, sample: Dict, prefix_tokens: Optional[torch.Tensor] = None,
                 constraints: Optional[torch.Tensor] = None, bos_token: Optional[int] = None,
                 **unused) -> List[List[Dict]]:
        if prefix_tokens is not None or constraints is not None:
            raise ValueError("--s2s-ft-search does not take --prefix-size or --constraints "
                             "(s2s-ft has neither): drop them or decode without the switch")
        net_input = sample["net_input"]
        frames = self.run_frames(net_input["src_tokens"], net_input.get("src_lengths"))
        return [self._hypotheses(frames, sentence) for sentence in
                range(net_input["src_tokens"].size(0))]

    def run_frames(self, src_tokens: torch.Tensor,
                   src_lengths: Optional[torch.Tensor] = None) -> Dict[str, List[List[list]]]:
        """Run the frames; returns per frame the beams' words, back pointers and scores
        (lists indexed [frame][sentence][beam])."""
        model, bsz, beam = self.model, src_tokens.size(0), self.beam_size
        device = src_tokens.device
        encoder_out = model.encoder(src_tokens, src_lengths)
        first_rows = torch.arange(bsz, device=device).repeat_interleave(beam)
        encoder_out = model.encoder.reorder_encoder_out(encoder_out, first_rows)
        incremental_state: Dict = {}
        prev_output_tokens = src_tokens.new_full((bsz * beam, 1), self.eos)
        scores = ended = penalty = None
        histories: List[List[int]] = [[] for _ in range(bsz * beam)]
        words, pointers, totals = [], [], []
        sentence_ended = [False] * bsz  # every beam of the sentence ended at some frame
        for frame in range(self.max_frames):
            decoder_out = model.decoder(prev_output_tokens, encoder_out, incremental_state)
            lprobs = model.get_normalized_probs(decoder_out, log_probs=True)[:, -1, :]
            if penalty is not None:
                lprobs = lprobs + penalty
            if frame < self.min_len:
                lprobs[:, self.eos] = PENALTY
            new_scores, new_words, back = self._choose_beams(frame, lprobs, scores, ended, bsz)
            scores, ended = new_scores, new_words.eq(self.eos).to(new_scores)
            words.append(new_words.tolist())
            pointers.append(back.tolist())
            totals.append(new_scores.tolist())
            sentence_ended = [done or all(w == self.eos for w in beams)
                              for done, beams in zip(sentence_ended, words[-1])]
            if all(sentence_ended):
                break  # s2s-ft ignores the frames after a frame where every beam ended
            order = (torch.arange(bsz, device=device).unsqueeze(1) * beam + back).view(-1)
            model.decoder.reorder_incremental_state_scripting(incremental_state, order)
            encoder_out = model.encoder.reorder_encoder_out(encoder_out, order)
            prev_output_tokens = torch.cat([prev_output_tokens.index_select(0, order),
                                            new_words.reshape(-1, 1)], dim=1)
            histories = [histories[row] + [word] for row, word in
                         zip(order.tolist(), new_words.reshape(-1).tolist())]
            penalty = self._ngram_penalty(histories, lprobs)
        return {"words": words, "pointers": pointers, "scores": totals}

    def _choose_beams(self, frame: int, lprobs: torch.Tensor, scores, ended, bsz: int):
        """s2s-ft's selection: each beam's ``beam`` best words, then the ``beam`` best of those
        ``beam * beam`` by total score. Returns (scores, words, back pointers), each
        (bsz, beam)."""
        beam = self.beam_size
        top_scores, top_words = lprobs.topk(beam, dim=-1)  # (bsz * beam, beam)
        if frame == 0:  # every beam of a sentence holds the same start: read beam 0's
            new_scores = top_scores.view(bsz, beam, beam)[:, 0].contiguous()
            new_words = top_words.view(bsz, beam, beam)[:, 0].contiguous()
            return new_scores, new_words, torch.zeros_like(new_words)
        # A beam that ended with [SEP] goes on at -10000 (summed as s2s-ft sums it).
        top_scores = top_scores + (ended.view(-1, 1) * PENALTY + scores.view(-1, 1))
        new_scores, flat = top_scores.view(bsz, beam * beam).topk(beam, dim=-1)
        back = torch.div(flat, beam, rounding_mode="floor")
        return new_scores, top_words.view(bsz, beam * beam).gather(1, flat), back

    def _ngram_penalty(self, histories: List[List[int]], lprobs: torch.Tensor):
        """-10000 on the words each beam may not take next, or None when none is blocked."""
        if not self.no_repeat_ngram_size:
            return None
        blocked = [blocked_words(h, self.no_repeat_ngram_size, self.exempt_words)
                   for h in histories]
        if not any(blocked):
            return None
        penalty = torch.zeros_like(lprobs)
        for row, row_words in enumerate(blocked):
            penalty[row, row_words] = PENALTY
        return penalty

    def _hypotheses(self, frames, sentence: int) -> List[Dict]:
        """The candidates of one sentence, best first (s2s-ft's choice first, then the rest by
        score), each cut at its first [SEP] / [PAD]; duplicates after the cut are dropped."""
        words = [frame[sentence] for frame in frames["words"]]
        pointers = [frame[sentence] for frame in frames["pointers"]]
        totals = [frame[sentence] for frame in frames["scores"]]
        last = next((f for f, beams in enumerate(words) if all(w == self.eos for w in beams)),
                    len(words) - 1)
        candidates = [(normalized_score(totals[f][k], f + 1, self.alpha), f, k)
                      for f in range(last + 1) for k in range(self.beam_size)
                      if words[f][k] == self.eos or f == last]
        # Stable sort: among equal scores the earliest (frame, beam) comes first, as in s2s-ft.
        candidates.sort(key=lambda c: -c[0])
        hypotheses, seen = [], set()
        for score, frame, beam in candidates:
            path, cumulative = self._backtrack(words, pointers, totals, frame, beam)
            cut = next((i for i, w in enumerate(path) if w in (self.eos, self.pad)), len(path))
            if tuple(path[:cut]) in seen:
                continue
            seen.add(tuple(path[:cut]))
            hypotheses.append(self._hypothesis(path[:cut], cumulative, score))
            if len(hypotheses) == self.beam_size:
                break
        return hypotheses

    @staticmethod
    def _backtrack(words, pointers, totals, frame: int, beam: int):
        """Words and cumulative scores of the path ending at (frame, beam)."""
        path, cumulative = [], []
        for f in range(frame, -1, -1):
            path.append(words[f][beam])
            cumulative.append(totals[f][beam])
            beam = pointers[f][beam]
        return path[::-1], cumulative[::-1]

    def _hypothesis(self, tokens: List[int], cumulative: List[float], score: float) -> Dict:
        """fairseq's hypothesis dict. ``positional_scores`` are the path's score increments;
        the eos that closes a hypothesis which never chose one adds 0."""
        steps = [cumulative[0]] + [b - a for a, b in zip(cumulative, cumulative[1:])]
        return {
            "tokens": torch.tensor(tokens + [self.eos]),
            "score": score,
            "attention": None,
            "alignment": None,
            "positional_scores": torch.tensor((steps + [0.0])[:len(tokens) + 1]),
        }
