"""s2s-ft's beam search rules on beams worked out by hand (issue 12).

A stub model reads its next-word scores off a table keyed by the words generated so far, so every
beam below can be followed with pencil and paper: GNMT's length penalty, the soft -10000
penalties, the choice among hypotheses finished at any frame, and n-gram blocking with exempt
words, both in the s2s-ft search and in fairseq's own search.
"""
import math

import pytest
import torch
from fairseq.data import Dictionary
from torch import nn

from fairseq_unilmv2.generation import (ExemptNGramRepeatBlock, S2SFtBeamSearch, blocked_words,
                                        gnmt_length_penalty, parse_exempt_words)

DICT = Dictionary()
for _word in ("a", "b", "the", "x"):
    DICT.add_symbol(_word)
EOS = DICT.eos()
A, B, THE = DICT.index("a"), DICT.index("b"), DICT.index("the")


class TableEncoder(nn.Module):
    def forward(self, src_tokens, src_lengths=None):
        return {"rows": [torch.arange(src_tokens.size(0))]}

    def reorder_encoder_out(self, encoder_out, new_order):
        return {"rows": [encoder_out["rows"][0].index_select(0, new_order)]}


class TableDecoder(nn.Module):
    """Next-word scores read off a table {generated words: {word: score}}; a prefix missing from
    the table scores </s> -5, ``a`` -6 and every other word -20000 (below any
    penalized word)."""

    def __init__(self, table):
        super().__init__()
        self.table = table

    def forward(self, prev_output_tokens, encoder_out=None, incremental_state=None):
        rows = []
        for prefix in prev_output_tokens[:, 1:].tolist():  # without the start symbol
            scores = torch.full((len(DICT),), -20000.0)
            for word, score in self.table.get(tuple(prefix), {EOS: -5.0, A: -6.0}).items():
                scores[word] = score
            rows.append(scores)
        return torch.stack(rows).unsqueeze(1), {"attn": [None]}

    def reorder_incremental_state_scripting(self, incremental_state, new_order):
        pass  # it reads the whole prefix at every step


class TableModel(nn.Module):
    """The encoder / incremental decoder interface the search drives; the table's scores are the
    log-probabilities as they are (no normalization), so the sums stay round."""

    def __init__(self, table):
        super().__init__()
        self.encoder, self.decoder = TableEncoder(), TableDecoder(table)

    def get_normalized_probs(self, net_output, log_probs):
        return net_output[0]


SOURCE = torch.tensor([[0, 4, 2]])  # the stub ignores it


def generator(table, beam=2, frames=3, **kwargs):
    return S2SFtBeamSearch([TableModel(table)], DICT, beam_size=beam, max_frames=frames, **kwargs)


def search(table, **kwargs):
    """(hypothesis, score) of the returned hypotheses, best first."""
    sample = {"net_input": {"src_tokens": SOURCE, "src_lengths": torch.tensor([3])}}
    hypotheses = generator(table, **kwargs).generate(None, sample)[0]
    return [(DICT.string(h["tokens"]), round(h["score"], 4)) for h in hypotheses]


def beam_scores(table, **kwargs):
    """The cumulative scores of the beams, frame by frame."""
    frames = generator(table, **kwargs).run_frames(SOURCE)
    return [[round(score, 4) for score in frame[0]] for frame in frames["scores"]]


def test_gnmt_length_penalty_hand_values():
    assert gnmt_length_penalty(1, 1.0) == 1.0  # (5 + 1) / 6
    assert gnmt_length_penalty(7, 1.0) == 2.0  # (5 + 7) / 6
    assert gnmt_length_penalty(3, 0.9) == pytest.approx(1.295522, abs=1e-6)  # exp(0.9 ln(4/3))
    assert gnmt_length_penalty(25, 0.5) == pytest.approx(math.sqrt(5))


# Beam 2, three frames, no minimum length.
#   frame 0  ()      -> a -1, b -2                      beams: a -1 | b -2
#   frame 1  (a)     -> </s> -1, a -3 : a </s> -2, a a -4
#            (b)     -> b -0.1, </s> -4 : b b -2.1, b </s> -6
#                                                       beams: a </s> -2 | b b -2.1
#   frame 2  (a </s>) ended: default table -5, -6 plus -10000 each: -10007, -10008
#            (b b)   -> </s> -0.1, b -3 : b b </s> -2.2, b b b -5.1
#                                                       beams: b b </s> -2.2 | b b b -5.1
# Candidates: "a" (frame 1, |y| = 2) -2; "b b" (frame 2, |y| = 3) -2.2; "b b b" (unfinished at
# the last frame, |y| = 3) -5.1.
# alpha 0: no penalty, "a" wins (-2 > -2.2).
# alpha 1: -2 / (7/6) = -1.7143; -2.2 / (8/6) = -1.65; -5.1 / (8/6) = -3.825: "b b" wins.
GNMT_TABLE = {(): {A: -1.0, B: -2.0},
              (A,): {EOS: -1.0, A: -3.0},
              (B,): {B: -0.1, EOS: -4.0},
              (B, B): {EOS: -0.1, B: -3.0}}


def test_without_length_penalty_the_best_raw_score_wins():
    assert beam_scores(GNMT_TABLE, min_len=0, alpha=0.0) == [[-1, -2], [-2, -2.1],
                                                             [-2.2, -5.1]]
    assert search(GNMT_TABLE, min_len=0, alpha=0.0) == [("a", -2.0), ("b b", -2.2)]


def test_gnmt_penalty_ranks_finished_hypotheses_of_every_frame():
    assert search(GNMT_TABLE, min_len=0, alpha=1.0) == [("b b", -1.65), ("a", -1.7143)]
    # alpha 0.5: -2 / sqrt(7/6) = -1.8516; -2.2 / sqrt(8/6) = -1.9053: "a" again.
    assert search(GNMT_TABLE, min_len=0, alpha=0.5) == [("a", -1.8516), ("b b", -1.9053)]


def test_min_len_costs_eos_10000_not_minus_infinity():
    # min_len 2: </s> at frames 0 and 1 scores -10000 (set, not added).
    #   frame 1: a </s> = -1 - 10000 = -10001, a a -4, b b -2.1, b </s> -10002
    #            beams: b b -2.1 | a a -4
    #   frame 2: b b </s> -2.2, b b b -5.1, a a + default: </s> -9, a -10 -> b b </s> | b b b
    assert beam_scores(GNMT_TABLE, min_len=2, alpha=0.0) == [[-1, -2], [-2.1, -4],
                                                             [-2.2, -5.1]]
    assert search(GNMT_TABLE, min_len=2, alpha=0.0) == [("b b", -2.2), ("b b b", -5.1)]


# n-gram size 2, beam 2, four frames, alpha 0.
#   frame 0  ()          -> the -1, b -5                 beams: the -1 | b -5
#   frame 1  (the)       -> a -1, </s> -6 : the a -2, the </s> -7
#            (b)         -> </s> -1.7, b -7 : b </s> -6.7, b b -12
#                                                        beams: the a -2 | b </s> -6.7
#   frame 2  (the a)     -> the -1, </s> -4.2 : the a the -3, the a </s> -6.2
#            (b </s>) ended: about -10011                beams: the a the -3 | the a </s> -6.2
#   frame 3  (the a the) -> a -0.5, </s> -3.5. The bigram "the a" is there already, so "a" is
#            blocked after "the": -3 - 0.5 - 10000 = -10003.5; the a the </s> = -6.5.
#            (the a </s>) ended: about -10011            beams: the a the </s> -6.5 | ... a -10003.5
# Candidates: "b" -6.7 (frame 1), "the a" -6.2 (frame 2), "the a the" -6.5, "the a the a"
# -10003.5 (unfinished): "the a" wins. With "the" exempt nothing is blocked after it, "the a the
# a" scores -3.5 and wins.
NGRAM_TABLE = {(): {THE: -1.0, B: -5.0},
               (THE,): {A: -1.0, EOS: -6.0},
               (B,): {EOS: -1.7, B: -7.0},
               (THE, A): {THE: -1.0, EOS: -4.2},
               (THE, A, THE): {A: -0.5, EOS: -3.5}}


def test_repeated_ngram_costs_10000():
    settings = dict(frames=4, min_len=0, alpha=0.0, no_repeat_ngram_size=2)
    # The blocked continuation stays in the beam, 10000 down (with -inf it would not).
    assert beam_scores(NGRAM_TABLE, **settings)[-1] == [-6.5, -10003.5]
    assert search(NGRAM_TABLE, **settings) == [("the a", -6.2), ("the a the", -6.5)]


def test_exempt_word_lifts_the_block():
    assert search(NGRAM_TABLE, frames=4, min_len=0, alpha=0.0, no_repeat_ngram_size=2,
                  exempt_words={THE})[0] == ("the a the a", -3.5)


def test_beam_one_is_s2s_ft_greedy_decoding_without_blocking_or_min_len():
    # greedy: the (-1), a (-1), the (-1), a (-0.5): nothing is blocked, and s2s-ft's greedy path
    # ignores --min-len as well; the hypothesis never ends, the last frame's is taken.
    assert search(NGRAM_TABLE, beam=1, frames=4, min_len=3, alpha=0.0,
                  no_repeat_ngram_size=2) == [("the a the a", -3.5)]


@pytest.mark.parametrize("hypothesis, size, exempt, blocked", [
    ("a b x a b", 3, "", "x"),        # "a b" was followed by x
    ("a b x a b", 3, "x", ""),        # x itself is exempt
    ("a b x a b", 3, "b", ""),        # the context "a b" holds an exempt word
    ("a b a b", 3, "", "a"),          # "a b" -> a; "b a" is not the context
    ("a b a", 2, "", "b"),
    ("a b a b a", 2, "", "b"),        # listed once
    ("a b", 3, "", ""),               # shorter than an n-gram
])
def test_blocked_words_by_hand(hypothesis, size, exempt, blocked):
    ids = [DICT.index(w) for w in hypothesis.split()]
    exempt_ids = parse_exempt_words("|".join(exempt.split()), DICT) if exempt else frozenset()
    assert blocked_words(ids, size, exempt_ids) == [DICT.index(w) for w in blocked.split()]


def test_exempt_blocker_for_fairseq_search_reads_the_words_up_to_step():
    # fairseq's buffer: start symbol, the words so far (step 5), then padding.
    tokens = torch.tensor([[EOS, A, B, THE, A, B, 1, 1]])
    lprobs = torch.zeros(1, len(DICT))
    blocked = ExemptNGramRepeatBlock(3, frozenset())(tokens, lprobs.clone(), 1, 1, 5)
    assert torch.isinf(blocked[0]).nonzero().view(-1).tolist() == [THE]
    exempt = ExemptNGramRepeatBlock(3, {THE})(tokens, lprobs.clone(), 1, 1, 5)
    assert not torch.isinf(exempt).any()


def test_exempt_words_are_dictionary_symbols():
    assert parse_exempt_words("the|a", DICT) == {THE, A}
    assert parse_exempt_words("[SEP]", DICT) == {EOS}  # BERT's name of fairseq's </s>
    with pytest.raises(ValueError, match="'zebra' is not a symbol of the dictionary"):
        parse_exempt_words("the|zebra", DICT)


def seq2seq_task_and_model():
    from helpers import tiny_unilm_model

    from fairseq_unilmv2.tasks.unilm_seq2seq import UniLMSeq2SeqConfig, UniLMSeq2SeqTask

    model, dictionary = tiny_unilm_model(vocab_words=12, seed=2)
    task = UniLMSeq2SeqTask(UniLMSeq2SeqConfig(max_source_positions=16,
                                               max_target_positions=24), dictionary)
    return task, model, dictionary


def generate_with_fairseq_search(task, model, **options):
    from fairseq.dataclass.configs import GenerationConfig
    from omegaconf import OmegaConf, open_dict

    args = OmegaConf.structured(GenerationConfig(beam=3, max_len_b=14, min_len=14))
    with open_dict(args):
        for key, value in options.items():
            setattr(args, key, value)
    generator = task.build_generator([model], args)
    sources = torch.tensor([[0, 4 + i, 5 + i, 6, 2] for i in range(4)])
    sample = {"net_input": {"src_tokens": sources, "src_lengths": torch.full((4,), 5)}}
    hypotheses = task.inference_step(generator, [model], sample)
    return generator, [h["tokens"][:-1].tolist() for hyps in hypotheses for h in hyps]


def repeated_bigrams(words, exempt=frozenset()):
    seen, repeats = set(), []
    for bigram in zip(words, words[1:]):
        if bigram in seen and not set(bigram) & exempt:
            repeats.append(bigram)
        seen.add(bigram)
    return repeats


def test_exempt_words_with_fairseqs_own_search():
    from fairseq.ngram_repeat_block import NGramRepeatBlock

    task, model, dictionary = seq2seq_task_and_model()
    exempt = {dictionary.index("w3")}
    # The random model repeats itself when nothing is blocked, so the check below can fail.
    _, free = generate_with_fairseq_search(task, model)
    assert any(repeated_bigrams(h, exempt) for h in free)
    generator, blocked = generate_with_fairseq_search(task, model, no_repeat_ngram_size=2,
                                                      no_repeat_ngram_exempt="w3")
    assert isinstance(generator.repeat_ngram_blocker, ExemptNGramRepeatBlock)
    assert not any(repeated_bigrams(h, exempt) for h in blocked)
    assert any(repeated_bigrams(h) for h in blocked)  # "w3" bigrams may repeat
    # Without exempt words fairseq's own blocker stays (default decoding is unchanged).
    generator, _ = generate_with_fairseq_search(task, model, no_repeat_ngram_size=2)
    assert type(generator.repeat_ngram_blocker) is NGramRepeatBlock
