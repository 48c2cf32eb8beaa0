"""scripts/prepare_data.py: each benchmark's preparation on small inputs in its real release
format, outputs checked line by line; bad inputs named with their line, nothing half-written."""
import hashlib
import json
import subprocess
import sys

import pytest

from fairseq_unilmv2.prepare.cnndm import prepare_cnndm
from fairseq_unilmv2.prepare.common import BadInput
from fairseq_unilmv2.prepare.qg import prepare_nqg, prepare_squad
from fairseq_unilmv2.prepare.xsum import prepare_xsum
from helpers import REPO, shared_file, write_lines, write_wordpiece_vocab


def lines(path):
    return path.read_text(encoding="utf-8").split("\n")[:-1]


def files_under(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


# ----------------------------------------------------------------------------- QG, Du et al.
def test_nqg_files(tmp_path):
    data = tmp_path / "processed"
    data.mkdir()
    write_lines(data / "src-dev.txt", ["the cat -lrb- a tabby -rrb- sat on the mat .",
                                       "the cat -lrb- a tabby -rrb- sat on the mat ."])
    write_lines(data / "tgt-dev.txt", ["where did the cat sit ?", "what sat on the mat ?"])
    write_lines(data / "src-train.txt", ["a -lsb- b -rsb- c ."])
    write_lines(data / "tgt-train.txt", ["what is -lcb- b -rcb- ?"])
    counts = prepare_nqg(data, tmp_path / "qg")
    assert counts == {"train": 1, "valid": 2}
    qg = tmp_path / "qg"
    assert lines(qg / "valid.src") == ["the cat ( a tabby ) sat on the mat ."] * 2
    assert lines(qg / "valid.tgt") == ["where did the cat sit ?", "what sat on the mat ?"]
    assert lines(qg / "valid.key") == lines(data / "src-dev.txt")  # what eval.py reads
    assert lines(qg / "valid.ref") == lines(data / "tgt-dev.txt")
    assert lines(qg / "train.src") == ["a [ b ] c ."]
    assert lines(qg / "train.tgt") == ["what is { b } ?"]
    assert files_under(qg) == ["train.src", "train.tgt", "valid.key", "valid.ref",
                               "valid.src", "valid.tgt"]

    write_lines(data / "src-test.txt", ["one", "two", "", "four"])
    write_lines(data / "tgt-test.txt", ["q1", "q2", "q3", "q4"])
    with pytest.raises(BadInput, match=r"src-test\.txt:3: empty line"):
        prepare_nqg(data, tmp_path / "qg2")
    assert not (tmp_path / "qg2").exists() or files_under(tmp_path / "qg2") == []


def test_nqg_shared_dev_split(tmp_path):
    src = shared_file("nqg", "src-dev.txt")
    tgt = shared_file("nqg", "tgt-dev.txt")
    prepare_nqg(src.parent, tmp_path)
    assert lines(tmp_path / "valid.key") == lines(src)
    assert lines(tmp_path / "valid.ref") == lines(tgt)
    sources = lines(tmp_path / "valid.src")
    assert len(sources) == 10570
    with_brackets = [i for i, s in enumerate(lines(src)) if "-lrb-" in s.split()]
    assert with_brackets and all("(" in sources[i].split() and "-lrb-" not in sources[i]
                                 for i in with_brackets)


# ----------------------------------------------------------------------------- QG, UniLM
def squad_article(title, paragraphs):
    return {"title": title, "paragraphs": [
        {"context": context, "qas": [{"id": f"{title}-{n}", "question": q,
                                      "answers": [{"text": a, "answer_start": 0}]}
                                     for n, (q, a) in enumerate(qas)]}
        for context, qas in paragraphs]}


def test_squad_passage_answer_files(tmp_path):
    vocab = write_wordpiece_vocab(tmp_path / "vocab.txt")
    train = {"version": "1.1", "data": [
        squad_article("Cats", [("The cat sat on the mat.", [("Where did the cat sit?", "the mat"),
                                                            ("Who sat?", "The cat")])]),
        squad_article("Dogs", [("A dog ran in\nthe  park.", [("Where did a dog run?", "park")])]),
        squad_article("Birds", [("Birds fly.", [("What flies?", "Birds")])]),
    ]}
    dev = {"version": "1.1", "data": [squad_article("Parks", [("A park.", [("What?", "park")])])]}
    (tmp_path / "train-v1.1.json").write_text(json.dumps(train))
    (tmp_path / "dev-v1.1.json").write_text(json.dumps(dev))
    doclists = tmp_path / "nqg_data"
    doclists.mkdir()
    write_lines(doclists / "doclist-train.txt", ["Dogs", "Cats"])  # the doclist's order
    write_lines(doclists / "doclist-test.txt", ["Birds", "Fish"])  # Fish: in no file
    write_lines(doclists / "doclist-dev.txt", ["Parks"])
    out = tmp_path / "qg"
    counts = prepare_squad([tmp_path / "train-v1.1.json", tmp_path / "dev-v1.1.json"],
                           doclists, vocab, out)
    assert counts == {"train": 3, "valid": 1, "test": 1}
    assert lines(out / "train.src") == [
        "A dog ran in the park. [SEP] park",
        "The cat sat on the mat. [SEP] the mat",
        "The cat sat on the mat. [SEP] The cat"]
    assert lines(out / "train.tgt") == ["Where did a dog run?", "Where did the cat sit?",
                                        "Who sat?"]
    assert lines(out / "train.key") == lines(out / "train.src")
    # WordPiece with the (tiny, uncased) vocabulary; [SEP] as fairseq's </s>.
    assert lines(out / "bpe" / "train.src")[1] == "the cat sat on the mat . </s> the mat"
    assert lines(out / "bpe" / "train.tgt")[1] == "[UNK] [UNK] the cat [UNK] [UNK]"
    assert lines(out / "train.ref") == lines(out / "bpe" / "train.tgt")
    assert lines(out / "test.tgt") == ["What flies?"]
    assert lines(out / "valid.src") == ["A park. [SEP] park"]

    broken = {"version": "1.1", "data": [{"title": "Cats", "paragraphs": [
        {"context": "c", "qas": [{"id": "q7", "question": "Why?", "answers": []}]}]}]}
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    with pytest.raises(BadInput, match=r"broken\.json: question 'q7' of article 'Cats' has "
                                       r"no answer"):
        prepare_squad([tmp_path / "broken.json"], doclists, vocab, tmp_path / "qg2")
    assert not (tmp_path / "qg2").exists() or files_under(tmp_path / "qg2") == []


def test_squad_references_with_the_reference_vocabulary(tmp_path):
    """--reference-vocab: .ref tokenized as UniLM's test.q.tok.txt was (bert-large-cased: case
    and accents kept), the model's files with its own (uncased) vocabulary."""
    from fairseq_unilmv2.scoring.qg import prepare_reference

    model_vocab = write_wordpiece_vocab(tmp_path / "vocab.txt", [
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "who", "founded", "mont", "##real",
        "'", "s", "cafe", "?", "the", "."])
    cased_vocab = write_wordpiece_vocab(tmp_path / "cased.txt", [
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "Who", "founded", "Mont", "##réal", "'",
        "s", "Café", "?", "The", "."])
    question = "Who founded Montréal's Café?"
    data = {"version": "1.1", "data": [squad_article("Cafes", [(
        "The Café.", [(question, "The Café")])])]}
    (tmp_path / "dev.json").write_text(json.dumps(data))
    doclists = tmp_path / "nqg_data"
    doclists.mkdir()
    write_lines(doclists / "doclist-test.txt", ["Cafes"])
    out = tmp_path / "qg"
    subprocess.run([sys.executable, str(REPO / "scripts" / "prepare_data.py"), "squad",
                    "--squad", str(tmp_path / "dev.json"), "--doclists", str(doclists),
                    "--vocab", str(model_vocab), "--reference-vocab", str(cased_vocab),
                    "--output", str(out)], check=True, capture_output=True)
    # By hand: BERT's punctuation split ("'" and "?" alone), then longest-match pieces; the
    # cased vocabulary neither lower-cases nor strips the accents.
    assert lines(out / "test.ref") == ["Who founded Mont ##réal ' s Café ?"]
    assert lines(out / "bpe" / "test.tgt") == ["who founded mont ##real ' s cafe ?"]
    # The model's own vocabulary without --reference-vocab, as before.
    prepare_squad([tmp_path / "dev.json"], doclists, model_vocab, tmp_path / "own")
    assert lines(tmp_path / "own" / "test.ref") == lines(out / "bpe" / "test.tgt")
    # After UniLM's "##" joining and lower-casing the two still differ on accented words.
    assert prepare_reference(lines(out / "test.ref")[0]) == "who founded montréal ' s café ?"
    assert prepare_reference(lines(tmp_path / "own" / "test.ref")[0]) == \
        "who founded montreal ' s cafe ?"


def test_squad_shared_v2_slice(tmp_path, caplog):
    squad = shared_file("squad", "dev-v2.0-first3.json")
    vocab = write_wordpiece_vocab(tmp_path / "vocab.txt")
    doclists = tmp_path / "doclists"
    doclists.mkdir()
    # The slice's three articles are in nqg's doclist-dev.txt; Super_Bowl_50 is not in it.
    write_lines(doclists / "doclist-dev.txt", ["Super_Bowl_50", "Normans",
                                               "Computational_complexity_theory",
                                               "Southern_California"])
    caplog.set_level("INFO")
    prepare_squad([squad], doclists, vocab, tmp_path / "qg")
    data = json.loads(squad.read_text(encoding="utf-8"))["data"]
    expected = [(" ".join(p["context"].split()), " ".join(q["answers"][0]["text"].split()),
                 " ".join(q["question"].split()))
                for article in data for p in article["paragraphs"] for q in p["qas"]
                if not q["is_impossible"]]
    assert len(expected) == 473
    assert lines(tmp_path / "qg" / "valid.src") == [f"{p} [SEP] {a}" for p, a, _ in expected]
    assert lines(tmp_path / "qg" / "valid.tgt") == [q for _, _, q in expected]
    assert "473 questions of 3 articles, 477 unanswerable questions skipped" in caplog.text
    assert "1 of the 4 articles" in caplog.text and "Super_Bowl_50" in caplog.text
    assert all(line.count("</s>") == 1 for line in lines(tmp_path / "qg" / "bpe" / "valid.src"))


# ----------------------------------------------------------------------------- CNN/DailyMail
STORY_A = ("LONDON (CNN) -- The cat sat on the mat\n\n"
           "\u201cIt was happy,\u201d said its owner\n\n"
           "She left \u201cearly\n\n"
           "@highlight\n\nCat sits on mat\n\n@highlight\n\n"
           "Owner: it was \u201chappy\u201d\n")
STORY_NO_HIGHLIGHTS = "Only an article here.\n\nAnd another line\n"
STORY_C = "Dog ran.\n@highlight\nDog ran\nand kept running\n"


def test_cnndm_stories(tmp_path, caplog):
    stories = tmp_path / "cnn" / "stories"
    stories.mkdir(parents=True)
    urls = ["http://cnn.com/c", "http://cnn.com/a", "http://cnn.com/none"]
    names = [hashlib.sha1(u.encode()).hexdigest() for u in urls]
    (stories / f"{names[0]}.story").write_text(STORY_C, encoding="utf-8")
    (stories / f"{names[1]}.story").write_text(STORY_A, encoding="utf-8")
    (stories / f"{names[2]}.story").write_text(STORY_NO_HIGHLIGHTS, encoding="utf-8")
    url_list = write_lines(tmp_path / "all_test.txt", urls)
    vocab = write_wordpiece_vocab(tmp_path / "vocab.txt")
    caplog.set_level("INFO")
    kept = prepare_cnndm([stories], str(tmp_path / "out" / "test"), url_list, vocab,
                         max_source_pieces=4)
    assert kept == 2
    out = tmp_path / "out"
    assert lines(out / "test.id") == names[:2]  # the URL list's order
    assert lines(out / "test.src") == [
        "Dog ran.",
        "LONDON (CNN) -- The cat sat on the mat . \u201cIt was happy,\u201d said its owner . "
        "She left \u201cearly ."]
    # Every line after the first @highlight is summary (See et al.); periods added.
    assert lines(out / "test.tgt") == [
        "Dog ran . [X_SEP] and kept running .",
        "Cat sits on mat . [X_SEP] Owner: it was \u201chappy\u201d"]
    # See et al.'s gold-file terms: PTB tokens (":" split), lower case, final period (none
    # after a closing \u201d, one of their end tokens).
    assert lines(out / "test.ref") == [
        "dog ran . <S_SEP> and kept running .",
        "cat sits on mat . <S_SEP> owner : it was \u201chappy\u201d"]
    assert lines(out / "bpe" / "test.src") == ["dog ran .", "[UNK] [UNK] [UNK] [UNK]"]
    assert lines(out / "bpe" / "test.tgt")[0] == "dog ran . [X_SEP] and [UNK] [UNK] ."
    assert f"{names[2]}.story: no highlights, left out" in caplog.text

    (stories / "bad.story").write_bytes(b"fine line\nbad \xff byte\n")
    with pytest.raises(BadInput, match=r"bad\.story:2: not UTF-8"):
        prepare_cnndm([stories], str(tmp_path / "out2" / "test"))
    assert not (tmp_path / "out2").exists() or files_under(tmp_path / "out2") == []
    with pytest.raises(BadInput, match=r"all_test\.txt:4: no [0-9a-f]+\.story"):
        prepare_cnndm([stories], str(tmp_path / "out3" / "test"),
                      write_lines(tmp_path / "all_test.txt", urls + ["http://missing"]))


def test_cnndm_csv_and_json_lines(tmp_path):
    csv_text = ('id,article,highlights\n'
                'x1,"He said ""hi"".\nThen left.","First point.\nSecond point."\n'
                'x2,Empty highlights here.,\n')
    (tmp_path / "test.csv").write_text(csv_text, encoding="utf-8")
    assert prepare_cnndm([tmp_path / "test.csv"], str(tmp_path / "c" / "test")) == 1
    assert lines(tmp_path / "c" / "test.src") == ['He said "hi". Then left.']
    assert lines(tmp_path / "c" / "test.tgt") == ["First point. [X_SEP] Second point."]
    assert lines(tmp_path / "c" / "test.id") == ["x1"]

    rows = [{"id": "j1", "article": "Art one.", "highlights": ["One.", "Two."]},
            {"id": "j2", "article": "Art two.", "highlights": "Three."}]
    jsonl = write_lines(tmp_path / "test.jsonl", [json.dumps(r) for r in rows] + ["{oops"])
    with pytest.raises(BadInput, match=r"test\.jsonl:3: not a JSON object"):
        prepare_cnndm([jsonl], str(tmp_path / "j" / "test"))
    assert not (tmp_path / "j").exists() or files_under(tmp_path / "j") == []
    write_lines(jsonl, [json.dumps(r) for r in rows])
    prepare_cnndm([jsonl], str(tmp_path / "j" / "test"))
    assert lines(tmp_path / "j" / "test.ref") == ["one . <S_SEP> two .", "three ."]
    assert lines(tmp_path / "j" / "test.id") == ["j1", "j2"]


# ----------------------------------------------------------------------------- XSum
def xsum_file(summary, body):
    return (f"[SN]URL[SN]\nhttp://web.archive.org/web/1/http://www.bbc.co.uk/news/1\n\n"
            f"[SN]TITLE[SN]\nA title\n\n[SN]FIRST-SENTENCE[SN]\n{summary}\n\n"
            f"[SN]RESTBODY[SN]\n{body}\n")


def test_xsum_release(tmp_path, caplog):
    folder = tmp_path / "bbc-summary-data"
    folder.mkdir()
    (folder / "101.summary").write_text(xsum_file("Summary one.", "Body one.\nMore body."))
    (folder / "202.summary").write_text(xsum_file("Summary two.", "Body two."))
    (folder / "303.summary").write_text(xsum_file("Summary three.", "Body  three."))
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ["303", "101"], "validation": ["202"],
                                 "test": ["202", "404", "101"]}))
    caplog.set_level("INFO")
    counts = prepare_xsum(folder, split, tmp_path / "xsum")
    assert counts == {"train": 2, "valid": 1, "test": 2}
    out = tmp_path / "xsum"
    assert lines(out / "train.id") == ["303", "101"]
    assert lines(out / "train.src") == ["Body three.", "Body one. More body."]
    assert lines(out / "train.tgt") == ["Summary three.", "Summary one."]
    assert lines(out / "test.id") == ["202", "101"]
    assert lines(out / "test.tgt") == ["Summary two.", "Summary one."]
    assert "test: 1 of 3 ids have no file" in caplog.text and "404" in caplog.text

    (folder / "404.summary").write_text("[SN]URL[SN]\nu\n[SN]FIRST-SENTENCE[SN]\nS.\n")
    with pytest.raises(BadInput, match=r"404\.summary:4: the file ends without a "
                                       r"\[SN\]RESTBODY\[SN\]"):
        prepare_xsum(folder, split, tmp_path / "xsum2")
    assert not (tmp_path / "xsum2").exists() or files_under(tmp_path / "xsum2") == []


def test_command_line_names_the_bad_line(tmp_path):
    folder = tmp_path / "bbc"
    folder.mkdir()
    (folder / "1.summary").write_text("stray text\n[SN]URL[SN]\n")
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"test": ["1"]}))
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "prepare_data.py"), "xsum",
                           "--input", str(folder), "--split-file", str(split),
                           "--output", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert f"error: {folder / '1.summary'}:1: text before the first section marker" in \
        proc.stderr
    assert not (tmp_path / "out").exists() or files_under(tmp_path / "out") == []
