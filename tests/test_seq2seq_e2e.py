"""End to end: fairseq-preprocess -> fairseq-train --task unilm_seq2seq -> fairseq-generate,
fairseq-interactive and the hub interface, on a small deterministic task (reverse a sequence of
letters). A tiny model is trained from scratch once per module and reused by every test.
"""
import random

import pytest

from helpers import TINY_MODEL_ARGS, USER_DIR, run_fairseq, write_lines

LETTERS = "a b c d e f g h i j".split()
N_TEST = 101  # not a multiple of 8: no example may be lost to --required-batch-size-multiple


def fairseq(name, args, **kwargs):
    """A fairseq CLI with one thread: a tiny model gains nothing from more (see run_fairseq)."""
    return run_fairseq(name, args, threads=1, **kwargs)


def reverse_pairs(count: int, rng: random.Random):
    pairs = []
    for _ in range(count):
        words = [rng.choice(LETTERS) for _ in range(rng.randint(3, 6))]
        pairs.append((" ".join(words), " ".join(reversed(words))))
    return pairs


def write_split(directory, split, pairs):
    write_lines(directory / f"{split}.src", [s for s, _ in pairs])
    write_lines(directory / f"{split}.tgt", [t for _, t in pairs])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(data-bin, checkpoint, held-out pairs) of a tiny model that learned to reverse."""
    root = tmp_path_factory.mktemp("reverse")
    rng = random.Random(0)
    train, valid = reverse_pairs(3000, rng), reverse_pairs(64, rng)
    seen = {s for s, _ in train}
    test = [p for p in reverse_pairs(4 * N_TEST, rng) if p[0] not in seen][:N_TEST]
    assert len(test) == N_TEST
    for split, pairs in [("train", train), ("valid", valid), ("test", test)]:
        write_split(root, split, pairs)
    data_bin = root / "data-bin"
    fairseq("fairseq-preprocess", [
        "-s", "src", "-t", "tgt", "--joined-dictionary", "--trainpref", root / "train",
        "--validpref", root / "valid", "--testpref", root / "test", "--destdir", data_bin,
        "--workers", "1"])
    save_dir = root / "checkpoints"
    fairseq("fairseq-train", [
        data_bin, "--user-dir", USER_DIR, "--task", "unilm_seq2seq",
        "--criterion", "unilm_seq2seq", *TINY_MODEL_ARGS,
        "--max-source-positions", "16", "--max-target-positions", "16",
        "--dropout", "0", "--attention-dropout", "0",
        "--optimizer", "adam", "--lr", "2e-3", "--lr-scheduler", "inverse_sqrt",
        "--warmup-updates", "100", "--batch-size", "64", "--max-update", "300",
        "--save-dir", save_dir, "--no-epoch-checkpoints", "--no-last-checkpoints",
        "--log-format", "simple", "--seed", "1", "--num-workers", "0"])
    return data_bin, save_dir / "checkpoint_best.pt", test


def exact_match(hypotheses, references):
    return sum(h == r for h, r in zip(hypotheses, references)) / len(references)


def parse_generate(stdout: str, prefix: str = "H", field: int = -1):
    """{example id: hypothesis text} of fairseq-generate / fairseq-interactive output (with
    ``field=1`` on H lines: {example id: score})."""
    out = {}
    for line in stdout.splitlines():
        if line.startswith(f"{prefix}-"):
            fields = line.split("\t")
            out[int(fields[0][len(prefix) + 1:])] = fields[field]
    return out


def test_generate_reverses_held_out_inputs_one_hypothesis_each(trained):
    data_bin, checkpoint, test = trained
    proc = fairseq("fairseq-generate", [
        data_bin, "--user-dir", USER_DIR, "--task", "unilm_seq2seq", "--path", checkpoint,
        "--gen-subset", "test", "--beam", "5", "--batch-size", "16",
        "--required-batch-size-multiple", "8", "--max-source-positions", "16",
        "--scoring", "rouge"])
    hypotheses = parse_generate(proc.stdout)
    assert len(hypotheses) == N_TEST and sorted(hypotheses) == list(range(N_TEST))
    accuracy = exact_match([hypotheses[i] for i in range(N_TEST)], [t for _, t in test])
    assert accuracy >= 0.95, f"exact match {accuracy:.3f}"
    # The sources fairseq-generate prints are the plain sources, not the packed layout.
    sources = parse_generate(proc.stdout, prefix="S")
    assert [sources[i] for i in range(N_TEST)] == [s for s, _ in test]
    assert "ROUGE-1" in proc.stdout and "ROUGE-L" in proc.stdout


def test_generate_nbest_and_prefix_tokens(trained):
    data_bin, checkpoint, test = trained
    proc = fairseq("fairseq-generate", [
        data_bin, "--user-dir", USER_DIR, "--task", "unilm_seq2seq", "--path", checkpoint,
        "--gen-subset", "test", "--beam", "4", "--nbest", "2", "--prefix-size", "1",
        "--lenpen", "0.7", "--no-repeat-ngram-size", "4", "--batch-size", "32",
        "--max-source-positions", "16"])
    lines = [line for line in proc.stdout.splitlines() if line.startswith("H-")]
    assert len(lines) == 2 * N_TEST
    first_words = {int(line.split("\t")[0][2:]): line.split("\t")[-1].split()[0] for line in lines}
    assert all(first_words[i] == t.split()[0] for i, (_, t) in enumerate(test))


def test_interactive_and_hub_interface(trained):
    data_bin, checkpoint, test = trained
    sources = [s for s, _ in test[:5]]
    too_long = " ".join(LETTERS * 3)  # 30 words > --max-source-positions 16: truncated, kept
    proc = fairseq("fairseq-interactive", [
        data_bin, "--user-dir", USER_DIR, "--task", "unilm_seq2seq", "--path", checkpoint,
        "--beam", "5", "--buffer-size", "3", "--batch-size", "3",
        "--max-source-positions", "16"], input_text="\n".join(sources + [too_long]) + "\n")
    hypotheses = parse_generate(proc.stdout)
    assert len(hypotheses) == len(sources) + 1
    assert [hypotheses[i] for i in range(len(sources))] == [t for _, t in test[:5]]
    assert "truncated" in proc.stderr + proc.stdout

    from fairseq_unilmv2.models.unilm_v2 import UniLMv2Model

    hub = UniLMv2Model.from_pretrained(str(checkpoint.parent), checkpoint_file=checkpoint.name,
                                       data_name_or_path=str(data_bin),
                                       max_source_positions=16)
    outputs = hub.sample(sources + [too_long], beam=5)
    assert outputs[:len(sources)] == [t for _, t in test[:5]]
    assert isinstance(outputs[-1], str)
    assert hub.sample(sources[0], beam=2) == test[0][1]


@pytest.mark.parametrize("cli", ["fairseq-generate", "fairseq-interactive"])
def test_without_task_the_error_names_the_missing_flag(trained, cli):
    """Without --task, fairseq loads the checkpoint into its translation task (no <mask> in the
    dictionary): the error says so instead of comparing vocabulary sizes."""
    data_bin, checkpoint, test = trained
    extra = ["--gen-subset", "test"] if cli == "fairseq-generate" else []
    proc = fairseq(cli, [data_bin, "--user-dir", USER_DIR, "--path", checkpoint, *extra],
                   check=False, input_text=test[0][0] + "\n")
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "this is a unilm_v2 model" in output and "--task unilm_seq2seq is missing" in output
    assert "the task is 'translation'" in output
    assert "vocabulary has" not in output


def test_score_reference_agrees_with_beam_search(trained):
    """fairseq-generate --score-reference scores every reference; where beam search found the
    reference itself, both report the same score (length-normalized, lenpen 1)."""
    data_bin, checkpoint, test = trained
    common = [data_bin, "--user-dir", USER_DIR, "--task", "unilm_seq2seq", "--path", checkpoint,
              "--gen-subset", "test", "--batch-size", "16", "--max-source-positions", "16"]

    scoring = fairseq("fairseq-generate", [*common, "--score-reference"]).stdout
    searching = fairseq("fairseq-generate", [*common, "--beam", "5"]).stdout
    references, reference_scores = parse_generate(scoring), parse_generate(scoring, field=1)
    beams, beam_scores = parse_generate(searching), parse_generate(searching, field=1)
    assert sorted(references) == list(range(N_TEST))
    assert [references[i] for i in range(N_TEST)] == [t for _, t in test]
    found = [i for i in range(N_TEST) if beams[i] == test[i][1]]
    assert len(found) >= 0.9 * N_TEST
    for i in found:
        assert abs(float(reference_scores[i]) - float(beam_scores[i])) < 1e-3, \
            (i, reference_scores[i], beam_scores[i])
