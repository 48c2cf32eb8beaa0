"""Pre-training through fairseq's own CLI: preprocess, train, resume, validate (CPU, tiny model).

    fairseq-preprocess --only-source ...
    fairseq-train data-bin --user-dir fairseq_unilmv2 --task pmlm --criterion pmlm \\
        --arch unilm_v2_base <tiny overrides>

Text: a slice of WikiText-2 from ../shared/data (validation split to train on, test split to
validate on); when that folder is absent, sentences the test writes, with the reason printed.
"""
import random
import re

import pytest

from helpers import SHARED_DATA, TINY_MODEL_ARGS, USER_DIR, run_fairseq, write_lines

TRAIN_LINES, VALID_LINES = 1200, 200
FIRST_UPDATES, RESUMED_UPDATES = 40, 60

TRAIN_ARGS = [
    "--user-dir", USER_DIR, "--task", "pmlm", "--criterion", "pmlm", *TINY_MODEL_ARGS,
    "--tokens-per-sample", "64", "--batch-size", "16", "--optimizer", "adam", "--lr", "1e-3",
    "--lr-scheduler", "fixed", "--dropout", "0.0", "--attention-dropout", "0.0",
    "--log-format", "simple", "--log-interval", "1", "--num-workers", "0", "--seed", "1",
    "--no-epoch-checkpoints", "--no-progress-bar",
]


def corpus_lines():
    """(train, valid) lines: WikiText-2 when present, else text written here."""
    wikitext = SHARED_DATA / "wikitext2"
    if (wikitext / "valid.txt").exists() and (wikitext / "test.txt").exists():
        def non_empty(name, n):
            lines = (wikitext / name).read_text(encoding="utf-8").splitlines()
            return [line for line in lines if line.strip()][:n]
        return non_empty("valid.txt", TRAIN_LINES), non_empty("test.txt", VALID_LINES)
    print(f"{wikitext} is absent (the real corpora live in ../shared/data): training on "
          "text written by the test instead")
    # Words with Zipf-like frequencies, as in real text, so that learning shows early.
    rng = random.Random(0)
    words = [f"word{i}" for i in range(500)]
    weights = [1.0 / (rank + 1) ** 1.1 for rank in range(len(words))]

    def paragraphs(n):
        return [" ".join(rng.choices(words, weights, k=rng.randint(20, 120))) for _ in range(n)]
    return paragraphs(TRAIN_LINES), paragraphs(VALID_LINES)


def train_inner_losses(log):
    """{num_updates: loss} of the train_inner lines (one per update with --log-interval 1)."""
    return {int(m.group(2)): float(m.group(1)) for m in re.finditer(
        r"train_inner \|.* loss=([\d.]+),.* num_updates=(\d+),", log)}


def valid_losses(log):
    return [float(x) for x in re.findall(r"valid on 'valid' subset \| loss ([\d.]+)", log)]


@pytest.fixture(scope="module")
def data_bin(tmp_path_factory):
    work = tmp_path_factory.mktemp("pmlm_e2e")
    train, valid = corpus_lines()
    write_lines(work / "train.txt", train)
    write_lines(work / "valid.txt", valid)
    run_fairseq("fairseq-preprocess", [
        "--only-source", "--trainpref", work / "train.txt", "--validpref", work / "valid.txt",
        "--destdir", work / "data-bin", "--nwordssrc", "2000", "--workers", "1"])
    return work / "data-bin"


def fairseq_train(data_bin, save_dir, max_update):
    proc = run_fairseq("fairseq-train", [data_bin, *TRAIN_ARGS, "--save-dir", save_dir,
                                         "--max-update", str(max_update)])
    return proc.stdout + proc.stderr


def test_pretrain_resume_and_validate(data_bin, tmp_path):
    save_dir = tmp_path / "checkpoints"
    first = fairseq_train(data_bin, save_dir, FIRST_UPDATES)

    # Learning: the validation loss at the end is clearly below the loss of the first update.
    start_loss = train_inner_losses(first)[1]
    end_valid = valid_losses(first)[-1]
    assert end_valid < 0.8 * start_loss, (start_loss, end_valid)
    # Both parts of the objective are logged, in training and in validation.
    assert re.search(r"train_inner \|.* ae_loss=[\d.]+,.* par_loss=[\d.]+", first)
    assert re.search(r"\| valid on 'valid' subset \|.* ae_loss [\d.]+ \|.* par_loss [\d.]+", first)
    assert (save_dir / "checkpoint_last.pt").exists()

    # A second call resumes from checkpoint_last.pt and carries on counting updates.
    resumed = fairseq_train(data_bin, save_dir, RESUMED_UPDATES)
    loaded = re.search(r"Loaded checkpoint \S*checkpoint_last\.pt \(epoch \d+ @ (\d+) updates\)",
                       resumed)
    assert loaded, resumed[-3000:]
    assert int(loaded.group(1)) == FIRST_UPDATES
    updates = sorted(train_inner_losses(resumed))
    assert updates == list(range(FIRST_UPDATES + 1, RESUMED_UPDATES + 1))
    resumed_valid = valid_losses(resumed)[-1]
    assert resumed_valid < end_valid

    # fairseq-validate on the checkpoint gives the loss training logged (same masks: the
    # validation examples are a function of seed, epoch 1 and index).
    proc = run_fairseq("fairseq-validate", [
        data_bin, "--user-dir", USER_DIR, "--task", "pmlm", "--path",
        save_dir / "checkpoint_last.pt", "--batch-size", "16", "--num-workers", "0",
        "--log-format", "simple"])
    validated = valid_losses(proc.stdout + proc.stderr)
    print(f"loss at update 1 {start_loss}, valid after {FIRST_UPDATES} updates {end_valid}, "
          f"after {RESUMED_UPDATES} {resumed_valid}, fairseq-validate {validated}")
    assert validated and abs(validated[-1] - resumed_valid) < 0.01, (validated, resumed_valid)
