"""The installed plugin from any directory: ``--user-dir "$(python -m fairseq_unilmv2)"``.

``python -m fairseq_unilmv2`` prints the package's directory without importing fairseq (or
torch) and without applying the compat fixes; ``import fairseq_unilmv2`` still registers
everything. The end-to-end test trains through the environment's own install of the package,
as a user outside the repository would: no PYTHONPATH, a directory with no ``fairseq_unilmv2``
in it. It needs that install to be this checkout (the editable install that ``make setup`` and
CI make of the clone) and skips, saying so, when the environment's copy is another one.
"""
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest
from helpers import REPO, TINY_MODEL_ARGS, binarize_text

PACKAGE_DIR = (REPO / "fairseq_unilmv2").resolve()


def imported_modules(importtime_log: str) -> List[str]:
    """Module names from ``python -X importtime``'s report (one line per module imported)."""
    return re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s+(\S+)\s*$", importtime_log, flags=re.M)


def python_in(cwd: Path, *args: str, pythonpath=None) -> subprocess.CompletedProcess:
    """This environment's Python run in ``cwd``, with PYTHONPATH set to ``pythonpath`` (None:
    unset)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_printing_the_user_dir_imports_neither_fairseq_nor_torch(tmp_path):
    proc = python_in(tmp_path, "-X", "importtime", "-m", "fairseq_unilmv2", pythonpath=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout == f"{PACKAGE_DIR}\n"
    modules = imported_modules(proc.stderr)
    assert "fairseq_unilmv2" in modules  # the report is read right
    heavy = [m for m in modules if m.split(".")[0] in ("fairseq", "torch", "numpy", "hydra")
             or m == "fairseq_unilmv2.compat"]
    assert not heavy, f"python -m fairseq_unilmv2 imported {heavy[:10]}"


def test_importing_the_package_still_registers_everything(tmp_path):
    code = ("import sys, fairseq_unilmv2\n"
            "from fairseq.tasks import TASK_REGISTRY\n"
            "from fairseq.criterions import CRITERION_REGISTRY\n"
            "from fairseq.optim import OPTIMIZER_REGISTRY\n"
            "print('pmlm' in TASK_REGISTRY, 'unilm_seq2seq' in CRITERION_REGISTRY,\n"
            "      'adam_no_decay_bias_ln' in OPTIMIZER_REGISTRY,\n"
            "      fairseq_unilmv2.compat._APPLIED)\n")
    proc = python_in(tmp_path, "-c", code, pythonpath=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["True"] * 4


def test_python_dash_m_rejects_arguments(tmp_path):
    proc = python_in(tmp_path, "-m", "fairseq_unilmv2", "--user-dir", pythonpath=REPO)
    assert proc.returncode == 2 and not proc.stdout
    assert "takes no arguments (got --user-dir)" in proc.stderr


def test_fairseq_train_from_another_directory_with_the_installed_plugin(tmp_path):
    where = python_in(tmp_path, "-c", "import importlib.util; "
                      "print(importlib.util.find_spec('fairseq_unilmv2').origin)")
    installed = Path(where.stdout.strip()).parent if where.returncode == 0 else None
    if installed is None or installed.resolve() != PACKAGE_DIR:
        pytest.skip(f"this environment's fairseq_unilmv2 is {installed or 'not installed'}, "
                    f"not this checkout's {PACKAGE_DIR}: the test needs the editable install of "
                    "this checkout that `make setup` makes")
    binarize_text(["the cat sat on the mat", "a dog ran in the park and sat"] * 40,
                  tmp_path / "data-bin")
    work = tmp_path / "elsewhere"
    work.mkdir()
    command = ('fairseq-train ../data-bin --user-dir "$(python -m fairseq_unilmv2)" '
               "--task pmlm --criterion pmlm " + " ".join(TINY_MODEL_ARGS) +
               " --tokens-per-sample 32 --batch-size 8 --optimizer adam --lr 1e-3 "
               "--max-update 2 --save-dir ckpt --no-epoch-checkpoints --cpu --num-workers 0")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PATH=f"{Path(sys.executable).parent}:{env['PATH']}", CUDA_VISIBLE_DEVICES="",
               OMP_NUM_THREADS="1")
    proc = subprocess.run(["bash", "-c", command], cwd=work, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    log = proc.stdout + proc.stderr
    assert f"'user_dir': '{PACKAGE_DIR}'" in log  # fairseq logs its config
    assert "ae_loss" in log and (work / "ckpt" / "checkpoint_last.pt").exists()
    assert not (work / "fairseq_unilmv2").exists()
