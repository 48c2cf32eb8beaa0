"""fairseq_unilmv2: the UniLMv2 pseudo-masked language model as a fairseq user-dir plugin.

Install with ``bash scripts/setup_env.sh`` (or ``make setup``), which also installs fairseq-fixed
without its torchaudio requirement; see the README.
"""
from setuptools import find_packages, setup

setup(
    name="fairseq_unilmv2",
    version="0.1.0",
    description="UniLMv2 pseudo-masked language model (PMLM) pre-training, fine-tuning and "
    "decoding as a fairseq plugin",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["fairseq_unilmv2", "fairseq_unilmv2.*"]),
    # fairseq-fixed is installed by scripts/setup_env.sh: its sdist declares torchaudio, which
    # must be skipped on CPU-only torch builds, so it cannot be a plain install_requires here.
    # tokenizers: the squad task's WordPiece offsets; nltk: CNN/DailyMail references' PTB
    # tokens (both already come with transformers and rouge-score).
    install_requires=["torch>=2.6",  # torch.serialization.safe_globals (safe checkpoint loading)
                      "numpy", "sentencepiece", "rouge-score", "nltk", "tokenizers",
                      "sacrebleu", "matplotlib"],
    extras_require={"test": ["pytest", "hypothesis", "transformers", "safetensors"]},
    entry_points={"console_scripts": []},
)
