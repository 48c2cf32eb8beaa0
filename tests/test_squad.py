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


@pytest.fixture(scope="module")
def wordpiece(squad_slice, tmp_path_factory):
    """A WordPiece vocabulary trained on the slice (2,000 entries, BERT's specials), its
    converted dict.txt and the task's dictionary."""
    tokenizers = pytest.importorskip("tokenizers")
    root = tmp_path_factory.mktemp("wordpiece")
    trainer = tokenizers.BertWordPieceTokenizer(lowercase=True)
    trainer.train_from_iterator(slice_texts(squad_slice[2]), vocab_size=2000,
                                special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    trainer.save_model(str(root))
    write_fairseq_dict(read_wordpiece_vocab(root / "vocab.txt"), root / "dict.txt")
    return root / "vocab.txt", root / "dict.txt", load_task_dictionary(root / "dict.txt")


@pytest.fixture(scope="module")
def sentencepiece_model(squad_slice, tmp_path_factory):
    """A sentencepiece model trained on the slice, and a dict.txt of its pieces."""
    import sentencepiece as spm

    root = tmp_path_factory.mktemp("spm")
    (root / "text.txt").write_text("\n".join(slice_texts(squad_slice[2])) + "\n")
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
    texts = slice_texts(squad_slice[2]) + ["Ünïcode café, naïve — “quotes” 東京 x\u200by"]
    for text in texts:
        pieces, offsets = mine.tokenize(text)
        assert pieces == reference.tokenize(text), text
        for piece, (start, end) in zip(pieces, offsets):
            if piece != "[UNK]":
                assert _uncased(text[start:end]) == piece.removeprefix("##"), (text, piece)


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
    assert scores["HasAns_exact"] >= 99.5, f"shortfall by id: {result['shortfall']}"
    assert scores["NoAns_exact"] == 100.0


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
    assert scores["exact_match"] >= 99.5 and scores["f1"] >= 99.5


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
