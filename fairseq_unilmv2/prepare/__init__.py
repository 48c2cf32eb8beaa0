"""The paper's generation benchmarks from their public releases -> aligned one-example-a-line
files (``scripts/prepare_data.py``).

- :mod:`.qg`: SQuAD question generation, Du et al.'s sentence-level files (xinyadu/nqg) and
  UniLM's passage-plus-answer setting (SQuAD JSON + nqg's article lists);
- :mod:`.cnndm`: CNN/DailyMail from See et al.'s ``.story`` files or article/highlights
  CSV / JSON lines;
- :mod:`.xsum`: XSum from EdinburghNLP/XSum's summary files and id split.

Every command writes its files through :class:`.common.OutputFiles`: all or nothing.
"""
