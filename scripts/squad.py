#!/usr/bin/env python
"""Extractive question answering with a checkpoint fine-tuned by ``--task squad``.

    python scripts/squad.py predict --path ckpt/squad/checkpoint_best.pt --data dev.json --out OUT

writes, in the official formats,

- ``OUT/predictions.json``: question id -> answer text ("" for no answer, v2.0), every id of
  the input, the text being the context's own characters;
- ``OUT/null_odds.json`` (v2.0): question id -> null score minus the best span's score (the
  official v2.0 script's ``--na-prob-file``);
- ``OUT/nbest_predictions.json``: question id -> the n best spans (text, characters, logits);
- ``OUT/scores.json``: the official scripts' figures (v1.1 ``exact_match``, ``f1``; v2.0
  ``exact``, ``f1``, ``total``, ``HasAns_*``, ``NoAns_*``, ``best_exact``, ``best_f1`` and their
  thresholds), when the file has gold answers (only their texts are used): what
  ``evaluate-v2.0.py DATA predictions.json --na-prob-file null_odds.json`` prints at its
  defaults (``--na-prob-thresh 1.0``: a question whose null odds exceed 1.0 counts as
  unanswered, whatever ``predictions.json`` says for it), at every
  ``--null-score-diff-threshold``.

The tokenizer and the window settings come from the checkpoint's task config; the flags below
override them. v2.0 (no-answer) prediction is on when the file's questions carry
``is_impossible``, the model was fine-tuned with ``--version-2-with-negative``, or the flag is
given here.
"""
import argparse
import json
import logging
import os
import sys
from pathlib import Path

logger = logging.getLogger("scripts.squad")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    predict = commands.add_parser("predict", help="predict answers for a SQuAD JSON file")
    predict.add_argument("--path", required=True, help="checkpoint fine-tuned with --task squad")
    predict.add_argument("--data", required=True, help="SQuAD JSON file (v1.1 or v2.0)")
    predict.add_argument("--out", required=True, help="directory for the outputs")
    predict.add_argument("--dict-dir", help="directory holding the checkpoint's dict.txt "
                         "[default: the training data directory stored in the checkpoint, "
                         "else the checkpoint's own directory]")
    predict.add_argument("--wordpiece-vocab", help="override the checkpoint's WordPiece vocab.txt")
    predict.add_argument("--wordpiece-case", choices=["auto", "cased", "uncased"])
    predict.add_argument("--spm-model", help="override the checkpoint's sentencepiece model")
    predict.add_argument("--version-2-with-negative", action="store_true",
                         help="allow no-answer predictions even for a v1.1-style file")
    for flag, kind in (("--max-seq-length", int), ("--doc-stride", int),
                       ("--max-query-length", int), ("--n-best-size", int),
                       ("--max-answer-length", int), ("--null-score-diff-threshold", float)):
        predict.add_argument(flag, type=kind, help="override the checkpoint's task setting")
    predict.add_argument("--no-null", action="store_true",
                         help="always answer with the best span, never \"\" (how well spans "
                              "are found; a v2.0 file is still scored with the v2.0 keys)")
    predict.add_argument("--batch-size", type=int, default=32, help="windows per forward pass")
    predict.add_argument("--cpu", action="store_true", help="run on the CPU even with a GPU")
    return parser.parse_args(argv)


TASK_OVERRIDES = ("wordpiece_vocab", "wordpiece_case", "spm_model", "max_seq_length",
                  "doc_stride", "max_query_length", "n_best_size", "max_answer_length",
                  "null_score_diff_threshold")


def load(args):
    """(model, task) from the checkpoint, with the overrides and a dictionary directory."""
    import torch
    from fairseq import checkpoint_utils

    import fairseq_unilmv2  # noqa: F401  (registers the task and the model)

    overrides = {name: getattr(args, name) for name in TASK_OVERRIDES
                 if getattr(args, name) is not None}
    if args.wordpiece_vocab:
        overrides["spm_model"] = None
    if args.spm_model:
        overrides["wordpiece_vocab"] = None
    state = checkpoint_utils.load_checkpoint_to_cpu(args.path, overrides)
    task_cfg = state["cfg"].task
    if getattr(task_cfg, "_name", None) != "squad":
        raise SystemExit(f"{args.path} is a checkpoint of --task {getattr(task_cfg, '_name', '?')}"
                         ": fine-tune it with --task squad --criterion squad_span first")
    candidates = [args.dict_dir] if args.dict_dir else [task_cfg.data,
                                                        str(Path(args.path).parent)]
    found = [d for d in candidates if d and os.path.isfile(os.path.join(d, "dict.txt"))]
    if not found:
        raise SystemExit(f"no dict.txt in {' or '.join(map(str, candidates))}: pass --dict-dir "
                         "DIR, the directory of the dictionary the model was fine-tuned with")
    task_cfg.data = found[0]
    models, _, task = checkpoint_utils.load_model_ensemble_and_task([args.path], state=state)
    model = models[0]
    if torch.cuda.is_available() and not args.cpu:
        model = model.cuda()
    return model.eval(), task


def write_json(path: Path, value) -> None:
    path.write_text(json.dumps(value, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def predict(args) -> dict:
    from fairseq_unilmv2.data.squad_examples import load_squad_json
    from fairseq_unilmv2.data.squad_postprocess import official_outputs

    model, task = load(args)
    articles = load_squad_json(args.data).get("data")
    examples, version_2 = task.read_examples(args.data, articles)
    version_2 = version_2 or args.version_2_with_negative
    allow_null = version_2 and not args.no_null
    predictions = task.predict(model, examples, allow_null, batch_size=args.batch_size)
    texts, null_odds = official_outputs(predictions, allow_null)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "predictions.json", texts)
    if null_odds is not None:
        write_json(out / "null_odds.json", null_odds)
    write_json(out / "nbest_predictions.json", {
        qid: [{"text": c.text, "char_start": c.char_start, "char_end": c.char_end,
               "start_logit": c.start_logit, "end_logit": c.end_logit} for c in p.nbest]
        for qid, p in predictions.items()})
    written = ["predictions.json"] + (["null_odds.json"] if null_odds is not None else [])
    scores = None
    if any(e.answers or e.is_impossible for e in examples):
        from fairseq_unilmv2.scoring.squad import squad_scores

        # As ``evaluate-v2.0.py DATA predictions.json --na-prob-file null_odds.json`` at its
        # defaults (--na-prob-thresh 1.0), whatever --null-score-diff-threshold wrote the
        # predictions: a question whose null odds exceed 1.0 counts as unanswered there.
        scores = squad_scores(articles, texts, null_odds=null_odds, version_2=version_2)
        scores = dict(scores)
        write_json(out / "scores.json", scores)
        written.append("scores.json")
        print(json.dumps(scores))
    else:
        logger.info(f"{args.data} has no gold answers: nothing to score")
    logger.info(f"{len(texts)} questions ({'v2.0' if version_2 else 'v1.1'}): wrote "
                f"{', '.join(str(out / name) for name in written)}")
    return scores


def main(argv=None):
    logging.basicConfig(format="%(asctime)s | %(levelname)s | %(name)s | %(message)s",
                        level=logging.INFO, stream=sys.stderr)
    args = parse_args(argv)
    for name in ("path", "data"):
        if not os.path.isfile(getattr(args, name)):
            raise SystemExit(f"--{name} {getattr(args, name)} does not exist")
    if args.command == "predict":
        predict(args)


if __name__ == "__main__":
    main()
