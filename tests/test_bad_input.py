"""Bad input gets a message that names the file, line or key and the fix; nothing is lost.

Covered: empty lines and empty documents, lines longer than a block, sources and targets
longer than their budgets, source/target files with different line counts, a dictionary
without <mask>, a checkpoint of another architecture or vocabulary, a missing --restore-file.
Most checks run in-process on the tasks; two go through fairseq-train to show that the
message reaches the user.
"""
import logging
import random
from pathlib import Path

import pytest
import torch
from fairseq import options
from fairseq.data import Dictionary
from fairseq_cli import preprocess

from fairseq_unilmv2.data.checks import check_checkpoint_matches
from fairseq_unilmv2.models.unilm_v2 import UniLMv2Config, UniLMv2Model
from fairseq_unilmv2.modules.transformer import UniLMv2Transformer
from fairseq_unilmv2.tasks.pmlm import PMLMConfig, PMLMTask
from fairseq_unilmv2.tasks.unilm_seq2seq import UniLMSeq2SeqConfig, UniLMSeq2SeqTask
from helpers import TINY_MODEL_ARGS, USER_DIR, run_fairseq, write_lines

WORDS = "the a of to and in is was for on with as by at from that this it an be".split()
LONG_LINE = 6  # 1-based line number of the over-long sentence in the text below


def fairseq_preprocess(*args) -> None:
    """fairseq-preprocess in this process (the CLI's own parser and main; no interpreter start)."""
    preprocess.main(options.get_preprocessing_parser().parse_args([str(a) for a in args]))


def binarize_text(lines, destdir: Path) -> Path:
    raw = write_lines(destdir.parent / f"{destdir.name}.txt", list(lines))
    fairseq_preprocess("--only-source", "--trainpref", raw, "--destdir", destdir,
                       "--workers", "1", "--thresholdsrc", "1")
    return destdir


def sentence(rng: random.Random, n_words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n_words))


@pytest.fixture(scope="module")
def messy_text(tmp_path_factory) -> Path:
    """Documents separated by empty lines, one empty document (two empty lines in a row) after
    each, and one 200-word sentence at line LONG_LINE."""
    rng = random.Random(0)
    lines = []
    for _ in range(4):
        lines += [sentence(rng, rng.randint(5, 15)) for _ in range(8)] + ["", ""]
    lines.insert(LONG_LINE - 1, sentence(rng, 200))
    return binarize_text(lines, tmp_path_factory.mktemp("messy") / "bin")


def pmlm_task(data: Path, **overrides) -> PMLMTask:
    cfg = PMLMConfig(data=str(data), tokens_per_sample=64, seed=1, **overrides)
    return PMLMTask.setup_task(cfg)


# -- monolingual text (pmlm) --------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["complete", "complete_doc"])
def test_line_longer_than_a_block_is_named_not_dropped(messy_text, mode):
    task = pmlm_task(messy_text, sample_break_mode=mode)
    with pytest.raises(ValueError) as error:
        task.load_dataset("train")
    message = str(error.value)
    assert str(messy_text / "train") in message
    assert f"lines {LONG_LINE} (201 tokens)" in message  # 200 words + eos
    assert "--tokens-per-sample 64" in message and "--sample-break-mode none" in message


def test_default_break_mode_keeps_every_token_of_long_lines_and_empty_documents(messy_text):
    task = pmlm_task(messy_text)  # --sample-break-mode none
    task.load_dataset("train")
    dataset = task.datasets["train"]
    text = dataset.blocks.dataset
    assert int(dataset.blocks.sizes.sum()) == int(text.sizes.sum())  # every token is in a block
    assert max(dataset.sizes) <= 64


def test_empty_lines_as_examples_are_named(tmp_path):
    data = binarize_text(["one line of text", "", "another line", ""], tmp_path / "bin")
    task = pmlm_task(data, sample_break_mode="eos")
    with pytest.raises(ValueError, match=r"2 empty lines.*lines 2, 4\).*complete_doc"):
        task.load_dataset("train")


def test_eos_mode_makes_one_example_per_line(tmp_path):
    # fairseq's eos-mode TokenBlockDataset needs np.compat.long, gone in NumPy 2 (compat fix 7).
    lines = ["one line of text", "another line", "and a third line here"]
    task = pmlm_task(binarize_text(lines, tmp_path / "bin"), sample_break_mode="eos")
    task.load_dataset("train")
    dataset = task.datasets["train"]
    lengths = sorted(dataset[i]["text_length"] for i in range(len(dataset)))
    assert lengths == sorted(len(line.split()) + 3 for line in lines)  # [SOS] S1 [EOS] S2 [EOS]


def test_text_without_any_words_is_named(tmp_path):
    data = binarize_text(["", "", ""], tmp_path / "bin")
    with pytest.raises(ValueError, match=r"bin/train: no text \(3 lines, all empty\)"):
        pmlm_task(data).load_dataset("train")


# -- language pairs (unilm_seq2seq) -------------------------------------------------------------

def binarize_pairs(tmp: Path, sources, targets) -> Path:
    write_lines(tmp / "train.src", sources)
    write_lines(tmp / "train.tgt", targets)
    fairseq_preprocess("-s", "src", "-t", "tgt", "--joined-dictionary", "--trainpref",
                       tmp / "train", "--destdir", tmp / "bin", "--workers", "1",
                       "--thresholdsrc", "1")
    return tmp / "bin"


def seq2seq_task(data: Path, **overrides) -> UniLMSeq2SeqTask:
    cfg = UniLMSeq2SeqConfig(data=str(data), seed=1, train_subset="train", dataset_impl=None,
                             **overrides)
    return UniLMSeq2SeqTask.setup_task(cfg)


def test_source_and_target_line_counts_differ(tmp_path):
    rng = random.Random(1)
    data = binarize_pairs(tmp_path, [sentence(rng, 8) for _ in range(5)],
                          [sentence(rng, 4) for _ in range(4)])
    with pytest.raises(ValueError) as error:
        seq2seq_task(data).load_dataset("train")
    message = str(error.value)
    assert f"{data}/train.src-tgt.src has 5 lines but {data}/train.src-tgt.tgt has 4" in message
    assert "fairseq-preprocess" in message


def test_empty_target_line_is_named(tmp_path):
    rng = random.Random(2)
    targets = [sentence(rng, 4) for _ in range(4)]
    targets[2] = ""
    data = binarize_pairs(tmp_path, [sentence(rng, 8) for _ in range(4)], targets)
    with pytest.raises(ValueError, match=r"train.src-tgt.tgt: 1 empty lines \(lines 3\)"):
        seq2seq_task(data).load_dataset("train")


def test_source_and_target_over_budget_are_truncated_with_a_warning(tmp_path, caplog):
    rng = random.Random(3)
    sources = [sentence(rng, 8) for _ in range(6)]
    targets = [sentence(rng, 4) for _ in range(6)]
    sources[1], targets[4] = sentence(rng, 100), sentence(rng, 30)
    data = binarize_pairs(tmp_path, sources, targets)
    task = seq2seq_task(data, max_source_positions=32, max_target_positions=16)
    with caplog.at_level(logging.WARNING):
        task.load_dataset("train")
    warnings = caplog.text
    assert "1 of 6 sources are longer than --max-source-positions 32" in warnings
    assert "1 of 6 targets are longer than --max-target-positions 16" in warnings
    dataset = task.datasets["train"]
    assert len(dataset) == 6  # none dropped
    assert [len(dataset.source(i)) for i in (0, 1)] == [10, 32]  # [CLS] 8 words [SEP]; cut
    assert [len(dataset.target(i)) for i in (3, 4)] == [5, 16]


# -- dictionaries and checkpoints ---------------------------------------------------------------

def tiny_cfg(**overrides) -> UniLMv2Config:
    sizes = dict(encoder_layers=2, encoder_embed_dim=32, encoder_ffn_embed_dim=64,
                 encoder_attention_heads=4)
    return UniLMv2Config(**{**sizes, **overrides})


def model_for(dictionary: Dictionary, **overrides) -> UniLMv2Model:
    cfg = tiny_cfg(**overrides)
    return UniLMv2Model(cfg, UniLMv2Transformer(cfg, len(dictionary), dictionary.pad()),
                        dictionary)


def dictionary_of(n_words: int, with_mask: bool = True) -> Dictionary:
    d = Dictionary()
    for i in range(n_words):
        d.add_symbol(f"w{i}")
    if with_mask:
        d.add_symbol("<mask>")
    return d


def test_dictionary_without_mask_symbol_is_named_when_decoding():
    model = model_for(dictionary_of(20, with_mask=False)).eval()
    src = torch.tensor([[0, 5, 6, 2]])
    encoder_out = model.encoder(src)
    with pytest.raises(ValueError, match=r"has no <mask> symbol.*'<mask> 0' to dict.txt"):
        model.decoder(torch.tensor([[2]]), encoder_out=encoder_out)


def test_tasks_append_the_mask_symbol_to_a_dictionary_without_it(messy_text):
    on_disk = Dictionary.load(str(messy_text / "dict.txt"))
    assert "<mask>" not in on_disk.indices
    task = pmlm_task(messy_text)
    assert task.dictionary.index("<mask>") == len(on_disk)


def test_checkpoint_with_other_vocabulary_size():
    checkpoint = model_for(dictionary_of(30)).state_dict()
    model = model_for(dictionary_of(40))
    with pytest.raises(ValueError, match=r"vocabulary has 35 entries but this task's dictionary "
                                         r"has 45.*fairseq-preprocess --srcdict"):
        model.load_state_dict(checkpoint)


def test_checkpoint_of_other_size():
    d = dictionary_of(30)
    checkpoint = model_for(d, encoder_layers=3).state_dict()
    with pytest.raises(ValueError, match=r"architecture differs.*3 layers in the checkpoint, 2 in "
                                         r"the model.*--encoder-layers"):
        model_for(d).load_state_dict(checkpoint)
    wider = model_for(d, encoder_ffn_embed_dim=128).state_dict()
    with pytest.raises(ValueError, match=r"transformer.layers.0.fc1.weight is \(128, 32\) in the "
                                         r"checkpoint, \(64, 32\) in the model"):
        model_for(d).load_state_dict(wider)


def test_checkpoint_of_another_architecture():
    roberta_like = {"encoder.sentence_encoder.embed_tokens.weight": torch.zeros(35, 32),
                    "encoder.lm_head.bias": torch.zeros(35)}
    with pytest.raises(ValueError, match=r"not a unilm_v2 model.*encoder.lm_head.bias.*"
                                         r"scripts/convert_checkpoint.py"):
        check_checkpoint_matches(roberta_like, model_for(dictionary_of(30)).state_dict())


def test_matching_checkpoint_loads_exactly():
    d = dictionary_of(30)
    source, target = model_for(d), model_for(d)
    target.load_state_dict(source.state_dict())
    for name, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[name], value), name


# -- through fairseq-train ----------------------------------------------------------------------

def train_args(data: Path, save_dir: Path):
    return [data, "--user-dir", USER_DIR, "--task", "pmlm", "--criterion", "pmlm",
            *TINY_MODEL_ARGS, "--tokens-per-sample", "32", "--batch-size", "2",
            "--optimizer", "adam", "--lr", "1e-4", "--max-update", "1", "--disable-validation",
            "--save-dir", save_dir, "--no-epoch-checkpoints", "--cpu", "--num-workers", "0"]


def test_restore_file_that_does_not_exist(messy_text, tmp_path):
    missing = tmp_path / "no_such_checkpoint.pt"
    proc = run_fairseq("fairseq-train", [*train_args(messy_text, tmp_path / "ck"),
                                         "--restore-file", missing], check=False)
    assert proc.returncode != 0
    assert f"--restore-file {missing} does not exist" in proc.stderr
    assert not (tmp_path / "ck" / "checkpoint_last.pt").exists()  # nothing trained from scratch


def test_restore_checkpoint_of_other_vocabulary_through_fairseq_train(messy_text, tmp_path):
    run_fairseq("fairseq-train", train_args(messy_text, tmp_path / "first"))
    rng = random.Random(4)
    other = binarize_text([f"{sentence(rng, 6)} extra{i}" for i in range(30)],
                          tmp_path / "other-bin")
    first = tmp_path / "first" / "checkpoint_last.pt"
    proc = run_fairseq("fairseq-train", [*train_args(other, tmp_path / "second"),
                                         "--restore-file", first], check=False)
    assert proc.returncode != 0
    assert "the checkpoint's vocabulary has" in proc.stderr
    assert "fairseq-preprocess --srcdict" in proc.stderr
    assert str(first) in proc.stderr
