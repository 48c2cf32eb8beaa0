"""Run one benchmark and keep what it printed, with where, when and how it ran, as JSON.

``make bench`` runs every CPU benchmark through this, so that each figure of the results page (docs/results.md)
has a file under ``benchmarks/results/`` holding the command that produced it, the machine
(CPU model, cores, load average before and after), the torch and fairseq versions, the date
(UTC), the git commit, the wall time, every line the benchmark printed and its final JSON line
parsed. The benchmark's output is passed through as it comes (so it ends with that JSON line).

    python benchmarks/record.py --out benchmarks/results/decode.json -- python benchmarks/decode.py

A study that writes its results to a file rather than printing them last (``make studies``)
names that file with ``--result-file``; its record then keeps the last ``TAIL`` printed lines
(a study prints every fairseq log line). ``benchmarks/make_results.py`` makes the results page
(``docs/results.md``) from these files alone.
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Printed lines a study's record keeps (--result-file): its summary, not its training logs.
TAIL = 200


def shown_command(command) -> str:
    """The command as a user types it: paths under the clone relative, and this environment's
    interpreter (``.venv/bin/python``) as ``python``."""
    words = [("python" if word == sys.executable or word.endswith("/bin/python") else word)
             if i == 0 else word for i, word in enumerate(command)]
    return " ".join(words).replace(str(REPO) + "/", "")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--result-file", type=Path, default=None,
                        help="JSON file the command writes its results to (relative to the "
                             "repository root), instead of its last printed line")
    parser.add_argument("command", nargs=argparse.REMAINDER,
                        help="the benchmark's command line, after --")
    args = parser.parse_args(argv)
    if args.command[:1] == ["--"]:
        args.command = args.command[1:]
    if not args.command:
        parser.error("give the benchmark's command after --, e.g. -- python benchmarks/decode.py")
    return args


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def versions() -> dict:
    """torch and fairseq as this interpreter sees them (make bench runs both with one)."""
    probe = ("import json, torch, fairseq; cuda = torch.cuda.is_available(); "
             "print(json.dumps({'torch': torch.__version__, 'fairseq': fairseq.__version__, "
             "'cuda': cuda, 'gpu': torch.cuda.get_device_name(0) if cuda else None}))")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    return json.loads(proc.stdout) if proc.returncode == 0 else {"error": proc.stderr[-300:]}


def git_commit() -> str:
    proc = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                          text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                           capture_output=True, text=True).stdout.strip()
    return (proc.stdout.strip() or "unknown") + ("+uncommitted changes" if dirty else "")


def main(argv=None) -> int:
    args = parse_args(argv)
    started = datetime.datetime.now(datetime.timezone.utc)
    commit = git_commit()  # the code that runs, before anything is edited during the run
    load_before = os.getloadavg()
    start = time.monotonic()
    proc = subprocess.Popen(args.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, cwd=REPO)
    printed = []
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        printed.append(line.rstrip("\n"))
    status = proc.wait()
    result = None
    if args.result_file is not None:
        result_file = args.result_file if args.result_file.is_absolute() else REPO / args.result_file
        if status == 0 and result_file.is_file():
            result = json.loads(result_file.read_text(encoding="utf-8"))
        printed_lines, printed = len(printed), printed[-TAIL:]
    elif printed:
        printed_lines = len(printed)
        try:
            result = json.loads(printed[-1])
        except json.JSONDecodeError:
            pass
    else:
        printed_lines = 0
    record = {
        "command": shown_command(args.command),
        "exit_status": status,
        "date_utc": started.strftime("%Y-%m-%d %H:%M:%S"),
        "wall_s": round(time.monotonic() - start, 1),
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "platform": platform.platform(),
                    "load1_before": round(load_before[0], 2),
                    "load1_after": round(os.getloadavg()[0], 2)},
        "versions": versions(),
        "python": platform.python_version(),
        "git_commit": commit,
        "printed_lines": printed_lines,
        "printed": printed,
        "result": result,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    if status != 0 or result is None:
        what = (f"{args.result_file} holds no JSON" if args.result_file is not None
                else "its last line is not JSON")
        print(f"{args.command[0]} ... exited with status {status}"
              + ("" if result is not None else f", {what}"), file=sys.stderr)
        return status or 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
