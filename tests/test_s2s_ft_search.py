"""``--s2s-ft-search`` against s2s-ft's decoder, sentence by sentence (issue 12).

A tiny random checkpoint in s2s-ft's fine-tuned layout is converted by
``scripts/convert_checkpoint.py``; a test set of WordPiece sources is decoded by
``fairseq-generate --s2s-ft-search --beam 5 --lenpen 0.9 --no-repeat-ngram-size 3
--no-repeat-ngram-exempt the --min-len 3 --max-len-a 0 --max-len-b 20``, by
``fairseq-interactive`` and by the hub's ``sample`` with the same settings, and each output is
compared with :func:`s2s_ft_reference`: s2s-ft's ``BertForSeq2SeqDecoder.beam_search`` written
out here step by step, one sentence and one hypothesis at a time, as plain lists. The reference
runs all ``max_tgt_length`` frames as s2s-ft does and scores each next word with one
non-incremental pass of the converted model (fairseq's teacher-forced decoder call over
``[source | prefix]``), not with the incremental decoder the search uses.

The weights are drawn with std 0.3 (not BERT's 0.02) so that the next word depends on the
input, and the LM output bias of [SEP] and "the" is raised so that hypotheses end at different
frames, some never end, and "the" repeats often enough for its exemption to matter.
"""
import math
import re

import numpy as np
import pytest
import torch
from fairseq import checkpoint_utils
from helpers import (TINY_WORDPIECE_VOCAB, USER_DIR, convert_and_binarize, run_fairseq,
                     write_s2s_ft_release)

pytest.importorskip("transformers")

BEAM, ALPHA, NGRAM, MIN_LEN, FRAMES, EXEMPT = 5, 0.9, 3, 3, 20, "the"
FLAGS = ["--s2s-ft-search", "--beam", BEAM, "--lenpen", ALPHA, "--no-repeat-ngram-size", NGRAM,
         "--no-repeat-ngram-exempt", EXEMPT, "--min-len", MIN_LEN, "--max-len-a", 0,
         "--max-len-b", FRAMES]
PENALTY = -10000.0  # s2s-ft's soft penalty (modeling_decoding.py)
WORDS = [t for t in TINY_WORDPIECE_VOCAB if not t.startswith(("[", "##"))]


def random_sentences(count=8, seed=3):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=rng.integers(3, 12))) for _ in range(count)]


SOURCES = random_sentences()


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    release = write_s2s_ft_release(tmp_path_factory.mktemp("s2s_ft"), seed=1,
                                   initializer_range=0.3,
                                   output_bias={"[SEP]": 1.3, "the": 3.5})
    return convert_and_binarize(release, tmp_path_factory.mktemp("converted"), SOURCES,
                                [s.split()[0] for s in SOURCES])


@pytest.fixture(scope="module")
def model_and_dict(converted):
    model_dir, _, _, data_bin = converted
    models, _, task = checkpoint_utils.load_model_ensemble_and_task(
        [str(model_dir / "model.pt")], arg_overrides={"data": str(data_bin)})
    return models[0].eval(), task.target_dictionary


class NextWordLogProbs:
    """log P(next word | source, prefix), one pass over [source | prefix] a prefix (no cache
    of keys and values), memoized by prefix."""

    def __init__(self, model, source):
        self.model, self.eos = model, model.decoder.dictionary.eos()
        with torch.no_grad():
            self.encoder_out = model.encoder(torch.tensor([source]))
        self.memo = {}

    def __call__(self, prefix):
        if tuple(prefix) not in self.memo:
            with torch.no_grad():
                out = self.model.decoder(torch.tensor([[self.eos] + prefix]),
                                         encoder_out=self.encoder_out)
                log_probs = self.model.get_normalized_probs(out, log_probs=True)
                self.memo[tuple(prefix)] = log_probs[0, -1]
        return self.memo[tuple(prefix)]


def repeated_ngram_words(words, n, exempt):
    """s2s-ft's get_dup_ngram_candidates."""
    if len(words) < n:
        return set()
    context = words[len(words) - n + 1:]
    if any(w in exempt for w in context):
        return set()
    return {words[i + n - 1] for i in range(len(words) - n + 1)
            if words[i:i + n - 1] == context and words[i + n - 1] not in exempt}


def s2s_ft_reference(log_probs_of, eos, pad, beam=BEAM, frames=FRAMES, alpha=ALPHA,
                     ngram=NGRAM, exempt=frozenset(), min_len=MIN_LEN):
    """s2s-ft's beam search for one sentence: (words cut at [SEP]/[PAD], ranking score).

    A beam is (words, float32 score, ended). Frame 0 expands the empty hypothesis once; later
    frames expand every beam by its ``beam`` best words, a beam that ended with [SEP] going on
    at -10000, and keep the ``beam`` best of the beam x beam candidates. Every frame is kept."""
    beams = [([], torch.tensor(0.0), False)]
    history = []
    for frame in range(frames):
        candidates = []
        for words, score, ended in beams:
            scores = log_probs_of(words).clone()
            for word in (repeated_ngram_words(words, ngram, exempt) if ngram else ()):
                scores[word] += PENALTY
            if frame < min_len:
                scores[eos] = PENALTY
            top = scores.topk(beam)
            carried = score + PENALTY if ended else score
            candidates += [(s + carried, words + [w])
                           for s, w in zip(top.values, top.indices.tolist())]
        candidates.sort(key=lambda c: -c[0].item())
        beams = [(words, s, words[-1] == eos) for s, words in candidates[:beam]]
        history.append(beams)
    last = next((f for f, bs in enumerate(history) if all(e for _, _, e in bs)), frames - 1)
    best, best_words = -float("inf"), None
    for frame, beams in enumerate(history[:last + 1]):
        for words, score, ended in beams:
            if ended or frame == last:
                value = score.item() / ((5 + frame + 1) / 6) ** alpha if alpha > 0 else score.item()
                if value > best:
                    best, best_words = value, words
    cut = next((i for i, w in enumerate(best_words) if w in (eos, pad)), len(best_words))
    return best_words[:cut], best


@pytest.fixture(scope="module")
def reference(model_and_dict, converted):
    """The reference's output for each test sentence, with "the" exempt and without exempt
    words: lists of (text of dictionary symbols, score)."""
    model, dictionary = model_and_dict
    outputs = {"exempt": [], "none": []}
    for line in (converted[2] / "test.src").read_text().splitlines():
        source = [dictionary.bos()] + [dictionary.index(w) for w in line.split()] \
            + [dictionary.eos()]
        log_probs_of = NextWordLogProbs(model, source)
        for key, exempt in (("exempt", {dictionary.index(EXEMPT)}), ("none", set())):
            words, score = s2s_ft_reference(log_probs_of, dictionary.eos(), dictionary.pad(),
                                            exempt=exempt)
            outputs[key].append((dictionary.string(words), score))
    return outputs


def hypotheses(stdout):
    """{sentence id: (text, score)} of the best H- line of each sentence."""
    found = {}
    for index, score, text in re.findall(r"^H-(\d+)\t(\S+)\t(.*)$", stdout, flags=re.M):
        found.setdefault(int(index), (text, float(score)))
    return found


def test_reference_exercises_the_settings(reference):
    """The comparisons below are only as good as their cases: answers of several lengths, some
    cut by --max-len-b, and answers that the exemption of "the" changes."""
    lengths = [len(text.split()) for text, _ in reference["exempt"]]
    assert len(set(lengths)) >= 4 and FRAMES in lengths and min(lengths) < 10, lengths
    changed = [a != b for a, b in zip(reference["exempt"], reference["none"])]
    assert sum(changed) >= 3, reference


def test_fairseq_generate_matches_s2s_ft_for_every_sentence(converted, reference):
    model_dir, _, _, data_bin = converted
    proc = run_fairseq("fairseq-generate", [
        data_bin, "--user-dir", USER_DIR, "--task", "unilm_seq2seq", "--path",
        model_dir / "model.pt", "--gen-subset", "test", "--batch-size", 5,
        "--max-source-positions", 40, "--max-target-positions", 24, *FLAGS])
    found = hypotheses(proc.stdout)
    assert sorted(found) == list(range(len(SOURCES)))
    for index, (text, score) in enumerate(reference["exempt"]):
        assert found[index][0] == text, (index, found[index], text)
        # fairseq-generate prints scores in base 2.
        assert found[index][1] * math.log(2) == pytest.approx(score, abs=2e-4)


def test_fairseq_interactive_matches_s2s_ft(converted, reference):
    model_dir, _, raw, data_bin = converted
    lines = (raw / "test.src").read_text().splitlines()[:4]
    proc = run_fairseq("fairseq-interactive", [
        data_bin, "--user-dir", USER_DIR, "--task", "unilm_seq2seq", "--path",
        model_dir / "model.pt", "--max-source-positions", 40, "--max-target-positions", 24,
        *FLAGS], input_text="\n".join(lines) + "\n")
    found = hypotheses(proc.stdout)
    assert [found[i][0] for i in range(len(lines))] == \
        [text for text, _ in reference["exempt"][:4]]


def test_hub_sample_matches_s2s_ft(converted, reference):
    from fairseq_unilmv2.models.unilm_v2 import UniLMv2Model

    model_dir, _, raw, data_bin = converted
    hub = UniLMv2Model.from_pretrained(str(model_dir), checkpoint_file="model.pt",
                                       data_name_or_path=str(data_bin),
                                       max_source_positions=40, max_target_positions=24)
    lines = (raw / "test.src").read_text().splitlines()[:4]
    outputs = hub.sample(lines, beam=BEAM, lenpen=ALPHA, no_repeat_ngram_size=NGRAM,
                         min_len=MIN_LEN, max_len_a=0, max_len_b=FRAMES, s2s_ft_search=True,
                         no_repeat_ngram_exempt=EXEMPT)
    assert outputs == [text for text, _ in reference["exempt"][:4]]
    # The switch and the exempt words can also come with the checkpoint's task options.
    hub = UniLMv2Model.from_pretrained(str(model_dir), checkpoint_file="model.pt",
                                       data_name_or_path=str(data_bin),
                                       max_source_positions=40, max_target_positions=24,
                                       s2s_ft_search=True, no_repeat_ngram_exempt=EXEMPT)
    outputs = hub.sample(lines, beam=BEAM, lenpen=ALPHA, no_repeat_ngram_size=NGRAM,
                         min_len=MIN_LEN, max_len_a=0, max_len_b=FRAMES)
    assert outputs == [text for text, _ in reference["exempt"][:4]]


def test_beam_one_is_s2s_ft_greedy_decoding(converted, model_and_dict):
    """s2s-ft decodes beam 1 greedily: the best word at each of the frames, no n-gram blocking,
    no minimum length, the output cut at the first [SEP]."""
    model, dictionary = model_and_dict
    model_dir, _, raw, data_bin = converted
    flags = [str(f) for f in FLAGS]
    flags[flags.index("--beam") + 1] = "1"
    proc = run_fairseq("fairseq-generate", [
        data_bin, "--user-dir", USER_DIR, "--task", "unilm_seq2seq", "--path",
        model_dir / "model.pt", "--gen-subset", "test", "--batch-size", 8,
        "--max-source-positions", 40, "--max-target-positions", 24, *flags])
    found, exempt, blocking_would_differ = hypotheses(proc.stdout), {dictionary.index(EXEMPT)}, 0
    for index, line in enumerate((raw / "test.src").read_text().splitlines()):
        source = [dictionary.bos()] + [dictionary.index(w) for w in line.split()] \
            + [dictionary.eos()]
        log_probs_of, words = NextWordLogProbs(model, source), []
        for _ in range(FRAMES):
            words.append(int(log_probs_of(words).argmax()))
        cut = next((i for i, w in enumerate(words) if w in (dictionary.eos(), dictionary.pad())),
                   len(words))
        assert found[index][0] == dictionary.string(words[:cut]), index
        blocking_would_differ += any(words[t] in repeated_ngram_words(words[:t], NGRAM, exempt)
                                     for t in range(len(words)))
    assert blocking_would_differ  # so the greedy path is seen to skip n-gram blocking
