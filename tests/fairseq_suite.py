"""fairseq's own tests, run twice: plain and with this plugin imported first.

Loading the plugin (``--user-dir fairseq_unilmv2``) must change nothing a user of another
fairseq task did not ask for. This copies fairseq v0.12.2's ``tests/``
(``../shared/fairseq-tests``; fairseq-fixed's sdist ships the same test files without the
``tests/utils.py`` they import; where the two differ, the sdist's ``test_*.py`` win, as
fairseq-fixed adapted a few to its own changes, e.g. ``--required-batch-size-multiple 1``)
to a temporary folder, runs a named set of them with pytest once as they are and once with
``fairseq_unilmv2`` imported before any test (a pytest ``-p`` plugin), and fails when a test
passes plain and fails with the plugin. Tests that fail plain and pass with the plugin are the
compat fixes at work (``torch.load`` of checkpoints, ``np.compat``) and are listed, not counted
against it. Both runs' counts are printed; the last line is one JSON object.

    python tests/fairseq_suite.py                 # the CI set (4-5.5 min on 2 cores at load 5-10)
    python tests/fairseq_suite.py --set units     # the unit-test files only
    python tests/fairseq_suite.py --sdist none    # ../shared's files only, not the sdist's
    make fairseq-tests

Not a pytest module (its name does not start with ``test_``): ``make test`` does not run it.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, List

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TESTS = REPO.parent / "shared" / "fairseq-tests" / "tests"

# Unit-test files: the parts of fairseq the compat fixes patch (iterators, batching, checkpoint
# loading and copying, n-gram blocking in the sequence generator, np.compat in the token-block
# and language-pair datasets) and their neighbours.
UNIT_FILES = [
    "test_iterators.py", "test_sequence_generator.py", "test_sequence_scorer.py",
    "test_token_block_dataset.py", "test_dataset.py", "test_noising.py",
    "test_backtranslation_dataset.py", "test_concat_dataset.py", "test_data_utils.py",
    "test_checkpoint_utils.py", "test_train.py",
    "test_dictionary.py", "test_label_smoothing.py", "test_lm_context_window.py",
    "test_multi_corpus_dataset.py", "test_resampling_dataset.py", "test_metrics.py",
    "test_utils.py", "test_valid_subset_checks.py",
    "test_export.py",
]
# The small end-to-end tests of fairseq's CLIs (train, generate, validate, eval-lm in process):
# translation, language model, masked LM and RoBERTa classification, optimizers.
BINARIES = "test_binaries.py::"
BINARIES_TESTS = [
    "TestTranslation::test_transformer", "TestTranslation::test_generation",
    "TestTranslation::test_max_positions", "TestTranslation::test_update_freq",
    "TestLanguageModeling::test_transformer_lm", "TestLanguageModeling::test_lstm_lm",
    "TestMaskedLanguageModel::test_legacy_masked_lm",
    "TestMaskedLanguageModel::test_roberta_masked_lm",
    "TestMaskedLanguageModel::test_roberta_sentence_prediction",
    "TestMaskedLanguageModel::test_linformer_roberta_masked_lm",
    "TestOptimizers::test_optimizers",
]
SETS = {
    "units": UNIT_FILES,
    "binaries": [BINARIES + name for name in BINARIES_TESTS],
}
SETS["ci"] = SETS["units"] + SETS["binaries"]
# Not in any set: test_average_checkpoints.py imports fairseq's repository scripts/ (not
# installed), test_dataclass_utils.py declares a dataclass default Python 3.11 rejects.
# Deselected in every run, with the reason: they need what this environment does not have.
DESELECT = {
    "test_sequence_generator.py::TestSequenceGeneratorBase": "a base class without tests",
}
PLUGIN_LOADER = "import fairseq_unilmv2  # noqa: F401  (the plugin, as --user-dir loads it)\n"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tests", type=Path, default=DEFAULT_TESTS,
                        help="fairseq's tests/ folder (copied, never written)")
    parser.add_argument("--set", choices=sorted(SETS), default="ci", help="which tests to run")
    parser.add_argument("--only", nargs="+", default=None,
                        help="run these test ids (file.py or file.py::Class::test) instead")
    parser.add_argument("--sdist", default="auto",
                        help="a fairseq-fixed sdist (.tar.gz) whose tests/test_*.py replace "
                             "those of --tests where both have one (fairseq-fixed adapted a few "
                             "to its own changes); 'auto': the installed version's, fetched "
                             "once with pip download into ~/.cache/fairseq_unilmv2; 'none'")
    parser.add_argument("--timeout", type=int, default=1200, help="seconds for each run")
    parser.add_argument("--keep", type=Path, default=None,
                        help="keep the copy and both runs' reports in this folder")
    return parser.parse_args(argv)


def find_sdist(choice: str):
    """The sdist's path, or None (then the tests are run as ../shared/fairseq-tests has them)."""
    if choice == "none":
        return None
    if choice != "auto":
        return Path(choice)
    from importlib.metadata import PackageNotFoundError, version
    try:
        name = f"fairseq_fixed-{version('fairseq-fixed')}.tar.gz"
    except PackageNotFoundError:
        print("fairseq-fixed is not installed: no sdist, the test files as they are")
        return None
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fairseq_unilmv2"
    if not (cache / name).exists():
        spec = name[:-len(".tar.gz")].replace("fairseq_fixed-", "fairseq-fixed==")
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet",
                               "--disable-pip-version-check", "--no-deps", "--no-binary",
                               ":all:", "--no-build-isolation", spec, "-d", str(cache)],
                              capture_output=True, text=True, timeout=600)
        if proc.returncode != 0 or not (cache / name).exists():
            print(f"warning: pip download {spec} failed, running the test files of --tests as "
                  f"they are:\n{proc.stderr[-1000:]}")
            return None
    return cache / name


def copy_tests(source: Path, sdist: Path, dest: Path) -> None:
    if not (source / "utils.py").exists():
        raise SystemExit(f"{source} has no utils.py: --tests must be fairseq v0.12.2's tests/ "
                         "folder (../shared/fairseq-tests/tests)")
    shutil.copytree(source, dest / "tests")
    if sdist is None:
        return
    with tarfile.open(sdist) as tar:
        for member in tar.getmembers():
            parts = Path(member.name).parts
            if len(parts) == 3 and parts[1] == "tests" and parts[2].startswith("test_") \
                    and parts[2].endswith(".py"):
                text = tar.extractfile(member).read().replace(b"\r\n", b"\n")
                (dest / "tests" / parts[2]).write_bytes(text)


def run_pytest(root: Path, ids: List[str], report: Path, with_plugin: bool,
               timeout: int) -> float:
    loader_dir = root / "loader"
    loader_dir.mkdir(exist_ok=True)
    (loader_dir / "unilmv2_loaded.py").write_text(PLUGIN_LOADER)
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(root), str(REPO), str(loader_dir)]))
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
               "-o", "addopts=", "--continue-on-collection-errors", "--rootdir", str(root),
               f"--junitxml={report}"]
    for node in DESELECT:
        command += ["--deselect", f"tests/{node}"]
    if with_plugin:
        command += ["-p", "unilmv2_loaded"]
    command += [f"tests/{i}" for i in ids]
    start = time.monotonic()
    proc = subprocess.run(command, cwd=root, env=env, text=True, capture_output=True,
                          timeout=timeout)
    seconds = time.monotonic() - start
    tail = (proc.stdout + proc.stderr).strip().splitlines()
    print(f"  {'plugin' if with_plugin else 'plain '}: {tail[-1] if tail else '(no output)'}"
          f"  [{seconds:.0f} s]", flush=True)
    if not report.exists():
        raise SystemExit(f"pytest wrote no report (exit status {proc.returncode}):\n"
                         + "\n".join(tail[-40:]))
    return seconds


def outcomes(report: Path) -> Dict[str, str]:
    """test id -> passed / failed / skipped, from a JUnit XML report."""
    result = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        if case.find("failure") is not None or case.find("error") is not None:
            result[name] = "failed"
        elif case.find("skipped") is not None:
            result[name] = "skipped"
        else:
            result[name] = "passed"
    return result


def counts(results: Dict[str, str]) -> Dict[str, int]:
    return {k: sum(v == k for v in results.values()) for k in ("passed", "failed", "skipped")}


def main(argv=None) -> int:
    args = parse_args(argv)
    ids = args.only or SETS[args.set]
    with tempfile.TemporaryDirectory(prefix="fairseq_tests_") as tmp:
        root = Path(tmp) if args.keep is None else args.keep
        root.mkdir(parents=True, exist_ok=True)
        sdist = find_sdist(args.sdist)
        copy_tests(args.tests, sdist, root)
        print(f"fairseq tests from {args.tests}"
              + (f" (test files of {sdist.name})" if sdist else "")
              + f", {len(ids)} ids, in {root}", flush=True)
        plain_s = run_pytest(root, ids, root / "plain.xml", False, args.timeout)
        plugin_s = run_pytest(root, ids, root / "plugin.xml", True, args.timeout)
        plain, plugin = outcomes(root / "plain.xml"), outcomes(root / "plugin.xml")
    broken = sorted(t for t, o in plain.items() if o == "passed" and plugin.get(t) != "passed")
    fixed = sorted(t for t, o in plain.items() if o == "failed" and plugin.get(t) == "passed")
    missing = sorted(set(plain) ^ set(plugin))
    for title, names in (("fail plain, pass with the plugin (compat fixes)", fixed),
                         ("fail in both runs", sorted(t for t, o in plain.items()
                                                      if o == "failed" and
                                                      plugin.get(t) == "failed")),
                         ("in one run only", missing),
                         ("PASS PLAIN, NOT WITH THE PLUGIN", broken)):
        if names:
            print(f"{title}:\n" + "\n".join(f"  {n}" for n in names))
    print(f"plain:  {counts(plain)}\nplugin: {counts(plugin)}")
    print(json.dumps({"benchmark": "fairseq_tests", "set": args.set if not args.only else "only",
                      "plain": counts(plain), "plugin": counts(plugin),
                      "broken_by_plugin": broken, "fixed_by_plugin": fixed,
                      "plain_s": round(plain_s), "plugin_s": round(plugin_s)}))
    return 1 if broken or missing else 0


if __name__ == "__main__":
    sys.exit(main())
