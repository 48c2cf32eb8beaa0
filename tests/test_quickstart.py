"""The quickstart (``make demo``) in its reduced mode: the same script and stages, tiny sizes.

One run of ``scripts/quickstart.py --quick --compare-scratch`` (a minute or two on 2 CPUs) is
shared by the checks below; each checks that one artefact exists and is well formed. Whether
the full-size demo learns is measured by ``make demo`` itself (it prints the criteria) and
recorded on the results page (docs/results.md, ``make studies``), not asserted here: tiny sizes
learn nothing in 30 updates.
"""
import json
import math
import os
import random
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
from helpers import REPO

sys.path.insert(0, str(REPO / "scripts"))
import quickstart  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("quickstart")
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="2")
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "quickstart.py"), "--quick",
                           "--compare-scratch", "--out", str(out)], capture_output=True,
                          text=True, timeout=900, env=env)
    assert proc.returncode == 0, f"quickstart failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
    return out, proc.stdout


def lines(path: Path):
    return path.read_text(encoding="utf-8").splitlines()


def test_every_stage_prints_its_command_and_the_end_says_where_results_are(demo):
    out, stdout = demo
    for command in ["sentencepiece as spm", "fairseq-preprocess --only-source",
                    "fairseq-preprocess --source-lang src", "fairseq-train", "--task pmlm",
                    "--task unilm_seq2seq", "--restore-file", "fairseq-generate",
                    "scripts/score.py"]:
        assert any(line.startswith("$ ") and command in line for line in stdout.splitlines()), \
            f"no printed command containing {command!r}"
    assert '| train_inner | {"epoch"' in stdout  # fairseq's own progress lines shown live
    assert "unigram entropy" in stdout and "exact match" in stdout
    assert stdout.count("\n  reference  ") == quickstart.SHOWN_EXAMPLES
    assert stdout.count("\n  hypothesis ") == quickstart.SHOWN_EXAMPLES
    assert stdout.count("\n  scratch    ") == quickstart.SHOWN_EXAMPLES  # --compare-scratch
    tail = stdout[stdout.rindex("== done"):]
    for artefact in ["spm.model", "checkpoint_last.pt", "checkpoint_best.pt", "test.hyp",
                     "scores.json", "loss_curves.png"]:
        assert artefact in tail


def test_sentencepiece_model_loads_and_round_trips_text(demo):
    import sentencepiece as spm
    out, _ = demo
    sp = spm.SentencePieceProcessor(model_file=str(out / "spm" / "spm.model"))
    assert sp.get_piece_size() == quickstart.QuickstartConfig.vocab_size
    sentence = lines(out / "text" / "seq2seq" / "test.tgt")[0]
    assert sp.decode(sp.encode(sentence)) == sentence


def test_binarized_data_has_every_split_and_one_shared_dictionary(demo):
    from fairseq.data import Dictionary, data_utils
    out, _ = demo
    pretrain, seq2seq = out / "data-bin" / "pretrain", out / "data-bin" / "seq2seq"
    dictionary = Dictionary.load(str(pretrain / "dict.txt"))
    assert (seq2seq / "dict.src.txt").read_text() == (pretrain / "dict.txt").read_text()
    assert (seq2seq / "dict.tgt.txt").read_text() == (pretrain / "dict.txt").read_text()
    for split in ("train", "valid"):
        data = data_utils.load_indexed_dataset(str(pretrain / split), dictionary)
        assert data is not None and data.sizes.sum() > 1000
    for split in ("train", "valid", "test"):
        n_raw = len(lines(out / "text" / "seq2seq" / f"{split}.src"))
        for lang in ("src", "tgt"):
            data = data_utils.load_indexed_dataset(str(seq2seq / f"{split}.src-tgt.{lang}"),
                                                   dictionary)
            assert len(data) == n_raw
    test_sources = data_utils.load_indexed_dataset(str(seq2seq / "test.src-tgt.src"), dictionary)
    n_unknown = sum(int(item.eq(dictionary.unk()).sum()) for item in test_sources)
    assert n_unknown == 0  # the pre-training vocabulary covers the seq2seq text


def test_both_checkpoints_load_and_fine_tuning_started_from_pre_training(demo):
    out, _ = demo
    pre = torch.load(out / "checkpoints" / "pretrain" / "checkpoint_last.pt", weights_only=False)
    fine = torch.load(out / "checkpoints" / "finetune" / "checkpoint_best.pt", weights_only=False)
    scratch = torch.load(out / "checkpoints" / "scratch" / "checkpoint_best.pt",
                         weights_only=False)
    assert pre["cfg"]["task"]["_name"] == "pmlm"
    assert fine["cfg"]["task"]["_name"] == "unilm_seq2seq"
    assert pre["cfg"]["model"]["encoder_ffn_embed_dim"] == quickstart.QUICK["encoder_ffn_embed_dim"]
    assert pre["model"].keys() == fine["model"].keys()
    for name, tensor in pre["model"].items():
        assert fine["model"][name].shape == tensor.shape, name
    # The scratch run is the same fine-tuning without --restore-file.
    assert scratch["cfg"]["checkpoint"]["restore_file"] == "checkpoint_last.pt"
    assert fine["cfg"]["checkpoint"]["restore_file"].endswith("pretrain/checkpoint_last.pt")
    assert dict(scratch["cfg"]["optimization"]) == dict(fine["cfg"]["optimization"])
    assert fine["extra_state"]["train_iterator"]["epoch"] >= 1
    # Fine-tuning counted its own updates from 0 (--reset-optimizer), not on from pre-training.
    assert fine["optimizer_history"][-1]["num_updates"] <= quickstart.QUICK["finetune_updates"]


def test_one_detokenized_hypothesis_per_test_input(demo):
    out, _ = demo
    sources = lines(out / "text" / "seq2seq" / "test.src")
    hypotheses = lines(out / "test.hyp")
    assert len(sources) == quickstart.QUICK["max_test_examples"]
    assert len(hypotheses) == len(sources)
    detok_ids = sorted(int(line.split("\t")[0][2:]) for line in
                       lines(out / "generate" / "finetune" / "generate-test.txt")
                       if line.startswith("D-"))
    assert detok_ids == list(range(len(sources)))
    assert not any("▁" in h for h in hypotheses)  # sentencepiece pieces were merged back


def test_scores_compare_the_systems_with_the_baseline(demo):
    out, _ = demo
    scores = json.loads((out / "scores.json").read_text())
    assert set(scores) == {"finetune", "scratch", "baseline"}
    for system in scores.values():
        for key in ("exact", "rouge1", "rouge2", "rougeL", "bleu"):
            assert 0.0 <= system[key] <= 100.0, key
    # The baseline answers every example with the most frequent training answer.
    answer = scores["baseline"]["answer"]
    train_answers = lines(out / "text" / "seq2seq" / "train.tgt")
    assert train_answers.count(answer) == max(Counter(train_answers).values())
    assert set(lines(out / "baseline.hyp")) == {answer}
    references = lines(out / "text" / "seq2seq" / "test.tgt")
    assert scores["baseline"]["exact"] == pytest.approx(
        100.0 * references.count(answer) / len(references), abs=1e-3)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scores"] == scores


def test_unigram_entropy_is_the_valid_text_under_training_counts(demo):
    """Recomputed from the sentencepiece text files and dict.txt (add-one smoothing)."""
    out, _ = demo
    vocabulary = len(lines(out / "data-bin" / "pretrain" / "dict.txt"))
    train = Counter((out / "spm" / "pretrain" / "train.txt").read_text().split())
    valid = (out / "spm" / "pretrain" / "valid.txt").read_text().split()
    total = sum(train.values()) + vocabulary
    expected = -sum(math.log2((train[t] + 1) / total) for t in valid) / len(valid)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pretraining"]["unigram_entropy"] == pytest.approx(expected, abs=1e-6)
    curves = json.loads((out / "loss_curves.json").read_text())
    assert curves["unigram_entropy"] == summary["pretraining"]["unigram_entropy"]
    assert summary["pretraining"]["bits_below_unigram"] == pytest.approx(
        expected - max(summary["pretraining"]["ae_loss"], summary["pretraining"]["par_loss"]))


def test_png_plots_pre_training_and_fine_tuning_curves(demo):
    out, _ = demo
    assert (out / "loss_curves.png").read_bytes()[:8] == PNG_SIGNATURE
    curves = json.loads((out / "loss_curves.json").read_text())
    expected = {"pretrain": ["train_ae_loss", "train_par_loss", "valid_ae_loss", "valid_par_loss"],
                "finetune": ["train_loss", "valid_loss"], "scratch": ["train_loss", "valid_loss"]}
    for stage, names in expected.items():
        for name in names:
            points = curves[stage][name]
            updates = [u for u, _ in points]
            assert len(points) >= 2, f"{stage} {name}: {points}"
            budget = quickstart.QUICK["pretrain_updates" if stage == "pretrain" else
                                      "finetune_updates"]
            assert updates == sorted(updates) and updates[-1] <= budget
            assert all(math.isfinite(v) and v > 0 for _, v in points)


def test_backwards_word_pairs_reverse_one_word_in_its_context():
    paragraph = ("The if statement is used for conditional execution. It selects exactly one of "
                 "the suites (see below).")
    pairs = quickstart.backwards_word_pairs(paragraph, random.Random(0), context_words=2,
                                            every=4)
    assert len(pairs) == len(paragraph.split()) // 4
    for source, answer in pairs:
        assert len(answer) >= 4 and answer.isalpha()
        assert source.count("[") == 1 and f"[{answer[::-1]}]" in source
        assert source.replace(f"[{answer[::-1]}]", answer) in paragraph
        assert 3 <= len(source.split()) <= 5
    # Punctuation stays outside the brackets; words under four letters are never chosen.
    sources = {a: s for s, a in quickstart.backwards_word_pairs(
        "(see below). The class", random.Random(0), context_words=1, every=1)}
    assert sources == {"below": "(see [woleb]). The", "class": "The [ssalc]"}


def test_prose_paragraphs_skip_headings_and_code():
    document = ("Class definitions\n*****************\n\nA class definition defines a class "
                "object (see section The standard\ntype hierarchy):\n\n   classdef ::= "
                "[decorators] \"class\" classname [inheritance] \":\" suite\n\n   class Foo:\n"
                "       pass\n")
    assert quickstart.prose_paragraphs(document) == [
        "A class definition defines a class object (see section The standard type hierarchy):"]


def test_user_text_files_replace_the_builtin_corpus(tmp_path):
    text = tmp_path / "mine.txt"
    paragraph = ("Paragraph number {i} talks about the weather in town. The rain fell all day "
                 "long and the streets were wet. People stayed inside and read books.")
    text.write_text("\n\n".join(paragraph.format(i=i) for i in range(40)), encoding="utf-8")
    cfg = quickstart.parse_args(["--text", str(text), "--out", str(tmp_path / "out")])
    counts = quickstart.build_text(cfg, tmp_path / "text")
    examples = len(paragraph.split()) // cfg.example_every  # per paragraph
    assert counts["seq2seq_test_pairs"] == counts["seq2seq_valid_pairs"] == 4 * examples
    assert counts["pretrain_train_paragraphs"] == 32
    pretrain_text = (tmp_path / "text" / "pretrain" / "train.txt").read_text()
    pretrain_text += (tmp_path / "text" / "pretrain" / "valid.txt").read_text()
    assert "weather" in pretrain_text
    # Test examples come from the 4 test paragraphs, never seen in pre-training.
    test_numbers = set()
    for source, answer in zip(lines(tmp_path / "text" / "seq2seq" / "test.src"),
                              lines(tmp_path / "text" / "seq2seq" / "test.tgt")):
        filled = source.replace(f"[{answer[::-1]}]", answer)
        test_numbers.update(int(n) for n in re.findall(r"number (\d+)", filled))
    assert test_numbers
    for number in test_numbers:
        assert f"Paragraph number {number} " not in pretrain_text


def test_quick_mode_keeps_explicit_sizes():
    cfg = quickstart.parse_args(["--quick", "--pretrain-updates", "7"])
    assert cfg.pretrain_updates == 7
    assert cfg.finetune_updates == quickstart.QUICK["finetune_updates"]
    assert quickstart.parse_args([]).pretrain_updates == \
        quickstart.QuickstartConfig.pretrain_updates


def test_bad_options_are_refused_with_the_flag_named(tmp_path, capsys):
    for argv, message in [(["--pretrain-updates", "0"], "--pretrain-updates must be > 0"),
                          (["--text", str(tmp_path / "absent.txt")], "no such file")]:
        with pytest.raises(SystemExit):
            quickstart.parse_args(argv)
        assert message in capsys.readouterr().err
