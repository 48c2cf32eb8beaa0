"""Downstream tasks made from plain paragraphs, small enough for a CPU-sized model to learn.

Each builder turns one paragraph into examples whose answers anyone can check, and each needs
what masked-language-model pre-training teaches: how words are spelled, in which order words
come, which words go together. One task a fine-tuning family of the paper:

- generation (``--task unilm_seq2seq``): :func:`backwards_word_pairs`, a word written backwards
  in its context, to be written forwards (``"the [eulav] of the"`` -> ``"value"``);
- classification (fairseq's ``--task sentence_prediction``): :func:`word_order_examples`, a run
  of words in its original order, or with two neighbouring words swapped;
- span extraction (``--task squad``): :func:`fill_blank_questions`, a run of words with one word
  blanked out as the question, and a passage of candidate words from the same paragraph (the
  blanked word among them) in which the answer is the word that fits.

The demo (``scripts/quickstart.py``) uses the first; the ablation (``scripts/ablation.py``) all
three. Builders take a ``random.Random`` so that a split is reproducible from its seed.
"""
import random
import re
from typing import Dict, List, Sequence, Tuple

# A candidate word: four letters or more, with the punctuation around it kept apart.
ANSWER = re.compile(r"^([^A-Za-z]*)([A-Za-z]{4,})([^A-Za-z]*)$")
# What stands for the blanked word in a fill-the-blank question.
BLANK = "_"
WORD_ORDER_LABELS = ("original", "swapped")


def candidate_positions(words: Sequence[str]) -> List[int]:
    return [i for i, word in enumerate(words) if ANSWER.match(word)]


def backwards_word_pairs(paragraph: str, rng: random.Random, context_words: int,
                         every: int) -> List[Tuple[str, str]]:
    """(source, answer) pairs of a paragraph: a word written backwards, to be read forwards.

    One word in ``every`` (drawn without replacement among the words of four letters or more)
    has its letters reversed and put between brackets; the source is that word with
    ``context_words`` words on each side (within the paragraph), the answer the word:
    ``"used for [lanoitidnoc] execution."`` -> ``"conditional"``. Punctuation around the word
    stays in the source, outside the brackets.
    """
    words = paragraph.split()
    candidates = candidate_positions(words)
    pairs = []
    for i in sorted(rng.sample(candidates, min(len(candidates), len(words) // every))):
        before, answer, after = ANSWER.match(words[i]).groups()
        context = words[max(0, i - context_words):i] + [f"{before}[{answer[::-1]}]{after}"] + \
            words[i + 1:i + 1 + context_words]
        pairs.append((" ".join(context), answer))
    return pairs


def word_order_examples(paragraph: str, rng: random.Random,
                        window_words: int) -> List[Tuple[str, str]]:
    """(text, label) examples: each run of ``window_words`` words of the paragraph (runs do not
    overlap) twice, once as written (``original``) and once with two neighbouring words swapped
    (``swapped``; a pair of different words, drawn at random).

    Both versions hold the same words, so only their order tells them apart: counting words or
    pieces decides nothing, and the classes are balanced by construction.
    """
    words = paragraph.split()
    examples = []
    for start in range(0, len(words) - window_words + 1, window_words):
        window = words[start:start + window_words]
        swappable = [i for i in range(window_words - 1) if window[i] != window[i + 1]]
        if not swappable:
            continue
        i = rng.choice(swappable)
        swapped = window[:i] + [window[i + 1], window[i]] + window[i + 2:]
        examples.append((" ".join(window), WORD_ORDER_LABELS[0]))
        examples.append((" ".join(swapped), WORD_ORDER_LABELS[1]))
    return examples


def fill_blank_questions(paragraph: str, rng: random.Random, context_words: int, every: int,
                         candidates: int) -> List[Dict[str, object]]:
    """Fill-the-blank questions of a paragraph, as SQuAD v1.1 question/context/answer triples.

    One word in ``every`` (of four letters or more) is blanked out: the question is that word's
    ``context_words`` words on each side with ``_`` in its place (``"the _ of the"``). The
    passage is ``candidates`` words of the paragraph, the blanked word and others not in the
    question, in random order (``"river value seven often"``); the answer is the blanked word's
    place in it. The distractors are drawn from the question's paragraph, so the passage alone
    does not say which word is the answer, and no passage word is in the question, so matching
    strings between the two does not either: the model must know which word fits the gap.
    A word without enough distinct distractors in its paragraph, or repeated in its own
    context, gives no question.
    """
    words = paragraph.split()
    positions = candidate_positions(words)
    letters = {i: ANSWER.match(words[i]).group(2) for i in positions}
    questions = []
    for i in sorted(rng.sample(positions, min(len(positions), len(words) // every))):
        answer = letters[i]
        before = words[max(0, i - context_words):i]
        after = words[i + 1:i + 1 + context_words]
        prefix, _, suffix = ANSWER.match(words[i]).groups()
        question = " ".join(before + [f"{prefix}{BLANK}{suffix}"] + after)
        in_question = {w.strip(".,;:!?\"'()").lower() for w in before + after}
        if answer.lower() in in_question:  # the answer would be the passage word it repeats
            continue
        others = sorted({w for j, w in letters.items()
                         if w.lower() != answer.lower() and w.lower() not in in_question})
        if len(others) < candidates - 1:
            continue
        passage_words = rng.sample(others, candidates - 1) + [answer]
        rng.shuffle(passage_words)
        slot = passage_words.index(answer)
        start = sum(len(w) + 1 for w in passage_words[:slot])
        questions.append({"question": question, "context": " ".join(passage_words),
                          "answer": answer, "answer_start": start})
    return questions


def squad_json(questions: Sequence[Dict[str, object]], title: str, id_prefix: str) -> Dict:
    """SQuAD v1.1 JSON of fill-the-blank questions: one paragraph a question (its own passage),
    ids ``<id_prefix>-<n>``."""
    paragraphs = [{"context": q["context"], "qas": [{
        "id": f"{id_prefix}-{n}", "question": q["question"],
        "answers": [{"text": q["answer"], "answer_start": q["answer_start"]}]}]}
        for n, q in enumerate(questions)]
    return {"version": "1.1", "data": [{"title": title, "paragraphs": paragraphs}]}


def swap_places(word: str) -> List[int]:
    """Where :func:`swap_letters` may swap ``word[i]`` and ``word[i + 1]``."""
    return [i for i in range(1, len(word) - 1) if word[i] != word[i + 1]]


def swap_letters(word: str, rng: random.Random) -> str:
    """``word`` with two neighbouring letters swapped (a pair of different letters, never the
    first letter): the same letters in another order, ``"claws"`` -> ``"clasw"``."""
    places = swap_places(word)
    if not places:
        return word
    i = rng.choice(places)
    return word[:i] + word[i + 1] + word[i] + word[i + 2:]


def spelling_examples(paragraph: str, rng: random.Random, every: int) -> List[Tuple[str, str]]:
    """(word, label) examples: one word in ``every`` (of four letters or more) twice, as written
    (``original``) and with two neighbouring letters swapped (``swapped``)."""
    words = paragraph.split()
    positions = candidate_positions(words)
    examples = []
    for i in sorted(rng.sample(positions, min(len(positions), len(words) // every))):
        word = ANSWER.match(words[i]).group(2)
        swapped = swap_letters(word, rng)
        if swapped != word:
            examples += [(word, WORD_ORDER_LABELS[0]), (swapped, WORD_ORDER_LABELS[1])]
    return examples


MISSPELLED_QUESTION = "?"


def misspelled_word_questions(paragraph: str, rng: random.Random, candidates: int
                              ) -> List[Dict[str, object]]:
    """Find-the-misspelled-word questions, as SQuAD v1.1 triples.

    The paragraph is cut into runs of words that each hold ``candidates`` words of four letters
    or more (a run ends at its last such word; runs do not overlap). In each run one of those
    words, drawn at random, is respelled by :func:`swap_letters`; the passage is the run, the
    question always the same, and the answer the respelled word as it stands in the passage.
    Every candidate is equally likely to be the answer, so picking one without reading its
    letters is right once in ``candidates``.
    """
    words = paragraph.split()
    questions, start, found = [], 0, []
    for i, word in enumerate(words):
        match = ANSWER.match(word)
        if match and swap_places(match.group(2)):
            found.append(i)
        if len(found) < candidates:
            continue
        run_words = words[start:i + 1]
        chosen = rng.choice(found) - start
        prefix, letters, suffix = ANSWER.match(run_words[chosen]).groups()
        answer = swap_letters(letters, rng)
        run_words[chosen] = prefix + answer + suffix
        offset = sum(len(w) + 1 for w in run_words[:chosen]) + len(prefix)
        questions.append({"question": MISSPELLED_QUESTION, "context": " ".join(run_words),
                          "answer": answer, "answer_start": offset})
        start, found = i + 1, []
    return questions


def first_sentence(context: str) -> str:
    """The trivial SQuAD answer: the context up to its first sentence end."""
    match = re.search(r"[.!?](\s|$)", context)
    return context[:match.start() + 1] if match else context
