"""Make the results page (docs/results.md) and the README's headline table from
benchmarks/results/*.json alone.

Each figure of the page names the JSON file that holds it; ``benchmarks/record.py`` wrote that
file with the command, the machine, the date and the git commit of the run (``make bench``,
``make studies``). A figure whose file is missing, or whose run failed, reads "not measured",
with the command that measures it; nothing on the page is typed by hand.

    python benchmarks/make_results.py            # what `make results` runs
    python benchmarks/make_results.py --check    # exit 1 if the page or the README is stale
"""
import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

REPO = Path(__file__).resolve().parents[1]
NOT_MEASURED = "not measured"
README_START = "<!-- headline results: made by `make results`, do not edit -->"
README_END = "<!-- end of headline results -->"
RECORD = "python benchmarks/record.py --out benchmarks/results/"


@dataclass
class Figure:
    what: str                       # what the figure is
    source: str                     # its JSON file under benchmarks/results/
    value: Callable[[Dict], str]    # the figure, from the record's "result"
    headline: bool = False          # also in the README's headline table


@dataclass
class Source:
    """How a JSON file of benchmarks/results/ is made."""
    name: str
    command: str                    # the measurement, as a user runs it
    result_file: Optional[str] = None  # where the command writes its results (studies)

    def record_command(self) -> str:
        result = f" --result-file {self.result_file}" if self.result_file else ""
        return f"{RECORD}{self.name}{result} -- {self.command}"


SOURCES = {s.name: s for s in [
    Source("rouge_155_convs2s.json", "python benchmarks/rouge_155.py --predictions "
           "xsum-model-predictions --system convs2s"),
    Source("rouge_155_ptgen.json", "python benchmarks/rouge_155.py --predictions "
           "xsum-model-predictions --system ptgen"),
    Source("rouge_155_topic-convs2s.json", "python benchmarks/rouge_155.py --predictions "
           "xsum-model-predictions --system topic-convs2s"),
    Source("pretrain_step.json", "python benchmarks/pretrain_step.py"),
    Source("decode.json", "python benchmarks/decode.py"),
    Source("data_throughput.json", "python benchmarks/data_throughput.py"),
    Source("epoch_stall.json", "python benchmarks/epoch_stall.py"),
    Source("squad_step.json", "python benchmarks/squad_step.py"),
    Source("gpu.json", "bash benchmarks/gpu.sh"),
    Source("demo.json", "python scripts/quickstart.py --compare-scratch --out demo_out",
           "demo_out/summary.json"),
    Source("ablation.json", "python scripts/ablation.py --out ablation_out",
           "ablation_out/results.json"),
    Source("squad_study.json", "python scripts/squad_study.py --out squad_study --minilm",
           "squad_study/results.json"),
]}


# ----------------------------------------------------------------------------- formatting
def rouge_difference(r: Dict) -> str:
    d, ours, perl = r["difference"], r["rouge_score"], r["rouge_155"]
    return (f"{d['rouge1']:+.2f} / {d['rouge2']:+.2f} / {d['rougeL']:+.2f} "
            f"(rouge-score {ours['rouge1']:.2f} / {ours['rouge2']:.2f} / {ours['rougeL']:.2f}, "
            f"ROUGE-1.5.5 {perl['rouge1']:.2f} / {perl['rouge2']:.2f} / {perl['rougeL']:.2f}; "
            f"{r['summaries']} summaries)")


def mean_sd(stat: Dict, sd_key: str = "std") -> str:
    if not stat:
        return "-"
    if stat.get("n", 1) > 1:
        return f"{stat['mean']:.2f} ± {stat[sd_key]:.2f}"
    return f"{stat['mean']:.2f}"


def ablation_row(row: str) -> Callable[[Dict], str]:
    def value(r: Dict) -> str:
        stats = r["table"][row]
        losses = ", ".join(f"{name.replace('_loss', '')} {mean_sd(s)}"
                           for name, s in stats.get("valid_loss", {}).items())
        parts = ([f"valid loss {losses} bits"] if losses else []) + [
            f"{task} {metric} {mean_sd(stats[task][metric])}"
            for task, metric in ablation_metrics(r)]
        seeds = r["config"]["seeds"]
        return "; ".join(parts) + f" (seeds {', '.join(map(str, seeds))})"
    return value


def ablation_metrics(r: Dict) -> List[Tuple[str, str]]:
    """(task, deciding column) of each downstream task of an ablation record."""
    return [(task, r["comparisons"][task]["metric"]) for task in r["config"]["tasks"]]


def squad_model(name: str) -> Callable[[Dict], str]:
    def value(r: Dict) -> str:
        stats = r["models"][name]
        forced, v2 = stats["HasAns_f1_forced"], stats["HasAns_f1"]
        return (f"HasAns F1 {mean_sd(v2, 'sd')} at threshold 0; best span (forced) "
                f"{mean_sd(forced, 'sd')} ({forced['min']:.2f}-{forced['max']:.2f}); "
                f"{forced['n']} seeds")
    return value


def squad_baseline(name: str) -> Callable[[Dict], str]:
    def value(r: Dict) -> str:
        scores = r["baselines"][name]
        return f"HasAns F1 {scores['HasAns_f1']:.2f}, overall F1 {scores['f1']:.2f}"
    return value


def demo_exact(system: str) -> Callable[[Dict], str]:
    def value(r: Dict) -> str:
        scores = r["scores"]
        exact, base = scores[system]["exact"], scores["baseline"]["exact"]
        ratio = f", {exact / base:.0f}x the baseline" if base and system != "baseline" else ""
        return f"{exact:.1f}% exact match on {r['data']['seq2seq_test_pairs']} test words{ratio}"
    return value


def gpu_ratio(backend: str, precision: str) -> Callable[[Dict], str]:
    def value(r: Dict) -> str:
        train = r["fairseq_train"]
        return (f"{train[f'ratio_{backend}_{precision}']:.2f} "
                f"({train[f'pmlm_{backend}_{precision}']:.2f} / "
                f"{train[f'masked_lm_{precision}']:.2f} updates/s)")
    return value


# ----------------------------------------------------------------------------- the figures
GROUPS: List[tuple] = [
    ("Fidelity to the authors' code",
     "How far this plugin's scorers are from the ones the published figures were computed "
     "with. The conversion of the released weights and s2s-ft's beam search are checked "
     "exactly by the test suite (`tests/test_convert_*.py`, `tests/test_s2s_ft_*.py`), not "
     "measured here. The ROUGE rows need `make rouge-perl` and the public XSum system outputs "
     "(`examples/summarization/README.md`).",
     [Figure("rouge-score (`score.py --cnndm`) minus ROUGE-1.5.5, R-1 / R-2 / R-L, XSum "
             "outputs of convs2s", "rouge_155_convs2s.json", rouge_difference, headline=True),
      Figure("the same, ptgen outputs", "rouge_155_ptgen.json", rouge_difference),
      Figure("the same, topic-convs2s outputs", "rouge_155_topic-convs2s.json",
             rouge_difference)]),
    ("Speed against fairseq",
     "Each figure is a ratio or a median taken side by side in one run, so that the load of "
     "the machine weighs on both systems; the hardware column gives the load average before "
     "and after.",
     [Figure("pre-training update, pmlm / fairseq's masked_lm (same layers, same 512 text "
             "tokens; target at most 1.35)", "pretrain_step.json",
             lambda r: (f"{r['ratio']:.2f} of medians ({r['pmlm']['median_s']:.2f} s / "
                        f"{r['masked_lm']['median_s']:.2f} s); {r['median_paired_ratio']:.2f} "
                        f"paired, {r['cpu_time_ratio']:.2f} of CPU times; "
                        f"{r['layers']} layers x {r['dim']}, batch {r['batch_size']}"),
             headline=True),
      Figure("pre-training update, pmlm --objective ae / masked_lm (the same input; target at "
             "most 1.05)", "pretrain_step.json",
             lambda r: (f"{r['ae_ratio']:.2f} of medians; {r['ae_median_paired_ratio']:.2f} "
                        f"paired, {r['ae_cpu_time_ratio']:.2f} of CPU times")),
      Figure("beam-5 decoding, incremental decoder / a full forward a step",
             "decode.json", lambda r: (f"{r['incremental_over_no_cache']:.1f}x; hypotheses "
                                       f"identical {r['identical_hypotheses_incremental_vs_no_cache']}"),
             headline=True),
      Figure("beam-5 decoding, UniLMv2 / fairseq `transformer` of the same width",
             "decode.json", lambda r: (f"{r['incremental_over_fairseq_transformer']:.2f} "
                                       f"({r['sentences_per_s']['incremental']:.2f} / "
                                       f"{r['sentences_per_s']['fairseq_transformer']:.2f} "
                                       "sentences/s)")),
      Figure("pmlm data pipeline: fairseq iterator examples/s, MB of net_input a batch",
             "data_throughput.json",
             lambda r: (f"{r['pmlm_iterator']:.0f} examples/s with {r['workers']} workers; "
                        f"{r['pmlm_net_input_bytes_per_batch'] / 1e6:.2f} MB a batch of "
                        f"{r['batch_size']}")),
      Figure("seq2seq data pipeline: the same", "data_throughput.json",
             lambda r: (f"{r['seq2seq_iterator']:.0f} examples/s with {r['workers']} workers; "
                        f"{r['seq2seq_net_input_bytes_per_batch'] / 1e6:.2f} MB a batch of "
                        f"{r['batch_size']}")),
      Figure("epoch starts: worst wall / train_wall of an epoch (a stall reads above 2)",
             "epoch_stall.json",
             lambda r: (f"{r['max_wall_over_train_wall']:.2f} (epoch {r['worst_epoch']} of "
                        f"{r['epochs']}, {r['workers']} workers); at most "
                        f"{r['max_outside_train_wall_s']:.1f} s outside train_wall after the "
                        "first epoch")),
      Figure("SQuAD fine-tuning step, squad_span / sentence_prediction (target at most 1.10)",
             "squad_step.json",
             lambda r: (f"{r['ratio_median']:.2f} ({r['ratio_min']:.2f}-{r['ratio_max']:.2f}); "
                        f"{r['layers']} layers x {r['dim']}, {r['batch_size']} windows of "
                        f"{r['seq_len']}")),
      Figure("on a GPU, fairseq-train updates/s, pmlm (dense attention) / masked_lm, bf16",
             "gpu.json", gpu_ratio("dense", "bf16"), headline=True),
      Figure("on a GPU, the same with flex attention, bf16", "gpu.json",
             gpu_ratio("flex", "bf16"))]),
    ("The studies",
     "Small-scale experiments on a CPU. They check that the stages learn and how they compare "
     "at one small size; they are not the paper's results (those are in the recipes, labelled "
     "reported).",
     [Figure("demo: pre-training valid AE / PAR loss against the unigram entropy (bits)",
             "demo.json",
             lambda r: (f"{r['pretraining']['ae_loss']:.2f} / {r['pretraining']['par_loss']:.2f}"
                        f" against {r['pretraining']['unigram_entropy']:.2f}")),
      Figure("demo: read the backwards word, fine-tuned from pre-training", "demo.json",
             demo_exact("finetune"), headline=True),
      Figure("demo: the same from random weights", "demo.json", demo_exact("scratch")),
      Figure("demo: baseline, the most frequent training answer", "demo.json",
             demo_exact("baseline")),
      Figure("demo: wall time (minutes)", "demo.json", lambda r: f"{r['minutes']:.1f}"),
      *[Figure(f"objective ablation: {row}", "ablation.json", ablation_row(row),
               headline=row == "ae+par")
        for row in ("ae", "ar", "par", "ae+ar", "ae+par", "scratch")],
      Figure("objective ablation: trivial baseline", "ablation.json",
             lambda r: "; ".join(f"{task} {metric} {r['baseline'][task][metric]:.2f}"
                                 for task, metric in ablation_metrics(r))),
      *[Figure(f"SQuAD study: {label}", "squad_study.json", squad_model(name),
               headline=name == "pretrained")
        for name, label in (("pretrained", "small model pre-trained with PMLM"),
                            ("scratch", "the same from random weights"),
                            ("minilm", "all-MiniLM-L6-v2, converted"))],
      *[Figure(f"SQuAD study: baseline, {name}", "squad_study.json", squad_baseline(name))
        for name in ("no answer", "first sentence")]]),
]


# ----------------------------------------------------------------------------- the page
def load(results: Path) -> Dict[str, Dict]:
    records = {}
    for path in sorted(results.glob("*.json")):
        records[path.name] = json.loads(path.read_text(encoding="utf-8"))
    return records


def hardware(record: Dict) -> str:
    machine, versions = record.get("machine", {}), record.get("versions", {})
    gpu = versions.get("gpu")
    text = f"{machine.get('cpu', '?')}, {machine.get('cores', '?')} cores"
    if gpu:
        text = f"{gpu}; {text}"
    if "load1_before" in machine:
        text += f", load {machine['load1_before']:.1f} -> {machine.get('load1_after', 0):.1f}"
    return text


def shown_command(command: str) -> str:
    """The recorded command, with the shared data folder as the repository sees it."""
    return re.sub(r"/\S*?/shared/data/", "../shared/data/", command)


def missing(records: Dict[str, Dict]) -> List[Source]:
    """The sources some figure needs that have no successful record."""
    needed = [f.source for _, _, figures in GROUPS for f in figures]
    return [SOURCES[name] for name in dict.fromkeys(needed)
            if records.get(name, {}).get("exit_status") != 0
            or records.get(name, {}).get("result") is None]


def cells(figure: Figure, records: Dict[str, Dict]) -> List[str]:
    """figure, value, command, hardware, date, commit."""
    source = SOURCES[figure.source]
    record = records.get(figure.source)
    if record is None or record.get("exit_status") != 0 or record.get("result") is None:
        why = "" if record is None else " (the recorded run failed)"
        return [figure.what, NOT_MEASURED + why, f"`{source.command}`", "-", "-", "-"]
    try:
        value = figure.value(record["result"])
    except (KeyError, TypeError, ZeroDivisionError):
        value = f"{NOT_MEASURED} (not in {figure.source})"
    return [figure.what, value, f"`{shown_command(record['command'])}`", hardware(record),
            record.get("date_utc", "?"), f"`{record.get('git_commit', '?')}`"]


def table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> List[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]]


def page(records: Dict[str, Dict]) -> str:
    lines = ["# Results", "",
             "Every figure measured in this repository, made by `make results` "
             "(`benchmarks/make_results.py`) from `benchmarks/results/*.json` alone: each file is "
             "what `benchmarks/record.py` kept of one run (the command, its output, the machine, "
             "the versions, the date and the git commit). A figure without its file reads "
             f"\"{NOT_MEASURED}\", with the command that measures it; `make bench` records the "
             "CPU benchmarks, `make studies` the studies. The paper's own figures are in the "
             "recipes under `examples/`, labelled reported.", ""]
    header = ["figure", "value", "command", "hardware", "date (UTC)", "commit"]
    for title, intro, figures in GROUPS:
        lines += [f"## {title}", "", intro, ""]
        lines += table([cells(f, records) for f in figures], header)
        lines.append("")
    absent = missing(records)
    if absent:
        lines += ["## Measuring what is missing", "",
                  "Each command below runs the measurement and records it; then `make results`.",
                  ""]
        lines += [f"    {source.record_command()}" for source in absent]
        lines.append("")
    return "\n".join(lines)


def headline(records: Dict[str, Dict]) -> str:
    rows = []
    for _, _, figures in GROUPS:
        for figure in figures:
            if figure.headline:
                what, value, command, machine, *_ = cells(figure, records)
                rows.append([what, value, command, machine])
    return "\n".join([README_START, *table(rows, ["claim", "figure", "command", "hardware"]),
                      README_END])


def with_headline(readme: str, block: str) -> str:
    start, end = readme.index(README_START), readme.index(README_END) + len(README_END)
    return readme[:start] + block + readme[end:]


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--page", type=Path, default=REPO / "docs" / "results.md")
    parser.add_argument("--readme", type=Path, default=REPO / "README.md")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if the page or the README's table differs")
    args = parser.parse_args(argv)
    records = load(args.results)
    made = {args.page: page(records) + "\n",
            args.readme: with_headline(args.readme.read_text(encoding="utf-8"), headline(records))}
    stale = [path for path, text in made.items()
             if not path.exists() or path.read_text(encoding="utf-8") != text]
    if args.check:
        for path in stale:
            print(f"{path} is not what `make results` makes from {args.results}", file=sys.stderr)
        return 1 if stale else 0
    for path, text in made.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    values = [cells(f, records)[1] for _, _, figures in GROUPS for f in figures]
    measured = sum(1 for v in values if not v.startswith(NOT_MEASURED))
    total = len(values)
    print(f"wrote {args.page} ({measured} of {total} figures measured) and the headline table "
          f"of {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
