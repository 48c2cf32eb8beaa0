"""``scripts/s2s_ft_data.py``: s2s-ft's JSON-lines data (text or token lists) becomes aligned
WordPiece files, tokenized as ``scripts/wordpiece.py`` does, and a bad line stops it by number."""
import json
import subprocess
import sys

from helpers import REPO, run_script, write_lines, write_wordpiece_vocab


def write_json_lines(path, examples):
    return write_lines(path, [json.dumps(e) if isinstance(e, dict) else e for e in examples])


def test_text_and_token_lists_become_aligned_wordpiece_lines(tmp_path):
    vocab = write_wordpiece_vocab(tmp_path / "vocab.txt")
    data = write_json_lines(tmp_path / "train.json", [
        {"src": "The cats sat on the mat.", "tgt": "Cats sat."},
        {"src": ["the", "dog", "ran", "in", "the", "park"], "tgt": ["dog", "ran", "[X_SEP]", "."]},
    ])
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "s2s_ft_data.py"),
                           "--vocab", str(vocab), "--input", str(data),
                           "--output-prefix", str(tmp_path / "bpe" / "train")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "2 examples" in proc.stdout
    # The tiny vocabulary has no [X_SEP]: said before fairseq-preprocess makes it <unk>.
    assert "1 given tokens are not in" in proc.stderr and "'[X_SEP]' (1)" in proc.stderr
    sources = (tmp_path / "bpe" / "train.src").read_text().splitlines()
    targets = (tmp_path / "bpe" / "train.tgt").read_text().splitlines()
    # Text is lower-cased (the vocabulary is uncased) and split into pieces: as wordpiece.py.
    encoded = run_script("wordpiece.py", "encode", "--vocab", vocab,
                         "--input", write_lines(tmp_path / "raw.txt", ["The cats sat on the mat."]))
    assert sources == [encoded.strip(), "the dog ran in the park"]
    assert sources[0] == "the cat ##s sat on the mat ."
    assert targets == ["cat ##s sat .", "dog ran [X_SEP] ."]


def test_inputs_to_decode_need_no_target(tmp_path):
    vocab = write_wordpiece_vocab(tmp_path / "vocab.txt")
    data = write_json_lines(tmp_path / "test.json", [{"src": "hello world"}])
    run_script("s2s_ft_data.py", "--vocab", vocab, "--input", data,
               "--output-prefix", tmp_path / "test", "--source-only")
    assert (tmp_path / "test.src").read_text() == "hello world\n"
    assert not (tmp_path / "test.tgt").exists()


def test_a_bad_line_is_named_and_nothing_half_written_is_left(tmp_path):
    vocab = write_wordpiece_vocab(tmp_path / "vocab.txt")
    cases = [
        ('{"src": "a cat"', "line 2: "),
        ({"src": "a cat"}, 'line 2: no "tgt" field (for inputs to decode, pass --source-only)'),
        ({"src": ["a cat"], "tgt": "a dog"}, "line 2: \"src\" has a token with white space"),
        ({"src": "a cat", "tgt": []}, 'line 2: "tgt" is empty'),
    ]
    for bad, message in cases:
        data = write_json_lines(tmp_path / "bad.json", [{"src": "a dog", "tgt": "a cat"}, bad])
        proc = subprocess.run([sys.executable, str(REPO / "scripts" / "s2s_ft_data.py"),
                               "--vocab", str(vocab), "--input", str(data),
                               "--output-prefix", str(tmp_path / "out")],
                              capture_output=True, text=True)
        assert proc.returncode == 2, bad
        assert message in proc.stderr, (bad, proc.stderr)
        assert not list(tmp_path.glob("out.*")), bad
