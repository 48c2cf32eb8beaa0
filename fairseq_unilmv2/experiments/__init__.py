"""The machinery of the experiment scripts (``scripts/quickstart.py``, ``scripts/ablation.py``,
``scripts/squad_study.py``): running a stage with its printed command and log, the sentencepiece
and ``fairseq-preprocess`` stages, the fairseq training and decoding runs, and counting SQuAD
training windows through ``--task squad``'s own code.

Not imported by ``fairseq_unilmv2/__init__.py``: loading the plugin with ``--user-dir`` does not
load it.
"""
