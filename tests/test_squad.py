"""Extractive question answering (issue 22): ``--task squad``, the span head, ``squad_span``,
prediction and its entry points, on the shared slice of the SQuAD v2.0 development set
(``../shared/data/squad/dev-v2.0-first3.json``; tests that need it skip when it is absent).

- the offset-keeping WordPiece tokenizer gives transformers' ``BertTokenizer`` pieces, and each
  piece's characters normalize to the piece;
- the round trip: gold answers -> token spans -> windows -> logits that pick them -> n-best
  postprocessing -> the official-exact scorer, with WordPiece and with sentencepiece, at the
  default window sizes and at windows so short that most contexts need several;
- ``fairseq-train --task squad`` with ``--num-workers 2`` and ``--update-freq 2``, resumed from
  ``checkpoint_last.pt`` with the losses of an uninterrupted run; the span head fresh after a
  pre-trained checkpoint and reloaded from a fine-tuned one; ``scripts/squad.py predict`` and
  the hub's ``answer``;
- bad input: malformed JSON, missing fields, gold positions off their text.
"""
import json
import logging
import re
import string
import subprocess
import sys
import unicodedata
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
import torch

from helpers import REPO, TINY_MODEL_ARGS, USER_DIR, run_fairseq, shared_file, tiny_unilm_model

from fairseq_unilmv2.convert.vocab import (load_task_dictionary, read_wordpiece_vocab,
                                           write_fairseq_dict)
from fairseq_unilmv2.data.span_tokenizer import (SentencePieceSpanTokenizer, WordPieceSpanTokenizer,
                                                 build_span_tokenizer)
from fairseq_unilmv2.data.squad_examples import SquadFormatError, read_squad_examples
from fairseq_unilmv2.data.squad_features import SquadWindower
from fairseq_unilmv2.data.squad_postprocess import official_outputs, predict_all

SLICE = ("squad", "dev-v2.0-first3.json")
FULL_PRECISION_TRAIN = str(REPO / "scripts" / "train_full_precision.py")
TRAIN_INNER = re.compile(r"train_inner\W+(\{.*\})$", re.MULTILINE)


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def squad_slice():
    path = shared_file(*SLICE)
    examples, version_2, _ = read_squad_examples(str(path))
    return path, json.loads(path.read_text(encoding="utf-8"))["data"], examples


def slice_texts(examples) -> List[str]:
    return sorted({e.context for e in examples}) + [e.question for e in examples]


# Contexts beyond the slice's, each answer written in it: decomposed accents (e + U+0301),
# private-use characters inside answers (BERT's clean-up drops every C* character), CJK
# (one piece a character).
HARD_QAS = [
    ("The cafe\u0301 known as Cafe\u0301 Noir opened in Montre\u0301al in 1921; its owner, "
     "Jose\u0301 Garci\u0301a, sold it to a cafe\u0301 chain.",
     [("What is the place called?", "Cafe\u0301 Noir"), ("Where did it open?", "Montre\u0301al"),
      ("Who owned it?", "Jose\u0301 Garci\u0301a"), ("Who bought it?", "a cafe\u0301 chain"),
      # answers ending in a decomposed accent
      ("What was the owner's first name?", "Jose\u0301"), ("What kind of place?", "cafe\u0301")]),
    ("The operation was called Alpha\ue000Bravo and the unit sat at Fort\ue001 Knox West, "
     "near Bay\uf8ffside.",
     [("What was the operation called?", "Alpha\ue000Bravo"),
      ("Where did the unit sit?", "Fort\ue001 Knox West"), ("Near what?", "Bay\uf8ffside")]),
    ("The city of \u6771\u4eac (Tokyo) is the capital of \u65e5\u672c\u56fd, and "
     "\u5927\u962a\u5e02 is another large city; Beijing (\u5317\u4eac\u5e02) hosted games.",
     [("What is the capital?", "\u6771\u4eac"), ("Of what?", "\u65e5\u672c\u56fd"),
      ("Another city?", "\u5927\u962a\u5e02"), ("Beijing in Chinese?", "\u5317\u4eac\u5e02")]),
]


def hard_articles():
    paragraphs = []
    for p, (context, qas) in enumerate(HARD_QAS):
        paragraphs.append({"context": context, "qas": [
            {"id": f"hard{p}-{q}", "question": question, "is_impossible": False,
             "answers": [{"text": answer, "answer_start": context.index(answer)}]}
            for q, (question, answer) in enumerate(qas)]})
    return [{"title": "Hard", "paragraphs": paragraphs}]


def hard_texts() -> List[str]:
    return [context for context, _ in HARD_QAS] + [q for _, qas in HARD_QAS for q, _ in qas]


@pytest.fixture(scope="module")
def wordpiece(squad_slice, tmp_path_factory):
    """A WordPiece vocabulary trained on the slice (2,000 entries, BERT's specials), its
    converted dict.txt and the task's dictionary."""
    tokenizers = pytest.importorskip("tokenizers")
    root = tmp_path_factory.mktemp("wordpiece")
    trainer = tokenizers.BertWordPieceTokenizer(lowercase=True)
    trainer.train_from_iterator(slice_texts(squad_slice[2]) + hard_texts(), vocab_size=2000,
                                special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    trainer.save_model(str(root))
    write_fairseq_dict(read_wordpiece_vocab(root / "vocab.txt"), root / "dict.txt")
    return root / "vocab.txt", root / "dict.txt", load_task_dictionary(root / "dict.txt")


@pytest.fixture(scope="module")
def sentencepiece_model(squad_slice, tmp_path_factory):
    """A sentencepiece model trained on the slice, and a dict.txt of its pieces."""
    import sentencepiece as spm

    root = tmp_path_factory.mktemp("spm")
    (root / "text.txt").write_text("\n".join(slice_texts(squad_slice[2]) + hard_texts()) + "\n",
                                   encoding="utf-8")
    spm.SentencePieceTrainer.train(input=str(root / "text.txt"), model_prefix=str(root / "spm"),
                                   vocab_size=1000, character_coverage=1.0, minloglevel=2)
    sp = spm.SentencePieceProcessor(model_file=str(root / "spm.model"))
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())
              if not (sp.is_unknown(i) or sp.is_control(i))]
    (root / "dict.txt").write_text("".join(f"{p} 1\n" for p in pieces))
    return root / "spm.model", root / "dict.txt", load_task_dictionary(root / "dict.txt")


# ----------------------------------------------------------------------------- tokenizers
def _uncased(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", text.lower())
                   if unicodedata.category(c) != "Mn")


def test_wordpiece_pieces_equal_bert_tokenizer_and_offsets_cover_them(squad_slice, wordpiece):
    transformers = pytest.importorskip("transformers")
    vocab, _, _ = wordpiece
    reference = transformers.BertTokenizer(str(vocab), do_lower_case=True)
    mine = WordPieceSpanTokenizer(str(vocab))
    texts = slice_texts(squad_slice[2]) + hard_texts() + [
        "Ünïcode café, naïve — “quotes” 東京 x\u200by", "\ue000lead, tail\uf8ff, mid\U000f0000dle",
        "İstanbul ǅ ﬁne cafe\u0301s \u00adsoft\u00ad"]
    for text in texts:
        pieces, offsets = mine.tokenize(text)
        assert pieces == reference.tokenize(text), text
        for k, (piece, (start, end)) in enumerate(zip(pieces, offsets)):
            if piece != "[UNK]":
                # Characters BERT's clean-up drops (C*: private use, soft hyphen) may sit
                # inside a piece's span.
                covered = "".join(c for c in text[start:end]
                                  if not unicodedata.category(c).startswith("C"))
                assert _uncased(covered) == piece.removeprefix("##"), (text, piece)
            # A piece ends after the accents of its last character, never between them.
            assert end == len(text) or not unicodedata.category(text[end]).startswith("M"), \
                (text, piece)
            assert k == 0 or offsets[k - 1][1] <= start
    # The pieces of a cased vocabulary: no lower-casing, no accent stripping, as
    # BertTokenizer(do_lower_case=False); the decomposed accent stays inside the piece.
    cased = WordPieceSpanTokenizer(str(vocab), cased=True)
    reference_cased = transformers.BertTokenizer(str(vocab), do_lower_case=False)
    for text in texts[-3:] + hard_texts():
        assert cased.tokenize(text)[0] == reference_cased.tokenize(text), text


def test_sentencepiece_offsets_cover_the_piece_text(squad_slice, sentencepiece_model):
    model, _, _ = sentencepiece_model
    tokenizer = SentencePieceSpanTokenizer(str(model))
    for text in slice_texts(squad_slice[2])[:60]:
        pieces, offsets = tokenizer.tokenize(text)
        assert pieces == tokenizer.processor.encode(text, out_type=str)
        for piece, (start, end) in zip(pieces, offsets):
            # The piece is the NFKC-normalized text it covers, with "▁" for the space before
            # it; a character NFKC expands (″ -> ′′) gives its first pieces no characters.
            if end > start:
                assert piece.lstrip("\u2581") in unicodedata.normalize("NFKC", text[start:end]), \
                    (piece, text[start:end])


# ----------------------------------------------------------------------------- round trip
def gold_logits(windows) -> List[np.ndarray]:
    """Logits that pick each window's training label: the answer's first and last token where
    the window holds it, the null position elsewhere."""
    out = []
    for window in windows:
        logits = np.full((len(window.tokens), 2), -10.0)
        logits[window.start, 0] = logits[window.end, 1] = 10.0
        out.append(logits)
    return out


def round_trip(articles, examples, tokenizer, dictionary, **sizes) -> Dict[str, float]:
    from fairseq_unilmv2.scoring.squad import squad_v2_scores

    windower = SquadWindower(tokenizer, dictionary, **sizes)
    windows = [w for i, e in enumerate(examples) for w in windower.windows(e, i)]
    predictions = predict_all(examples, windows, gold_logits(windows), version_2=True)
    texts, null_odds = official_outputs(predictions, version_2=True)
    assert set(texts) == {e.qid for e in examples}
    for example in examples:  # every answer is the context's own characters
        p = predictions[example.qid]
        assert p.text == ("" if p.char_start is None else example.context[p.char_start:p.char_end])
    scores = squad_v2_scores(articles, texts, null_odds=null_odds)
    shortfall = {e.qid: (texts[e.qid], e.answers[0].text) for e in examples
                 if not e.is_impossible and not any(
                     _normalized(texts[e.qid]) == _normalized(a.text) for a in e.answers)}
    return {"scores": scores, "shortfall": shortfall, "windows": len(windows)}


def _normalized(text: str) -> str:
    text = "".join(c for c in text.lower() if c not in set(string.punctuation))
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


@pytest.mark.parametrize("sizes", [dict(max_seq_length=384, doc_stride=128, max_query_length=64),
                                   dict(max_seq_length=64, doc_stride=16, max_query_length=16)],
                         ids=["384", "64-stride16"])
@pytest.mark.parametrize("kind", ["wordpiece", "sentencepiece"])
def test_round_trip_recovers_the_gold_answers(squad_slice, wordpiece, sentencepiece_model, kind,
                                              sizes):
    _, articles, examples = squad_slice
    if kind == "wordpiece":
        tokenizer, dictionary = WordPieceSpanTokenizer(str(wordpiece[0])), wordpiece[2]
    else:
        tokenizer, dictionary = SentencePieceSpanTokenizer(str(sentencepiece_model[0])), \
            sentencepiece_model[2]
    result = round_trip(articles, examples, tokenizer, dictionary, **sizes)
    scores = result["scores"]
    if sizes["max_seq_length"] == 64:
        assert result["windows"] > 3 * len(examples)  # most contexts span several windows
    assert scores["HasAns_total"] == 473 and scores["NoAns_total"] == 477
    if sizes["max_seq_length"] == 384:
        assert scores["HasAns_exact"] == 100.0, f"shortfall by id: {result['shortfall']}"
    else:
        # 45 context pieces a window, a new window every 16: a long answer (22 pieces with
        # some sentencepiece models) can sit wholly only in a window that does not score its
        # first piece (BERT's max-context rule): the rule, not the offsets.
        assert scores["HasAns_exact"] >= 99.5, f"shortfall by id: {result['shortfall']}"
        assert len(result["shortfall"]) <= 2
    assert scores["NoAns_exact"] == 100.0


@pytest.mark.parametrize("kind", ["wordpiece", "sentencepiece"])
def test_round_trip_recovers_accented_private_use_and_cjk_answers(wordpiece, sentencepiece_model,
                                                                   kind, tmp_path):
    articles = hard_articles()
    examples, version_2, _ = read_squad_examples(str(write_squad(tmp_path / "hard.json",
                                                                 articles)))
    assert version_2 and all(e.train_span for e in examples)
    if kind == "wordpiece":
        tokenizer, dictionary = WordPieceSpanTokenizer(str(wordpiece[0])), wordpiece[2]
    else:
        tokenizer, dictionary = SentencePieceSpanTokenizer(str(sentencepiece_model[0])), \
            sentencepiece_model[2]
    for sizes in (dict(), dict(max_seq_length=32, doc_stride=8, max_query_length=8)):
        result = round_trip(articles, examples, tokenizer, dictionary, **sizes)
        assert result["scores"]["HasAns_total"] == len(examples)
        assert result["scores"]["HasAns_exact"] == 100.0, f"shortfall: {result['shortfall']}"


@pytest.mark.parametrize("version_2", [False, True])
def test_best_answer_is_never_empty_while_a_span_has_text(version_2):
    """A span of pieces that cover no character (sentencepiece's lone "\u2581", offsets
    (k, k)) scored best: the answer is the best span with text, as in BERT's and Hugging
    Face's postprocessing; "" only where no span has any."""
    from fairseq_unilmv2.data.squad_examples import SquadExample
    from fairseq_unilmv2.data.squad_features import SquadWindow
    from fairseq_unilmv2.data.squad_postprocess import predict_question

    context = "alpha beta"
    example = SquadExample("q", "which?", context, [], False)
    # [CLS] question [SEP] "\u2581" "beta" [SEP]: the lone piece before "beta" covers nothing.
    offsets = np.array([[-1, -1], [-1, -1], [-1, -1], [6, 6], [6, 10], [-1, -1]])
    window = SquadWindow(0, np.arange(6), np.zeros(6, dtype=np.int64), offsets,
                         np.array([False, False, False, True, True, False]))
    logits = np.full((6, 2), -5.0)
    logits[3] = [9.0, 9.0]   # best start and end: the empty span (3, 3)
    logits[4] = [1.0, 2.0]   # then (3, 4) "beta", (4, 4) "beta"
    logits[0] = [-20.0, -20.0]  # null far below: answer
    prediction = predict_question(example, [window], [logits], version_2=version_2)
    assert prediction.nbest[0].text == ""  # the empty span is the best-scored candidate
    assert prediction.text == "beta" and (prediction.char_start, prediction.char_end) == (6, 10)
    assert prediction.score == pytest.approx(9.0 + 2.0)  # (3, 4): start 9, end 2
    assert prediction.null_odds == pytest.approx(-40.0 - 11.0)
    # Only the empty span: no answer text exists, "" it is.
    logits[4] = [-30.0, -30.0]
    only_empty = predict_question(example, [window], [logits], version_2=version_2,
                                  n_best_size=1)
    assert only_empty.text == ""


def test_round_trip_v1_style_file(squad_slice, wordpiece, tmp_path):
    """The slice as a v1.1 file (answerable questions only, no is_impossible): always a span,
    scored with the v1.1 keys."""
    from fairseq_unilmv2.scoring.squad import squad_v1_scores

    articles = json.loads(json.dumps(squad_slice[1]))
    for paragraph in (p for a in articles for p in a["paragraphs"]):
        paragraph["qas"] = [qa for qa in paragraph["qas"] if not qa.pop("is_impossible")]
    examples, version_2, _ = read_squad_examples(str(write_squad(tmp_path / "v1.json", articles,
                                                                 version="1.1")))
    assert not version_2 and len(examples) == 473
    windower = SquadWindower(WordPieceSpanTokenizer(str(wordpiece[0])), wordpiece[2])
    windows = [w for i, e in enumerate(examples) for w in windower.windows(e, i)]
    predictions = predict_all(examples, windows, gold_logits(windows), version_2=False)
    texts, null_odds = official_outputs(predictions, version_2=False)
    assert null_odds is None and all(texts.values())
    scores = squad_v1_scores(articles, texts)
    assert scores["exact_match"] == 100.0 and scores["f1"] == 100.0


# ----------------------------------------------------------------------------- bad input
def write_squad(path: Path, articles, version="v2.0") -> Path:
    path.write_text(json.dumps({"version": version, "data": articles}), encoding="utf-8")
    return path


def small_articles(articles, paragraphs=2):
    return [{"title": articles[0]["title"], "paragraphs": articles[0]["paragraphs"][:paragraphs]}]


def test_malformed_json_and_missing_fields_name_the_file_and_question(tmp_path, squad_slice):
    broken = tmp_path / "broken.json"
    broken.write_text('{"data": [')
    with pytest.raises(SquadFormatError, match=r"broken\.json is not valid JSON"):
        read_squad_examples(str(broken))
    articles = json.loads(json.dumps(small_articles(squad_slice[1], 1)))
    qa = articles[0]["paragraphs"][0]["qas"][1]
    del qa["question"]
    with pytest.raises(SquadFormatError, match=rf"no_question\.json: question id {qa['id']} has "
                                               r"no 'question' field"):
        read_squad_examples(str(write_squad(tmp_path / "no_question.json", articles)))
    articles = json.loads(json.dumps(small_articles(squad_slice[1], 1)))
    articles[0]["paragraphs"][0]["qas"][0]["answers"][0]["text"] = 5
    qid = articles[0]["paragraphs"][0]["qas"][0]["id"]
    with pytest.raises(SquadFormatError, match=rf"question id {qid}, answer 0: 'text' is a int"):
        read_squad_examples(str(write_squad(tmp_path / "bad_text.json", articles)))


def test_answer_start_off_its_text_is_counted_and_realigned(tmp_path, squad_slice, caplog):
    articles = json.loads(json.dumps(small_articles(squad_slice[1], 1)))
    qas = articles[0]["paragraphs"][0]["qas"]
    context = articles[0]["paragraphs"][0]["context"]
    # Question 0 ("France" at 159): every gold start moved by 3, so no answer is at its place.
    for answer in qas[0]["answers"]:
        answer["answer_start"] += 3
    # Question 1: only the first gold answer is off; the second one is right and trains.
    qas[1]["answers"][0]["answer_start"] = 0
    # Question 2: a text the context does not hold at all.
    for answer in qas[2]["answers"]:
        answer["text"] = "nowhere in the context"
    path = write_squad(tmp_path / "off.json", articles)
    with caplog.at_level(logging.WARNING):
        examples, _, report = read_squad_examples(str(path))
    by_id = {e.qid: e for e in examples}
    assert report.mismatched == [qas[0]["id"], qas[1]["id"], qas[2]["id"]]
    assert report.realigned == [qas[0]["id"]] and report.unusable == [qas[2]["id"]]
    start, end = by_id[qas[0]["id"]].train_span
    assert context[start:end] == "France" and start == 159
    second = qas[1]["answers"][1]
    assert by_id[qas[1]["id"]].train_span == (second["answer_start"],
                                              second["answer_start"] + len(second["text"]))
    assert by_id[qas[2]["id"]].train_span is None
    report.log(str(path))
    assert f"3 questions have a gold answer whose answer_start does not point at its text" \
        in caplog.text and qas[2]["id"] in caplog.text


def test_tokenizer_flags_are_checked(tmp_path):
    with pytest.raises(ValueError, match="exactly one of --wordpiece-vocab"):
        build_span_tokenizer()
    with pytest.raises(FileNotFoundError, match="--spm-model .*missing.model does not exist"):
        build_span_tokenizer(spm_model=str(tmp_path / "missing.model"))


# ----------------------------------------------------------------------------- span head
def test_span_head_fresh_after_pretrained_checkpoint_and_reloaded_after_fine_tuning(caplog):
    pretrained, dictionary = tiny_unilm_model(seed=0)
    pretrained_state = pretrained.state_dict()
    assert not any(k.startswith("span_head.") for k in pretrained_state)

    # Fine-tuning starts from the pre-trained body with the model's own fresh head.
    finetune, _ = tiny_unilm_model(seed=1)
    finetune.register_span_head()
    fresh = {k: v.clone() for k, v in finetune.span_head.state_dict().items()}
    with caplog.at_level(logging.INFO):
        finetune.load_state_dict(dict(pretrained_state))
    assert "no span head: starting it fresh" in caplog.text
    for key, value in finetune.span_head.state_dict().items():
        torch.testing.assert_close(value, fresh[key])
    torch.testing.assert_close(finetune.transformer.embed_tokens.weight,
                               pretrained.transformer.embed_tokens.weight)

    # A fine-tuned checkpoint's head is loaded, not re-initialised.
    with torch.no_grad():
        finetune.span_head.proj.weight.add_(1.0)
    tuned_state = finetune.state_dict()
    reloaded, _ = tiny_unilm_model(seed=2)
    reloaded.register_span_head()
    reloaded.load_state_dict(dict(tuned_state))
    tokens = torch.tensor([[dictionary.bos(), 5, 6, dictionary.eos(), 7, 8, dictionary.eos()]])
    segments = torch.tensor([[0, 0, 0, 0, 1, 1, 1]])
    with torch.no_grad():
        expected = finetune.eval()(tokens, segment_labels=segments, span_head=True)[0]
        torch.testing.assert_close(
            reloaded(tokens, segment_labels=segments, span_head=True)[0], expected)

    # Hub loading registers the head it finds; another task's model drops it with a warning.
    hub, _ = tiny_unilm_model(seed=3)
    hub.cfg.load_checkpoint_heads = True
    hub.load_state_dict(dict(tuned_state))
    with torch.no_grad():
        torch.testing.assert_close(hub(tokens, segment_labels=segments, span_head=True)[0],
                                   expected)
    other, _ = tiny_unilm_model(seed=4)
    with caplog.at_level(logging.WARNING):
        other.load_state_dict(dict(tuned_state))
    assert other.span_head is None and "deleting the checkpoint's span head" in caplog.text


# ----------------------------------------------------------------------------- fairseq-train
@pytest.fixture(scope="module")
def squad_dir(squad_slice, wordpiece, tmp_path_factory):
    """train.json: four paragraphs of Normans; valid.json: two of Southern_California; the
    WordPiece dict.txt."""
    root = tmp_path_factory.mktemp("squad-data")
    articles = squad_slice[1]
    write_squad(root / "train.json", small_articles(articles, 4))
    valid = [a for a in articles if a["title"] == "Southern_California"]
    write_squad(root / "valid.json", small_articles(valid, 2))
    (root / "dict.txt").write_text(Path(wordpiece[1]).read_text())
    return root


def squad_train_command(data: Path, save_dir: Path, vocab: Path, max_update: int):
    return [sys.executable, FULL_PRECISION_TRAIN, str(data), "--user-dir", USER_DIR,
            "--task", "squad", "--criterion", "squad_span", "--wordpiece-vocab", str(vocab),
            *TINY_MODEL_ARGS, "--max-seq-length", "64", "--doc-stride", "24",
            "--max-query-length", "16", "--batch-size", "8", "--update-freq", "2",
            "--num-workers", "2", "--optimizer", "adam", "--lr", "1e-3",
            "--lr-scheduler", "polynomial_decay", "--warmup-updates", "2",
            "--total-num-update", "8", "--max-update", str(max_update), "--save-dir",
            str(save_dir), "--no-epoch-checkpoints", "--save-interval-updates", "4",
            "--log-format", "json", "--log-interval", "1", "--seed", "3", "--cpu"]


def train(command, log: Path) -> Dict[int, dict]:
    import os

    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
    proc = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=env, timeout=600)
    log.write_text(proc.stdout)
    assert proc.returncode == 0, proc.stdout[-3000:]
    return {int(r["num_updates"]): r for r in
            (json.loads(m.group(1)) for m in TRAIN_INNER.finditer(proc.stdout))}


@pytest.fixture(scope="module")
def fine_tuned(squad_dir, wordpiece, tmp_path_factory):
    """An uninterrupted 8-update run, and one stopped after 4 updates and resumed to 8."""
    root = tmp_path_factory.mktemp("squad-train")
    whole = train(squad_train_command(squad_dir, root / "whole", wordpiece[0], 8),
                  root / "whole.log")
    first = train(squad_train_command(squad_dir, root / "resumed", wordpiece[0], 4),
                  root / "first.log")
    resumed = train(squad_train_command(squad_dir, root / "resumed", wordpiece[0], 8),
                    root / "resumed.log")
    return {"whole": whole, "first": first, "resumed": resumed, "root": root,
            "log": (root / "whole.log").read_text()}


def test_fairseq_train_resumes_with_the_same_losses(fine_tuned):
    whole, first, resumed = fine_tuned["whole"], fine_tuned["first"], fine_tuned["resumed"]
    assert sorted(whole) == list(range(1, 9)) and sorted(resumed) == [5, 6, 7, 8]
    # Exact: the runs are on this machine, one thread each, the same batches through the same
    # kernels; a resume that restores every state repeats their floats bit for bit.
    for update in range(1, 5):
        assert first[update]["loss"] == whole[update]["loss"]
    for update in range(5, 9):
        assert resumed[update]["loss"] == whole[update]["loss"], update
    # Two windows of 8 per update (--update-freq 2), the counts of the windows logged.
    assert float(whole[1]["bsz"]) == 16
    assert re.search(r"\d+ windows: \d+ with the answer, \d+ labelled null because the answer "
                     r"is not wholly inside them, \d+ of unanswerable questions", fine_tuned["log"])


def test_predict_writes_official_files_for_every_question(fine_tuned, squad_dir, tmp_path):
    ckpt = fine_tuned["root"] / "whole" / "checkpoint_last.pt"
    out = tmp_path / "pred"
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "squad.py"), "predict",
                           "--path", str(ckpt), "--data", str(squad_dir / "valid.json"),
                           "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    articles = json.loads((squad_dir / "valid.json").read_text())["data"]
    questions = {qa["id"]: p["context"] for p in articles[0]["paragraphs"] for qa in p["qas"]}
    predictions = json.loads((out / "predictions.json").read_text())
    null_odds = json.loads((out / "null_odds.json").read_text())
    scores = json.loads((out / "scores.json").read_text())
    assert set(predictions) == set(questions) == set(null_odds)
    for qid, text in predictions.items():
        assert text == "" or text in questions[qid]
        assert (text == "") == (null_odds[qid] > 0.0)
    assert {"exact", "f1", "total", "HasAns_exact", "HasAns_f1", "NoAns_exact", "NoAns_f1",
            "best_exact", "best_exact_thresh", "best_f1", "best_f1_thresh"} <= set(scores)
    assert scores["total"] == len(questions)

    # A user's file without positions, or without answers, is predicted all the same.
    for qa in (qa for p in articles[0]["paragraphs"] for qa in p["qas"]):
        qa.pop("is_impossible")
        qa["answers"] = []
    bare = write_squad(tmp_path / "bare.json", articles, version="v1.1")
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "squad.py"), "predict",
                           "--path", str(ckpt), "--data", str(bare), "--out",
                           str(tmp_path / "bare")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    bare_predictions = json.loads((tmp_path / "bare" / "predictions.json").read_text())
    assert set(bare_predictions) == set(questions)
    assert all(text and text in questions[qid] for qid, text in bare_predictions.items())
    assert not (tmp_path / "bare" / "scores.json").exists()


def test_hub_answer_returns_the_context_characters(fine_tuned, squad_dir):
    from fairseq_unilmv2.models.unilm_v2 import UniLMv2Model

    hub = UniLMv2Model.from_pretrained(str(fine_tuned["root"] / "whole"),
                                       checkpoint_file="checkpoint_last.pt",
                                       data_name_or_path=str(squad_dir))
    context = ("The Normans were the people who in the 10th and 11th centuries gave their name "
               "to Normandy, a region in France.")
    answer = hub.answer("When were the Normans in Normandy?", context, version_2=False)
    assert answer["text"] and context[answer["start"]:answer["end"]] == answer["text"]
    assert isinstance(answer["score"], float)


def test_training_file_without_positions_is_an_error(squad_dir, wordpiece, tmp_path):
    articles = json.loads((squad_dir / "train.json").read_text())["data"]
    for qa in (qa for p in articles[0]["paragraphs"] for qa in p["qas"]):
        qa["is_impossible"] = False
        for answer in qa["answers"]:
            answer.pop("answer_start")
    write_squad(tmp_path / "train.json", articles)
    (tmp_path / "valid.json").write_text((squad_dir / "valid.json").read_text())
    (tmp_path / "dict.txt").write_text((squad_dir / "dict.txt").read_text())
    proc = run_fairseq("fairseq-train", [
        tmp_path, "--user-dir", USER_DIR, "--task", "squad", "--criterion", "squad_span",
        "--wordpiece-vocab", wordpiece[0], *TINY_MODEL_ARGS, "--max-seq-length", "64",
        "--max-query-length", "16", "--batch-size", "8", "--optimizer", "adam", "--lr", "1e-3", "--max-update", "1",
        "--save-dir", tmp_path / "ckpt", "--cpu"], check=False, threads=1)
    assert proc.returncode != 0
    assert "no window has a usable gold answer position" in proc.stdout + proc.stderr
    assert "give no answer_start" in proc.stdout + proc.stderr


# ----------------------------------------------------------------------------- scores.json
class _RandomLogitsTask:
    """A stand-in for the squad task in ``scripts/squad.py predict``: the real windows and the
    real n-best postprocessing, over random logits (seeded per window), so that the null odds
    fall on both sides of the official script's 1.0."""

    def __init__(self, windower, threshold):
        from types import SimpleNamespace

        self.windower = windower
        self.cfg = SimpleNamespace(null_score_diff_threshold=threshold, n_best_size=20,
                                   max_answer_length=30, version_2_with_negative=False)

    def read_examples(self, path, articles=None):
        examples, version_2, _ = read_squad_examples(path, articles)
        return examples, version_2

    def predict(self, model, examples, version_2, batch_size=32):
        windows = [w for i, e in enumerate(examples) for w in self.windower.windows(e, i)]
        logits = []
        for k, window in enumerate(windows):
            window_logits = np.random.default_rng(k).normal(0.0, 2.0, size=(len(window.tokens), 2))
            # The null position raised by an amount drawn per question: odds from about -8
            # to +8.
            window_logits[0] += np.random.default_rng(10_000 + window.example_index).uniform(0, 8)
            logits.append(window_logits)
        return predict_all(examples, windows, logits, n_best_size=self.cfg.n_best_size,
                           max_answer_length=self.cfg.max_answer_length, version_2=version_2,
                           null_score_diff_threshold=self.cfg.null_score_diff_threshold)


def _official_v2_at_defaults(data: Path, out: Path) -> Dict[str, float]:
    """``evaluate-v2.0.py DATA predictions.json --na-prob-file null_odds.json`` at its defaults:
    the script itself when ``SQUAD_EVALUATE_V2`` names a copy of it, else this project's
    rendering of it (``fairseq_unilmv2.scoring.squad``, checked against the script's printed
    figures in ``test_squad_scoring.py``), read from the written files."""
    import os

    from fairseq_unilmv2.scoring.squad import (load_null_odds, load_predictions,
                                               load_squad_json, squad_v2_scores)

    script = os.environ.get("SQUAD_EVALUATE_V2")
    if script:
        proc = subprocess.run([sys.executable, script, str(data), str(out / "predictions.json"),
                               "--na-prob-file", str(out / "null_odds.json")],
                              capture_output=True, text=True, timeout=300, check=True)
        return json.loads(proc.stdout)
    return dict(squad_v2_scores(load_squad_json(data), load_predictions(out / "predictions.json"),
                                null_odds=load_null_odds(out / "null_odds.json")))


@pytest.mark.parametrize("threshold", [0.0, 1.0, 1e9])
def test_scores_json_is_the_official_script_at_its_defaults(squad_slice, wordpiece, tmp_path,
                                                            monkeypatch, threshold):
    import importlib.util

    spec = importlib.util.spec_from_file_location("squad_script", REPO / "scripts" / "squad.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    windower = SquadWindower(WordPieceSpanTokenizer(str(wordpiece[0])), wordpiece[2],
                             max_seq_length=128, doc_stride=64, max_query_length=32)
    monkeypatch.setattr(script, "load", lambda args: (None, _RandomLogitsTask(windower,
                                                                               threshold)))
    data, out = squad_slice[0], tmp_path / "pred"
    scores = script.predict(script.parse_args(
        ["predict", "--path", "unused.pt", "--data", str(data), "--out", str(out)]))
    written = json.loads((out / "scores.json").read_text())
    assert written == scores
    odds = json.loads((out / "null_odds.json").read_text())
    predictions = json.loads((out / "predictions.json").read_text())
    # The margin decides what predictions.json answers ...
    assert all((text == "") == (odds[qid] > threshold) for qid, text in predictions.items()
               if odds[qid] != 1e9)
    # ... and the odds fall on both sides of 1.0, where the official default threshold acts.
    above = [qid for qid in odds if odds[qid] > 1.0]
    assert 0 < len(above) < len(odds)
    official = _official_v2_at_defaults(data, out)
    assert list(written) == list(official)
    for key, value in official.items():
        assert written[key] == pytest.approx(value, abs=1e-9, rel=0), key
    if threshold == 1e9:
        # Answered questions with odds above 1.0: the official defaults count them unanswered,
        # so scoring the predictions as written would give other figures.
        from fairseq_unilmv2.scoring.squad import squad_v2_scores

        assert any(predictions[qid] for qid in above)
        as_written = squad_v2_scores(squad_slice[1], predictions, null_odds=odds,
                                     na_prob_thresh=threshold)
        assert as_written["exact"] != pytest.approx(written["exact"], abs=1e-9)
