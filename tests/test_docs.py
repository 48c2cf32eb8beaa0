"""Every command line of README.md and examples/*/README.md parses as written.

The shell code of each document (fenced ``bash`` blocks, indented blocks, and inline commands
of tables and lists) runs in one bash session, in document order, with stand-ins for
fairseq's CLIs, ``python``, ``torchrun`` and ``srun`` on the PATH: they record their arguments
instead of running, so the variables, loops and ``$(...)`` of the documents expand exactly as
for a reader. ``scripts/train_distributed_cpu.sh`` runs for real with the fairseq-train stand-in.
Each recorded command is then parsed by the real parser: fairseq's (``--user-dir`` imports the
plugin, so every flag it registers is known, and the configuration is composed as fairseq-train
composes it) or the script's own ``parse_args``. A documented command line that never reached a
stand-in (a placeholder such as ``<flags>`` read as a redirection, a loop over nothing) fails
too. The table of entry points (docs/commands.md) also runs end to end at tiny sizes
(``test_entry_points_run``), and every command of the README is one of its rows, so the
README's commands run too. No user document speaks of the project's own process
(``test_no_process_words``).
"""
import contextlib
import importlib.util
import io
import json
import os
import random
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
from helpers import REPO

DOCS = [REPO / "README.md", REPO / "docs" / "commands.md",
        *sorted((REPO / "examples").glob("*/README.md"))]
COMMANDS = REPO / "docs" / "commands.md"
FAIRSEQ_CLIS = ("fairseq-train", "fairseq-preprocess", "fairseq-generate",
                "fairseq-interactive", "fairseq-validate", "fairseq-hydra-train")
STAND_INS = (*FAIRSEQ_CLIS, "python", "torchrun", "srun", "make")
# A line is a documented command when its first word (after VAR=value prefixes) is one of these.
ENTRY = re.compile(r"^(?:\w+=\S*\s+)*(fairseq-\w+|python scripts/|scripts/|torchrun|srun)")
# Files the documents tell the reader to have before their commands (data, downloads, what
# scripts/convert_checkpoint.py writes), written with one line each.
DOC_INPUTS = {
    "examples/convert/README.md": ["checkpoints/unilm2-base-uncased/model_flags.txt",
                                   *[f"raw/{split}.{side}" for split in ("train", "valid", "test")
                                     for side in ("src", "tgt")]],
    "examples/glue/README.md": [f"glue/RTE/{split}.{part}" for split in ("train", "dev")
                                for part in ("input0", "input1", "label")],
    "examples/squad/README.md": ["squad/train-v2.0.json", "squad/dev-v2.0.json",
                                 "checkpoints/unilm2-base-uncased/model_flags.txt",
                                 "checkpoints/squad2/checkpoint_best.pt",
                                 "checkpoints/squad2-here/checkpoint_best.pt",
                                 "data-bin/shard0/dict.txt"],
}
RECORD_SEP, FIELD_SEP = "\x1e", "\x1f"
# A stand-in records its command line and creates the (empty) file named by --output, which
# later lines of a document may test for. The record is appended in one write: two stand-ins
# may record at once (scripts/train_distributed_cpu.sh starts its processes together).
STAND_IN = f"""#!/usr/bin/env bash
printf -v record '%s{FIELD_SEP}' "${{DOC_LINE:-0}}" "$(basename "$0")" "$@"
printf '%s{RECORD_SEP}' "$record" >> "$DOC_RECORD"
previous=""
for arg in "$@"; do
    if [ "$previous" = --output ]; then mkdir -p "$(dirname "$arg")" && : > "$arg"; fi
    previous="$arg"
done
"""


# ----------------------------------------------------------------------------- extraction
def shell_lines(markdown: str) -> List[Tuple[int, str]]:
    """(1-based line number, text) of the document's shell code, in order: fenced bash blocks
    (dedented to their fence), indented blocks, and inline commands of table rows and lists."""
    lines = markdown.split("\n")
    out: List[Tuple[int, str]] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        fence = re.match(r"^(\s*)```(\w*)\s*$", line)
        if fence:
            indent, language = len(fence.group(1)), fence.group(2)
            i += 1
            while i < len(lines) and not lines[i].strip().startswith("```"):
                if language in ("bash", "sh", "shell"):
                    out.append((i + 1, lines[i][indent:]))
                i += 1
        elif line.startswith("    ") and (i == 0 or not lines[i - 1].strip()) and \
                not line.lstrip().startswith(("-", "|")):
            while i < len(lines) and (lines[i].startswith("    ") or not lines[i].strip()):
                out.append((i + 1, lines[i][4:]))
                i += 1
            continue
        elif line.startswith(("|", "- ")):
            for span in re.findall(r"`([^`]+)`", line):
                if ENTRY.match(span) and len(span.split()) >= 3 and "..." not in span \
                        and "<" not in span:
                    out.append((i + 1, span))
        i += 1
    return out


def instrumented_script(markdown: str) -> Tuple[str, Dict[int, str]]:
    """The document's shell code with ``DOC_LINE=<line>`` set before every command line, and
    those command lines by line number."""
    script, commands = [], {}
    pending: List[Tuple[int, str]] = []
    for number, text in shell_lines(markdown):
        pending.append((number, text))
        if text.rstrip().endswith("\\"):
            continue  # a continued line: the logical line starts at pending[0]
        first_number, first_text = pending[0]
        logical = " ".join(t.strip().rstrip("\\").strip() for _, t in pending)
        if ENTRY.match(logical.lstrip()):
            script.append(f"export DOC_LINE={first_number}")
            commands[first_number] = logical
        script.extend(t for _, t in pending)
        pending = []
    return "\n".join(script) + "\n", commands


def recorded_commands(doc: Path, workdir: Path) -> Tuple[List[Tuple[int, List[str]]],
                                                         Dict[int, str], str]:
    """Run the document's shell code with the stand-ins; returns the recorded command lines
    (document line, argv with the program name first), the documented ones, and bash's
    output."""
    stand_ins = workdir / "bin"
    stand_ins.mkdir(parents=True)
    for name in STAND_INS:
        path = stand_ins / name
        path.write_text(STAND_IN)
        path.chmod(0o755)
    for name in ("scripts", "fairseq_unilmv2"):
        (workdir / name).symlink_to(REPO / name)
    for relative in DOC_INPUTS.get(str(doc.relative_to(REPO)), []):
        (workdir / relative).parent.mkdir(parents=True, exist_ok=True)
        (workdir / relative).write_text(converted_model_flags() if relative.endswith(
            "model_flags.txt") else "a line\n")
    script, commands = instrumented_script(doc.read_text(encoding="utf-8"))
    record = workdir / "record"
    env = dict(os.environ, PATH=f"{stand_ins}:{os.environ['PATH']}", DOC_RECORD=str(record),
               FAIRSEQ_TRAIN=str(stand_ins / "fairseq-train"))
    proc = subprocess.run(["bash", "-c", script], cwd=workdir, env=env, capture_output=True,
                          text=True, timeout=120)
    entries = []
    if record.exists():
        for item in record.read_text().split(RECORD_SEP):
            if item:
                fields = item.split(FIELD_SEP)[:-1]
                entries.append((int(fields[0]), fields[1:]))
    return entries, commands, proc.stdout + proc.stderr


def converted_model_flags() -> str:
    """What the converter writes to model_flags.txt for a base-size model."""
    from fairseq_unilmv2.convert.checkpoint import model_flags
    from fairseq_unilmv2.models.unilm_v2 import UniLMv2Config

    return " ".join(model_flags(UniLMv2Config())) + "\n"


# ----------------------------------------------------------------------------- parsing
def fairseq_argv(argv: List[str]) -> Tuple[str, List[str]]:
    """(fairseq CLI, its arguments) of a recorded command, through torchrun and srun."""
    program, args = argv[0], argv[1:]
    if program in ("torchrun", "srun"):
        where = next(i for i, a in enumerate(args) if Path(a).name == "fairseq-train")
        return "fairseq-train", args[where + 1:]
    return program, args


def hydra_config(config_dir: Path, name: str, overrides: List[str]):
    """A config of ``--config-dir`` as fairseq-hydra-train composes it: fairseq's schema, the
    overrides (an unknown key fails), the user dir imported, the defaults of the registered
    task, model, criterion... added."""
    from fairseq import utils
    from fairseq.dataclass.initialize import add_defaults, hydra_init
    from hydra import compose, initialize_config_dir

    hydra_init(name)
    with initialize_config_dir(config_dir=str(config_dir.resolve())):
        cfg = compose(config_name=name, overrides=overrides)
    utils.import_user_module(cfg.common)
    add_defaults(cfg)
    return cfg


def parse_hydra(args: List[str]) -> None:
    """fairseq-hydra-train's ``--config-dir D --config-name N key=value ...``, every value
    given (none left ``???``)."""
    from omegaconf import OmegaConf

    config_dir, name = args[args.index("--config-dir") + 1], args[args.index("--config-name") + 1]
    overrides = [a for a in args if a not in ("--config-dir", config_dir, "--config-name", name)]
    cfg = hydra_config(Path(config_dir), name, overrides)
    missing = OmegaConf.missing_keys(cfg)
    if missing:
        raise ValueError(f"no value given for {', '.join(sorted(missing))}")


def parse_fairseq(program: str, args: List[str]) -> None:
    from fairseq import options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    if program == "fairseq-hydra-train":
        parse_hydra(args)
        return
    if program == "fairseq-preprocess":
        options.get_preprocessing_parser().parse_args(args)
        return
    parser = {"fairseq-train": options.get_training_parser,
              "fairseq-generate": options.get_generation_parser,
              "fairseq-interactive": options.get_interactive_generation_parser,
              "fairseq-validate": options.get_validation_parser}[program]()
    namespace = options.parse_args_and_arch(parser, args)
    convert_namespace_to_omegaconf(namespace)  # what the CLI composes before anything runs


def parse_script(script: str, args: List[str]) -> None:
    path = REPO / script
    spec = importlib.util.spec_from_file_location(f"doc_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.parse_args(args)


def parse_recorded(argv: List[str], workdir: Path) -> str:
    """'' when the command parses, else the parser's message."""
    stderr = io.StringIO()
    cwd = os.getcwd()
    try:
        os.chdir(REPO)  # --user-dir fairseq_unilmv2 is relative to the repository
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            if argv[0] == "python":
                if argv[1] == "-c":
                    return ""
                os.chdir(workdir)  # the script's own checks (files named on the line)
                parse_script(argv[1], argv[2:])
            elif argv[0] != "make":
                parse_fairseq(*fairseq_argv(argv))
    except SystemExit as err:
        if err.code not in (0, None):
            return stderr.getvalue().strip().splitlines()[-1] if stderr.getvalue() else str(err)
    except Exception as err:  # noqa: BLE001  (any failure to parse is the finding)
        return f"{type(err).__name__}: {err}"
    finally:
        os.chdir(cwd)
    return ""


@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(REPO)) for d in DOCS])
def test_every_documented_command_parses(doc, tmp_path):
    entries, commands, bash_output = recorded_commands(doc, tmp_path)
    assert commands, f"no command lines found in {doc}"
    problems = []
    reached = {line for line, _ in entries}
    for line, command in sorted(commands.items()):
        if line not in reached:
            problems.append(f"line {line}: never ran: {command[:120]}")
    for line, argv in entries:
        message = parse_recorded(argv, tmp_path)
        if message:
            problems.append(f"line {line}: {shlex.join(argv)[:160]}\n    {message}")
    assert not problems, f"{doc.relative_to(REPO)}:\n" + "\n".join(problems) + \
        f"\n(bash output:\n{bash_output[-2000:]})"


def test_one_name_for_the_converted_model_folder():
    folders = set()
    for doc in DOCS:
        _, commands = instrumented_script(doc.read_text(encoding="utf-8"))
        for command in commands.values():
            # Released checkpoints (--checkpoint); a packaged model (--package) has its own.
            match = re.search(r"convert_checkpoint\.py --checkpoint .*--out (\S+)", command)
            if match:
                folders.add(match.group(1))
    assert folders == {"checkpoints/unilm2-base-uncased"}


def test_extraction_finds_fenced_indented_and_table_commands():
    markdown = ("Text `fairseq-train --restore-file` in prose.\n\n    fairseq-generate a \\\n"
                "        --path b.pt\n\n```bash\nfor f in x; do\n    python scripts/score.py "
                "--hyp $f --ref r\ndone\n```\n| row | `scripts/train_distributed_cpu.sh -n 2 "
                "-- d` |\n| fragment | `fairseq-train --user-dir fairseq_unilmv2 ...` |\n")
    script, commands = instrumented_script(markdown)
    assert commands == {3: "fairseq-generate a --path b.pt",
                        8: "python scripts/score.py --hyp $f --ref r",
                        11: "scripts/train_distributed_cpu.sh -n 2 -- d"}
    assert script.index("export DOC_LINE=8") < script.index("python scripts/score.py")
    assert "for f in x; do" in script and "Text" not in script


def test_train_distributed_cpu_help_prints_the_whole_usage():
    proc = subprocess.run(["bash", str(REPO / "scripts" / "train_distributed_cpu.sh"), "--help"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and not proc.stderr
    assert "--task pmlm --criterion pmlm --arch unilm_v2_base ... --save-dir checkpoints" in \
        proc.stdout  # the usage line's continuation
    assert "OMP_NUM_THREADS (default 1 per process" in proc.stdout  # to the header's end
    assert "set -euo" not in proc.stdout
    wrong = subprocess.run(["bash", str(REPO / "scripts" / "train_distributed_cpu.sh"), "-x"],
                           capture_output=True, text=True, timeout=60)
    assert wrong.returncode == 2 and "unknown option '-x'" in wrong.stderr


# ----------------------------------------------------------------------------- process words
# Words of the project's own process, which a user's document has no use for: this project's
# issue numbers (an upstream one, "fairseq issue 4696", names its project), its sessions and
# engineers, and "this machine" (the hardware is named instead).
PROCESS_WORDS = [
    ("an issue number of this project",
     re.compile(r"(?<![\w/#-])(?:(\S+)\s+)?issues?\s*#?\d+", re.I)),
    ("a session", re.compile(r"\bsessions?\b", re.I)),
    ("an engineer", re.compile(r"\bengineers?\b", re.I)),
    ("'this machine' (name the hardware)",
     re.compile(r"\bthis\s+(?:project's\s+)?(?:[\w-]+\s+){0,3}?machine\b", re.I)),
]
# The word before "issue N" that makes it an upstream citation.
UPSTREAM = {"fairseq", "fairseq's", "pytorch", "pytorch's", "torch", "torch's", "github",
            "github's", "upstream", "transformers", "hugging", "face", "huggingface", "apex",
            "sentencepiece", "s2s-ft", "s2s-ft's", "unilm", "unilm's", "numpy", "hydra",
            "omegaconf", "microsoft/unilm", "facebookresearch/fairseq"}


def process_words(text: str) -> List[str]:
    """'line N: <what> ("<words>")' for each mention of the project's own process in ``text``."""
    found = []
    for what, pattern in PROCESS_WORDS:
        for match in pattern.finditer(text):  # across line breaks: a phrase may wrap
            before = match.group(1) if pattern.groups else None
            if before is not None and before.strip("(`*\"',;:").lower() in UPSTREAM:
                continue
            number = text.count("\n", 0, match.start(0 if before is None else 1)) + 1
            found.append((number, f"line {number}: {what} ({' '.join(match.group(0).split())!r})"))
    return [message for _, message in sorted(found)]


USER_DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")),
             *sorted((REPO / "examples").glob("*/README.md"))]


@pytest.mark.parametrize("doc", USER_DOCS, ids=[str(d.relative_to(REPO)) for d in USER_DOCS])
def test_no_process_words(doc):
    found = process_words(doc.read_text(encoding="utf-8"))
    assert not found, f"{doc.relative_to(REPO)}:\n" + "\n".join(found)


def test_process_words_are_found_and_upstream_citations_are_not():
    planted = ("Measured after issue 21 landed.\nSee fairseq issue 4696 and PyTorch issue #1234.\n"
               "Another session ran beside it, by other engineers, on this 2-core machine.\n"
               "On this machine too (issues 21 and 22). https://github.com/x/y/issues/5\n")
    found = process_words(planted)
    assert [f.split(":")[0] for f in found] == ["line 1", "line 3", "line 3", "line 3",
                                                "line 4", "line 4"], found
    assert "'after issue 21'" in found[0]
    assert any("'issues 21'" in f for f in found[-2:]), found
    assert len(process_words("a table measured on this shared\n2-core machine")) == 1
    assert process_words("fairseq issue 4696, the GitHub issue 12, torch issue #99") == []
    assert process_words("an A100 machine with 8 GPUs; issued 3 times") == []


# ----------------------------------------------------------------------------- entry points, run
# What the entry-point rows need besides each other's outputs, and what runs elsewhere.
WORDS = "the cat dog sat ran on in mat park and was is a".split()
COVERED_ELSEWHERE = {"demo": "tests/test_quickstart.py runs the same command"}
# The rows' own sizes are tiny already; only the number of updates and epochs is cut further.
FEWER_UPDATES = [("--max-update 100", "--max-update 3"), ("--max-epoch 10", "--max-epoch 1"),
                 ("optimization.max_update=100", "optimization.max_update=3")]


def entry_points() -> List[Tuple[str, str]]:
    """(row name, command) of the table of command-line entry points (docs/commands.md)."""
    return re.findall(r"^\| ([^|`]+?) \| `([^`]+)` \|$", COMMANDS.read_text(encoding="utf-8"),
                      flags=re.M)


def test_every_readme_command_is_an_entry_point_that_runs():
    """The README's commands, as a reader copies them, are rows of docs/commands.md, which
    ``test_entry_points_run`` runs end to end. (The headline results table, made by ``make
    results``, names the commands that measured its figures: tests/test_results_page.py.)"""
    rows = {" ".join(command.split()) for _, command in entry_points()}
    readme = re.sub(r"<!-- headline results.*?<!-- end of headline results -->", "",
                    (REPO / "README.md").read_text(encoding="utf-8"), flags=re.S)
    _, commands = instrumented_script(readme)
    assert len(commands) >= 10, commands
    missing = [c for c in commands.values() if " ".join(c.split()) not in rows]
    assert not missing, "README commands that docs/commands.md does not run:\n" + "\n".join(missing)


def write_readme_inputs(work: Path) -> None:
    """Text, pairs, a sentencepiece model, test hypotheses and a tiny released-style BERT."""
    import sentencepiece as spm
    import torch
    import transformers
    from helpers import TINY_WORDPIECE_VOCAB, write_lines, write_wordpiece_vocab

    rng = random.Random(0)

    def sentences(n):
        return [" ".join(rng.choices(WORDS, k=rng.randint(6, 14))) for _ in range(n)]

    write_lines(work / "train.spm", sentences(300))
    write_lines(work / "valid.spm", sentences(40))
    for split, n in (("train", 64), ("valid", 16), ("test", 8)):
        write_lines(work / f"{split}.src", sentences(n))
        write_lines(work / f"{split}.tgt", [" ".join(s.split()[:3]) for s in sentences(n)])
    write_lines(work / "test.hyp", sentences(8))
    write_lines(work / "train.json", [json.dumps({"src": s, "tgt": s.split()[:3]})
                                      for s in sentences(4)])
    spm.SentencePieceTrainer.train(input=str(work / "train.spm"), model_prefix=str(work / "spm"),
                                   vocab_size=30, minloglevel=2)
    config = transformers.BertConfig(
        vocab_size=len(TINY_WORDPIECE_VOCAB), hidden_size=32, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=64, max_position_embeddings=64)
    torch.manual_seed(0)
    torch.save(transformers.BertForMaskedLM(config).state_dict(),
               work / "unilm2-base-uncased.bin")
    (work / "unilm2-base-uncased-config.json").write_text(config.to_json_string())
    write_wordpiece_vocab(work / "unilm2-base-uncased-vocab.txt")
    write_benchmark_releases(work)


def write_benchmark_releases(work: Path) -> None:
    """Tiny inputs in the release formats that scripts/prepare_data.py reads: nqg's files and
    doclist, SQuAD JSON, CNN/DailyMail .story files, XSum summary files and id split."""
    from helpers import write_lines

    for folder in ("nqg", "stories", "bbc-summary-data"):
        (work / folder).mkdir()
    write_lines(work / "nqg" / "src-dev.txt", ["the cat -lrb- tabby -rrb- sat .", "a dog ran ."])
    write_lines(work / "nqg" / "tgt-dev.txt", ["what sat ?", "what ran ?"])
    write_lines(work / "nqg" / "doclist-dev.txt", ["Cats"])
    qas = [{"id": "q1", "question": "What sat?", "answers": [{"text": "the cat"}]},
           {"id": "q2", "question": "Where?", "answers": [], "is_impossible": True}]
    (work / "squad.json").write_text(json.dumps({"version": "2.0", "data": [
        {"title": "Cats", "paragraphs": [{"context": "the cat sat .", "qas": qas}]}]}))
    write_lines(work / "stories" / "a.story", ["The cat sat on the mat", "", "@highlight", "",
                                               "Cat sat", "", "@highlight", "", "On a mat"])
    write_lines(work / "bbc-summary-data" / "1.summary",
                ["[SN]URL[SN]", "u", "[SN]FIRST-SENTENCE[SN]", "A cat sat.",
                 "[SN]RESTBODY[SN]", "The cat sat on the mat.", "It was happy."])
    (work / "xsum_split.json").write_text(json.dumps({"train": ["1"], "validation": ["1"],
                                                      "test": ["1"]}))


def write_rte(work: Path, env: Dict[str, str]) -> None:
    """data-bin/rte for the classification row: sentences binarized with the pre-training
    dictionary, labels with their own (fairseq's sentence_prediction layout)."""
    from helpers import write_lines

    rng = random.Random(1)
    for split, n in (("train", 32), ("valid", 8)):
        write_lines(work / f"rte.{split}.input0",
                    [" ".join(rng.choices(WORDS, k=8)) for _ in range(n)])
        write_lines(work / f"rte.{split}.label", [rng.choice(["yes", "no"]) for _ in range(n)])
    for part, extra in (("input0", ["--srcdict", "data-bin/lm/dict.txt"]), ("label", [])):
        subprocess.run(["fairseq-preprocess", "--only-source", *extra, "--trainpref",
                        f"rte.train.{part}", "--validpref", f"rte.valid.{part}", "--destdir",
                        f"data-bin/rte/{part}", "--workers", "1"], cwd=work, env=env,
                       check=True, capture_output=True)


def write_squad(work: Path) -> None:
    """squad/ for the extractive QA rows: the pre-training dict.txt and tiny SQuAD v2.0 files."""
    import shutil

    (work / "squad").mkdir(exist_ok=True)
    shutil.copy(work / "data-bin" / "lm" / "dict.txt", work / "squad" / "dict.txt")
    write_squad_splits(work / "squad")


def write_squad_splits(folder: Path) -> None:
    """Tiny SQuAD v2.0 train.json and valid.json in ``folder`` (contexts of the rows' words,
    each question answered by a span of its context or not)."""
    rng = random.Random(2)
    for split, n in (("train", 24), ("valid", 6)):
        paragraphs = []
        for p in range(n):
            context = " ".join(rng.choices(WORDS, k=30))
            start = context.index(" ", rng.randrange(len(context) // 2)) + 1
            text = " ".join(context[start:].split()[:2])
            paragraphs.append({"context": context, "qas": [
                {"id": f"{split}{p}a", "question": "where " + " ".join(rng.choices(WORDS, k=4)),
                 "answers": [{"text": text, "answer_start": start}], "is_impossible": False},
                {"id": f"{split}{p}b", "question": "who " + " ".join(rng.choices(WORDS, k=4)),
                 "answers": [], "is_impossible": True}]})
        (folder / f"{split}.json").write_text(json.dumps(
            {"version": "v2.0", "data": [{"title": "words", "paragraphs": paragraphs}]}))


def test_entry_points_run(tmp_path):
    """Every row of the entry-point table runs as written, in the table's order (each row uses
    what the rows above it wrote), with fewer updates."""
    pytest.importorskip("transformers")
    rows = entry_points()
    assert [name for name, _ in rows][:3] == ["demo", "binarize text", "binarize pairs"]
    for name in ("scripts", "fairseq_unilmv2", "examples"):
        (tmp_path / name).symlink_to(REPO / name)
    write_readme_inputs(tmp_path)
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1",
               PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    failures = []
    for name, command in rows:
        if name in COVERED_ELSEWHERE:
            continue
        if name.startswith("classify"):
            write_rte(tmp_path, env)
        if name.startswith("extractive QA"):
            write_squad(tmp_path)
        for documented, fewer in FEWER_UPDATES:
            command = command.replace(documented, fewer)
        proc = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, text=True,
                              capture_output=True, timeout=600,
                              input="the cat sat on the mat\na dog ran in the park\n")
        if proc.returncode != 0:
            failures.append(f"{name}: exit status {proc.returncode}\n  $ {command}\n"
                            + (proc.stdout + proc.stderr)[-1500:])
    assert not failures, "\n\n".join(failures)
