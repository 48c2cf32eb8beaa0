"""The ablation's downstream tasks (``fairseq_unilmv2/experiments/downstream.py``): each example
asks what its docstring says, and no example can be answered by matching strings alone."""
import json
import random
from collections import Counter

from fairseq_unilmv2.experiments import downstream
from fairseq_unilmv2.scoring.squad import squad_v1_scores

from helpers import shared_file

PARAGRAPH = ("the european lobster is a species of clawed lobster from the eastern atlantic "
             "ocean , mediterranean sea and parts of the black sea . it is closely related to "
             "the american lobster , homarus americanus . it may grow to a length of 60 cm and "
             "a mass of 6 kilograms , and bears a conspicuous pair of claws .")


def real_paragraphs(n=60):
    lines = shared_file("wikitext2", "valid.txt").read_text(encoding="utf-8").splitlines()
    return [line.strip().lower() for line in lines if len(line.split()) >= 6][:n]


def test_word_order_pairs_hold_the_same_words_and_differ_by_one_swap():
    examples = downstream.word_order_examples(PARAGRAPH, random.Random(0), window_words=6)
    assert len(examples) == 2 * (len(PARAGRAPH.split()) // 6)
    for (original, label0), (swapped, label1) in zip(examples[::2], examples[1::2]):
        assert (label0, label1) == downstream.WORD_ORDER_LABELS
        assert original in PARAGRAPH
        a, b = original.split(), swapped.split()
        assert Counter(a) == Counter(b) and a != b  # only the order tells them apart
        changed = [i for i in range(len(a)) if a[i] != b[i]]
        assert len(changed) == 2 and changed[1] == changed[0] + 1
        assert (a[changed[0]], a[changed[1]]) == (b[changed[1]], b[changed[0]])


def test_fill_blank_answer_is_in_the_passage_and_not_in_the_question():
    for paragraph in [PARAGRAPH, *real_paragraphs()]:
        for q in downstream.fill_blank_questions(paragraph, random.Random(1), context_words=2,
                                                 every=3, candidates=4):
            passage = q["context"].split()
            assert len(passage) == 4 and len(set(passage)) == 4
            start = q["answer_start"]
            assert q["context"][start:start + len(q["answer"])] == q["answer"]
            assert q["question"].count(downstream.BLANK) == 1
            # Put back, the blanked word gives a run of words of the paragraph.
            assert q["question"].replace(downstream.BLANK, q["answer"]) in paragraph
            # No passage word is in the question: matching strings finds nothing.
            question_words = {w.strip(".,;:!?\"'()") for w in q["question"].split()}
            assert not set(passage) & question_words
            # The distractors come from the same paragraph.
            assert all(word in paragraph.split() or word in paragraph for word in passage)


def test_fill_blank_json_scores_as_squad_v1():
    questions = downstream.fill_blank_questions(PARAGRAPH, random.Random(2), 2, 3, 4)
    data = json.loads(json.dumps(downstream.squad_json(questions, "t", "q")))
    articles = data["data"]
    gold = {qa["id"]: qa["answers"][0]["text"] for p in articles[0]["paragraphs"]
            for qa in p["qas"]}
    assert squad_v1_scores(articles, gold) == {"exact_match": 100.0, "f1": 100.0}
    first = {qa["id"]: p["context"].split()[0] for p in articles[0]["paragraphs"]
             for qa in p["qas"]}
    first_right = sum(first[i] == gold[i] for i in gold)
    assert squad_v1_scores(articles, first)["exact_match"] == 100.0 * first_right / len(gold)


def test_fill_blank_answer_places_are_spread_over_the_passage():
    """The passage order is random: the trivial 'first word' system is right about 1 in 4."""
    questions = [q for i, p in enumerate(real_paragraphs(200)) for q in
                 downstream.fill_blank_questions(p, random.Random(i), 2, 3, 4)]
    places = Counter(q["context"][:q["answer_start"]].count(" ") for q in questions)
    assert len(questions) > 500 and set(places) == {0, 1, 2, 3}
    assert all(0.2 < n / len(questions) < 0.3 for n in places.values())


def test_swap_letters_keeps_the_letters_and_the_first_one():
    rng = random.Random(0)
    for word in ("claws", "lobster", "mediterranean", "ab", "aaaa"):
        swapped = downstream.swap_letters(word, rng)
        assert sorted(swapped) == sorted(word) and swapped[0] == word[0]
        changed = [i for i in range(len(word)) if word[i] != swapped[i]]
        assert changed == [] if word in ("ab", "aaaa") else (
            len(changed) == 2 and changed[1] == changed[0] + 1)


def test_spelling_pairs_a_word_with_its_respelling():
    examples = downstream.spelling_examples(PARAGRAPH, random.Random(0), every=3)
    assert examples and len(examples) % 2 == 0
    for (word, label0), (swapped, label1) in zip(examples[::2], examples[1::2]):
        assert (label0, label1) == downstream.WORD_ORDER_LABELS
        assert word in PARAGRAPH.split() and swapped != word and sorted(swapped) == sorted(word)


def test_misspelled_word_is_one_of_the_candidates_drawn_evenly():
    for paragraph in [PARAGRAPH, *real_paragraphs()]:
        for q in downstream.misspelled_word_questions(paragraph, random.Random(3), candidates=4):
            start, answer = q["answer_start"], q["answer"]
            assert q["context"][start:start + len(answer)] == answer
            words = q["context"].split()
            candidates = [downstream.ANSWER.match(w).group(2) for w in words
                          if downstream.ANSWER.match(w)]
            assert len(candidates) >= 4 and answer in candidates
            # Put back, the respelled word gives a run of words of the paragraph.
            restored = [w for w in candidates if w != answer]
            assert all(w in paragraph for w in restored)
    questions = [q for i, p in enumerate(real_paragraphs(200)) for q in
                 downstream.misspelled_word_questions(p, random.Random(i), candidates=4)]
    # Which candidate (first, second, ...) is respelled: each about a quarter of the time.
    places = Counter([downstream.ANSWER.match(w).group(2) for w in q["context"].split()
                      if downstream.ANSWER.match(w)].index(q["answer"]) for q in questions)
    assert len(questions) > 500 and all(0.2 < places[k] / len(questions) < 0.3 for k in range(4))
