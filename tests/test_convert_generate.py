"""End to end from an s2s-ft fine-tuned checkpoint to detokenized text (issue 4).

A random checkpoint in the s2s-ft layout (BERT names, ``bert.rel_pos_bias.weight``,
``cls.predictions.*``) goes through ``scripts/convert_checkpoint.py``; raw text is WordPiece-
tokenized with ``scripts/wordpiece.py`` and binarized with the converted ``dict.txt``; and
``fairseq-generate --bpe bert`` prints detokenized hypotheses. The model is random, so the test
asserts the format, not the words: one hypothesis a source, no ``##`` piece left, and the
forced prefix (``--prefix-size 2``: the two pieces of a split word) merged back into that word.
"""
import re

import pytest
from helpers import USER_DIR, convert_and_binarize, run_fairseq, write_s2s_ft_release

transformers = pytest.importorskip("transformers")

SOURCES = ["The cat sat on the mat.", "Hello world, the dog ran in the park.",
           "A cat is walking and a dog is playing."]
# Each target starts with a word that WordPiece splits in two: cats -> cat ##s.
TARGETS = ["Cats sat.", "Dogs ran in the park.", "Walking is play."]
FIRST_WORDS = ["cats", "dogs", "walking"]


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """The converted model directory, its conversion log, and the binarized WordPiece data."""
    release = write_s2s_ft_release(tmp_path_factory.mktemp("s2s_ft"))
    return convert_and_binarize(release, tmp_path_factory.mktemp("converted"), SOURCES, TARGETS)


def test_s2s_ft_checkpoint_generates_detokenized_text(converted):
    model_dir, log, raw, data_bin = converted
    assert "checkpoint layout: s2s_ft" in log
    assert (raw / "test.tgt").read_text().split("\n")[0] == "cat ##s sat ."  # uncased, split

    proc = run_fairseq("fairseq-generate", [
        data_bin, "--user-dir", USER_DIR, "--task", "unilm_seq2seq",
        "--path", model_dir / "model.pt", "--gen-subset", "test", "--batch-size", "2",
        "--beam", "2", "--max-len-b", "6", "--prefix-size", "2",
        "--max-source-positions", "40", "--max-target-positions", "16",
        "--bpe", "bert", "--bpe-vocab-file", model_dir / "vocab.txt"])

    tokenized = dict(re.findall(r"^H-(\d+)\t\S+\t(.*)$", proc.stdout, flags=re.M))
    assert all(" ##" in text for text in tokenized.values())  # what --bpe bert detokenizes
    detokenized = dict(re.findall(r"^D-(\d+)\t\S+\t(.*)$", proc.stdout, flags=re.M))
    assert sorted(map(int, detokenized)) == list(range(len(SOURCES)))
    for index, text in detokenized.items():
        assert "##" not in text
        assert text.split()[0].startswith(FIRST_WORDS[int(index)]), text
    sources = dict(re.findall(r"^S-(\d+)\t(.*)$", proc.stdout, flags=re.M))
    assert sources["0"] == "the cat sat on the mat."  # the source, detokenized as well


def test_fairseq_train_restores_the_converted_checkpoint(converted, tmp_path):
    """fine-tuning starts from model.pt with the architecture flags the converter printed, and
    s2s-ft's weight decay groups (``--optimizer adam_no_decay_bias_ln``)."""
    model_dir, log, _, data_bin = converted
    flags = re.search(r"fairseq-train flags for this model: (.*)$", log, flags=re.M).group(1)
    assert (model_dir / "model_flags.txt").read_text().strip() == flags
    proc = run_fairseq("fairseq-train", [
        data_bin, "--user-dir", USER_DIR, "--task", "unilm_seq2seq", "--criterion",
        "unilm_seq2seq", *flags.split(), "--max-source-positions", "40",
        "--max-target-positions", "16", "--optimizer", "adam_no_decay_bias_ln",
        "--weight-decay", "0.01", "--lr", "1e-4",
        "--batch-size", "3", "--max-update", "1", "--restore-file", model_dir / "model.pt",
        "--save-dir", tmp_path, "--no-save", "--no-progress-bar"])
    assert re.search(r"Loaded checkpoint .*model\.pt \(epoch 1 @ 0 updates\)", proc.stdout + proc.stderr)
    assert "num_updates 1" in proc.stdout + proc.stderr
    assert re.search(r"weight decay 0.01 on [\d,]+ values \(matrices, embeddings\), none on "
                     r"[\d,]+ \(biases, LayerNorm weights, relative position bias\)",
                     proc.stdout + proc.stderr)


def test_generate_fits_unset_budgets_to_a_small_position_table(converted):
    """The converted model has 64 positions, fewer than the default 464 + 48: budgets left
    unset are fitted to the table (and logged), budgets set too large are an error naming the
    flags to set."""
    model_dir, _, _, data_bin = converted
    common = [data_bin, "--user-dir", USER_DIR, "--task", "unilm_seq2seq",
              "--path", model_dir / "model.pt", "--gen-subset", "test", "--batch-size", "2",
              "--beam", "2", "--max-len-b", "6"]

    proc = run_fairseq("fairseq-generate", common)
    assert "the model has 64 positions: --max-source-positions 48, --max-target-positions 16" \
        in proc.stdout + proc.stderr
    assert sorted(map(int, re.findall(r"^H-(\d+)\t", proc.stdout, flags=re.M))) == [0, 1, 2]

    proc = run_fairseq("fairseq-generate", [*common, "--max-source-positions", "56"])
    assert "--max-source-positions 56, --max-target-positions 8" in proc.stdout + proc.stderr

    proc = run_fairseq("fairseq-generate", [*common, "--max-source-positions", "60",
                                            "--max-target-positions", "16"], check=False)
    assert proc.returncode != 0
    assert ("--max-source-positions 60 + --max-target-positions 16 = 76 do not fit the model's "
            "64 learned positions") in proc.stdout + proc.stderr
    assert "e.g. 48 and 16" in proc.stdout + proc.stderr


def test_fitted_positions_keep_what_is_given():
    from fairseq_unilmv2.tasks.unilm_seq2seq import fitted_positions
    assert fitted_positions(512) == (464, 48)
    assert fitted_positions(768) == (464, 48)
    assert fitted_positions(128) == (96, 32)
    assert fitted_positions(128, source=100) == (100, 28)
    assert fitted_positions(128, target=20) == (108, 20)
    assert fitted_positions(128, 200, 48) == (200, 48)  # both given: kept (build_model refuses)
