#!/usr/bin/env python
"""Where NLTK's TreebankWordTokenizer (what ``prepare_data.py cnndm`` writes ``.ref`` with)
differs from Stanford CoreNLP's PTBTokenizer (what See et al. ran for the CNN/DailyMail gold
files), on real text.

Du et al.'s question-generation sentences (``../shared/data/nqg/src-dev.txt``) are Wikipedia
sentences of the SQuAD development set, PTB-tokenized by Stanford CoreNLP and lower-cased, the
same steps as See et al.'s. The sentences found in the shared SQuAD slice's raw contexts
(``../shared/data/squad``) are tokenized again here as ``.ref`` lines are
(:func:`fairseq_unilmv2.prepare.cnndm.reference_sentence`, less the final period step, which
both have already), and every differing stretch of tokens is counted, with whether it changes
what rouge-score matches (its tokenizer keeps only lower-case letters and digits).

    python benchmarks/ptb_treebank_diff.py [--nqg ../shared/data/nqg/src-dev.txt]
        [--squad ../shared/data/squad/dev-v2.0-first3.json] [--examples 3]

Prints the differing stretches as a Markdown table, examples of each, and one JSON line.
"""
import argparse
import collections
import difflib
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PTB_ESCAPES = {"-lrb-": "(", "-rrb-": ")", "-lsb-": "[", "-rsb-": "]", "-lcb-": "{",
               "-rcb-": "}"}
MIN_KEY = 20  # letters and digits a sentence needs to be looked for (no chance matches)


def alnum_key(text: str):
    """(lower-cased letters and digits, index in text of each)."""
    chars, where = [], []
    for i, ch in enumerate(text):
        if ch.isalnum():
            chars.append(ch.lower())
            where.append(i)
    return "".join(chars), where


def raw_sentence(context: str, key: str, context_key: str, where) -> str:
    """The raw stretch of ``context`` whose letters and digits are ``key`` (starting at a word
    start), widened over the punctuation on either side up to whitespace or, at the end, a
    bracket (opening quotes, the final period; not Wikipedia's ``[citation needed]``)."""
    at = context_key.find(key) if len(key) >= MIN_KEY else -1
    if at < 0:
        return ""
    start, end = where[at], where[at + len(key) - 1] + 1
    if start > 0 and context[start - 1].isalnum():
        return ""
    while start > 0 and not (context[start - 1].isspace() or context[start - 1].isalnum()):
        start -= 1
    while end < len(context) and not (context[end].isspace() or context[end].isalnum()
                                      or context[end] in "[("):
        end += 1
    return context[start:end]


def rouge_tokens(tokens):
    return re.sub(r"[^a-z0-9]+", " ", " ".join(tokens).lower()).split()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nqg", default=str(ROOT.parent / "shared/data/nqg/src-dev.txt"),
                        help="Du et al.'s Stanford-tokenized, lower-cased sentences")
    parser.add_argument("--squad", default=str(ROOT.parent / "shared/data/squad/"
                                              "dev-v2.0-first3.json"),
                        help="SQuAD JSON whose contexts hold the raw sentences")
    parser.add_argument("--examples", type=int, default=2, help="examples shown per difference")
    args = parser.parse_args(argv)
    from nltk.tokenize import TreebankWordTokenizer

    treebank = TreebankWordTokenizer()
    data = json.loads(Path(args.squad).read_text(encoding="utf-8"))["data"]
    contexts = [p["context"] for a in data for p in a["paragraphs"]]
    keyed = [(c, *alnum_key(c)) for c in contexts]
    sentences = dict.fromkeys(line.strip() for line in
                              Path(args.nqg).read_text(encoding="utf-8").splitlines())
    found = differing = 0
    counts = collections.Counter()
    examples = collections.defaultdict(list)
    rouge_relevant = set()
    for stanford_line in sentences:
        stanford = stanford_line.split()
        key, _ = alnum_key(" ".join(PTB_ESCAPES.get(t, t) for t in stanford))
        raw = next((s for s in (raw_sentence(c, key, k, w) for c, k, w in keyed) if s), "")
        if not raw:
            continue
        found += 1
        mine = " ".join(treebank.tokenize(raw, convert_parentheses=True)).lower().split()
        if mine == stanford:
            continue
        differing += 1
        matcher = difflib.SequenceMatcher(a=mine, b=stanford, autojunk=False)
        for op, a0, a1, b0, b1 in matcher.get_opcodes():
            if op == "equal":
                continue
            pair = (" ".join(mine[a0:a1]), " ".join(stanford[b0:b1]))
            counts[pair] += 1
            if rouge_tokens(mine[a0:a1]) != rouge_tokens(stanford[b0:b1]):
                rouge_relevant.add(pair)
            if len(examples[pair]) < args.examples:
                examples[pair].append(raw)
    print(f"{len(sentences)} distinct sentences, {found} found in the contexts, {differing} "
          "tokenized differently\n")
    print("| Treebank (.ref) | Stanford PTBTokenizer (gold) | times | rouge-score tokens differ |")
    print("|---|---|---|---|")
    for (mine, theirs), n in counts.most_common():
        print(f"| `{mine or '(none)'}` | `{theirs or '(none)'}` | {n} | "
              f"{'yes' if (mine, theirs) in rouge_relevant else 'no'} |")
    if args.examples:
        print()
        for pair, _ in counts.most_common():
            for raw in examples[pair]:
                print(f"{pair}: {raw[:160]}")
    print(json.dumps({"benchmark": "ptb_treebank_diff", "sentences": len(sentences),
                      "found": found, "differing": differing,
                      "stretches": sum(counts.values()),
                      "rouge_relevant_stretches": sum(counts[p] for p in rouge_relevant)}))


if __name__ == "__main__":
    main()
