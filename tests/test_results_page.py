"""``make results``: docs/results.md and the README's headline table come from
benchmarks/results/*.json alone, and a figure whose file is missing reads "not measured"."""
import json
import shutil
import subprocess
import sys

from helpers import REPO

SCRIPT = REPO / "benchmarks" / "make_results.py"
sys.path.insert(0, str(SCRIPT.parent))
import make_results  # noqa: E402


def make(tmp_path, results):
    """Run the script as `make results` does, on a copy of the README, into tmp_path."""
    readme, page = tmp_path / "README.md", tmp_path / "results.md"
    shutil.copy(REPO / "README.md", readme)
    proc = subprocess.run([sys.executable, str(SCRIPT), "--results", str(results), "--page",
                           str(page), "--readme", str(readme)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return page.read_text(encoding="utf-8"), readme.read_text(encoding="utf-8")


def row(text, what):
    """The table row of the figure ``what``."""
    rows = [line for line in text.splitlines() if line.startswith(f"| {what} |")]
    assert len(rows) == 1, f"{what!r}: {len(rows)} rows"
    return rows[0]


def test_committed_page_and_readme_are_what_make_results_makes():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, "run `make results`: " + proc.stderr


def test_figures_come_from_the_json_and_a_missing_file_reads_not_measured(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(REPO / "benchmarks" / "results", results)
    record = json.loads((results / "pretrain_step.json").read_text())
    pretrain = "pre-training update, pmlm / fairseq's masked_lm (same layers, same 512 text " \
               "tokens; target at most 1.35)"

    page, readme = make(tmp_path, results)
    line = row(page, pretrain)
    assert f"{record['result']['ratio']:.2f} of medians" in line
    assert record["date_utc"] in line and record["git_commit"] in line
    assert record["machine"]["cpu"] in line and "python benchmarks/pretrain_step.py" in line
    assert f"{record['result']['ratio']:.2f} of medians" in row(readme, pretrain)

    # A planted figure shows up, from its file alone.
    planted = dict(record, result=dict(record["result"], ratio=9.87))
    (results / "pretrain_step.json").write_text(json.dumps(planted))
    page, readme = make(tmp_path, results)
    assert "9.87 of medians" in row(page, pretrain) and "9.87 of medians" in row(readme, pretrain)

    # Deleting the file turns the figure into "not measured", with the command that measures it.
    (results / "pretrain_step.json").unlink()
    page, readme = make(tmp_path, results)
    for text in (page, readme):
        line = row(text, pretrain)
        assert "| not measured |" in line and "9.87" not in line and "1.30" not in line
    assert "--out benchmarks/results/pretrain_step.json -- python benchmarks/pretrain_step.py" \
        in page
    # The other files' figures stay.
    decode = json.loads((results / "decode.json").read_text())["result"]
    assert f"{decode['incremental_over_no_cache']:.1f}x" in page


def test_a_failed_run_and_a_missing_key_read_not_measured(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    record = json.loads((REPO / "benchmarks" / "results" / "decode.json").read_text())
    (results / "decode.json").write_text(json.dumps(dict(record, exit_status=1)))
    page, _ = make(tmp_path, results)
    assert "not measured (the recorded run failed)" in row(
        page, "beam-5 decoding, incremental decoder / a full forward a step")
    (results / "decode.json").write_text(json.dumps(dict(record, result={"benchmark": "decode"})))
    page, _ = make(tmp_path, results)
    assert "not measured (not in decode.json)" in page


def test_every_figure_names_a_known_source_and_every_group_is_there():
    titles = [title for title, _, _ in make_results.GROUPS]
    assert titles == ["Fidelity to the authors' code", "Speed against fairseq", "The studies"]
    for _, _, figures in make_results.GROUPS:
        for figure in figures:
            assert figure.source in make_results.SOURCES


def test_a_study_is_recorded_from_its_result_file(tmp_path):
    """benchmarks/record.py --result-file: what `make studies` keeps of a study's run."""
    out = tmp_path / "study.json"
    result = tmp_path / "results.json"
    code = (f"import json; [print('log line', i) for i in range(500)]; "
            f"open({str(result)!r}, 'w').write(json.dumps({{'table': 1}}))")
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "record.py"), "--out",
                           str(out), "--result-file", str(result), "--", sys.executable, "-c",
                           code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    record = json.loads(out.read_text())
    assert record["result"] == {"table": 1} and record["exit_status"] == 0
    assert record["printed_lines"] == 500 and len(record["printed"]) == 200
    assert record["printed"][-1] == "log line 499"
