"""Every benchmark and script runs as a user runs it, in a fresh interpreter, at reduced sizes.

Each file of ``benchmarks/`` and ``scripts/`` is found by listing the folders, so a new one is
covered without being named here: it must run ``--help`` (which imports what it imports, in its
own order) unless ``REDUCED`` gives it a reduced-mode command line, or says which test runs it
already or why it cannot run here. A script whose output depends on the order in which fairseq
modules are imported or on the log format (``benchmarks/epoch_stall.py`` read "found 0 epoch
summaries" when fairseq set the root logger before ``fairseq_cli.train``) fails here, not on a
user's machine. Benchmarks end with one JSON line; that line must parse.
"""
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Union

import pytest
from helpers import REPO, write_lines

FOLDERS = ("benchmarks", "scripts")
# Path -> the arguments of a reduced run (str "{text}" is a small text file written here), or
# a sentence naming the test that runs it already / why it cannot run in a test.
REDUCED: Dict[str, Union[List[str], str]] = {
    "benchmarks/pretrain_step.py": ["--text", "{text}", "--layers", "1", "--dim", "32",
                                    "--heads", "2", "--batch-size", "1", "--warmup", "0",
                                    "--steps", "1", "--threads", "1"],
    "benchmarks/decode.py": ["--layers", "2", "--dim", "32", "--heads", "2", "--vocab", "50",
                             "--sentences", "2", "--batch-size", "2", "--source-len", "8",
                             "--target-len", "4", "--beam", "2", "--runs", "1"],
    "benchmarks/data_throughput.py": ["--examples", "8", "--batch-size", "4", "--text-len", "32",
                                      "--source-len", "16", "--target-len", "8", "--workers",
                                      "1", "--repeats", "1"],
    "benchmarks/epoch_stall.py": ["--text", "{text}", "--lines", "64", "--epochs", "2",
                                  "--workers", "1", "--threads", "1", "--timeout", "300"],
    "benchmarks/gpu.sh": ["--dry-run"],
    "benchmarks/gpu_step.py": "runs in benchmarks/gpu.sh --dry-run (stage 1), above",
    "benchmarks/synthetic.py": "a module the benchmarks import, not a program",
    "benchmarks/record.py": ["--out", "{out}", "--", sys.executable, "-c",
                             "import json; print('hello'); print(json.dumps({'benchmark': 'x'}))"],
    "scripts/setup_env.sh": "the install step of make test and of CI, on every fresh clone",
    "scripts/quickstart.py": "tests/test_quickstart.py runs it (--quick --compare-scratch)",
    "scripts/train_full_precision.py": "runs in benchmarks/epoch_stall.py's reduced run, above, "
                                       "and in tests/test_crash_resume.py",
    "scripts/train_distributed_cpu.sh": "tests/test_docs.py runs it (docs/commands.md's '2 CPU processes')",
    "scripts/convert_checkpoint.py": "tests/test_docs.py runs it (docs/commands.md's 'import weights')",
    "scripts/export_checkpoint.py": "tests/test_docs.py runs it (docs/commands.md's 'export to HF BERT')",
    "scripts/wordpiece.py": "tests/test_docs.py runs it (docs/commands.md's 'WordPiece text')",
    "scripts/s2s_ft_data.py": "tests/test_docs.py runs it (docs/commands.md's 's2s-ft's JSON data')",
    "scripts/score.py": "tests/test_docs.py runs it (docs/commands.md's 'score files'; --qg in "
                        "tests/test_qg_scoring.py)",
    "benchmarks/squad_step.py": ["--layers", "1", "--dim", "32", "--heads", "2", "--vocab", "60",
                                 "--batch-size", "2", "--seq-len", "32", "--question-len", "8",
                                 "--warmup", "0", "--steps", "1", "--runs", "1",
                                 "--threads", "1"],
    "scripts/ablation.py": "tests/test_ablation.py runs it (--quick)",
    "benchmarks/make_results.py": "tests/test_results_page.py runs it (a page, not one JSON line)",
    "scripts/squad.py": "tests/test_squad.py and tests/test_docs.py run it (predict)",
    "scripts/prepare_data.py": "tests/test_prepare_data.py and tests/test_docs.py run its four "
                               "commands",
}
WORDS = "the cat sat on a mat and dog ran in park was is big small red".split()


def programs() -> List[str]:
    found = []
    for folder in FOLDERS:
        for path in sorted((REPO / folder).iterdir()):
            if path.suffix in (".py", ".sh") and not path.name.startswith("_"):
                found.append(str(path.relative_to(REPO)))
    return found


def command(program: str, args: List[str]) -> List[str]:
    return (["bash"] if program.endswith(".sh") else [sys.executable]) + [program, *args]


def run(argv: List[str], timeout: int = 600) -> subprocess.CompletedProcess:
    """From the repository root, as the README runs them; CPU only, one thread."""
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1",
               PYTHON=sys.executable,
               PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_every_program_has_a_row_or_runs_help():
    """Rows name existing files only (a renamed script must take its row along)."""
    assert not sorted(set(REDUCED) - set(programs()))


@pytest.mark.parametrize("program", programs())
def test_program_runs(program, tmp_path):
    row = REDUCED.get(program)
    if isinstance(row, str):
        pytest.skip(row)
    if row is None:
        proc = run(command(program, ["--help"]), timeout=300)
        assert proc.returncode == 0, \
            f"{program} --help:\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}"
        assert "usage" in (proc.stdout + proc.stderr).lower()
        return
    text = write_lines(tmp_path / "text.txt",
                       [" ".join(WORDS[(i * 7 + j) % len(WORDS)] for j in range(12 + i % 9))
                        for i in range(300)])
    args = [a.replace("{text}", str(text)).replace("{out}", str(tmp_path / "out.json"))
            for a in row]
    proc = run(command(program, args))
    assert proc.returncode == 0, f"{program}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    last = proc.stdout.strip().splitlines()[-1]
    assert isinstance(json.loads(last), dict), last
