"""The comparison report: ``report.md`` and a self-contained ``report.html`` with plots.

Built only from the files in the results folder (``compare.json``, every run's
``result.json``, ``per_image.json``, ``curve.json``, ``log.jsonl`` and ``visuals.npz``,
the task's reference rows, and ``costs.json`` of the cost phase), so the report of a
sharded comparison is the same whichever process writes it.
"""

from __future__ import annotations

import base64
import html
import json
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..console import markdown_table, print_table
from ..storage import read_json
from .costs import COSTS_FILE
from .scores import collect, reference_tables, run_dir, score_tables
from .stats import BEST, SHORT_VERDICTS, PairedDifference, paired_difference, verdict_of, verdicts
from .tasks import get_task
from .tasks.base import Metric, Task

__all__ = ["collect", "write_report", "TERMINAL_WIDTH"]

TERMINAL_WIDTH = 100  # the terminal tables fit in this many columns
BASELINE = "bilinear"  # the fixed baseline every operator is also compared with
COST_KEYS = ("train_ms_per_step", "latency_ms")


def _mean_std(values: list[float]) -> tuple[float, float | None]:
    values = [v for v in values if v is not None]
    if not values:
        return (float("nan"), None)
    return (statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None)


@dataclass(frozen=True)
class CostFigure:
    """A timing in milliseconds: the median of the cost phase with its quartiles, or (no
    cost phase yet) the mean of what the runs measured while training."""

    median: float | None
    q1: float | None = None
    q3: float | None = None
    unreliable: bool = False
    during_training: bool = False

    def text(self, spread: bool = True) -> str:
        if self.median is None:
            return "n/a"
        mark = " †" if self.unreliable else (" *" if self.during_training else "")
        if spread and self.q1 is not None and self.q3 is not None:
            return f"{self.median:,.0f} [{self.q1:,.0f}-{self.q3:,.0f}]{mark}"
        return f"{self.median:,.0f}{mark}"


def _cost_figures(op: str, runs: list[dict[str, Any]], costs: dict[str, Any] | None) -> dict[str, CostFigure]:
    figures = {}
    for key in COST_KEYS:
        measured = (costs or {}).get("ops", {}).get(op, {}).get(key)
        if measured is not None:
            figures[key] = CostFigure(
                measured["median_ms"], measured["q1_ms"], measured["q3_ms"], measured["unreliable"]
            )
        else:
            mean = _mean_std([r["costs"].get(key) for r in runs])[0]
            figures[key] = CostFigure(None if mean != mean else mean, during_training=True)
    return figures


def _summaries(
    task: Task, spec: dict[str, Any], records: list[dict[str, Any]], costs: dict[str, Any] | None
) -> list[dict[str, Any]]:
    by_op: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        if "failed" not in record:
            by_op.setdefault(record["op"], []).append(record)
    rows = []
    for op in spec["ops"]:
        runs = by_op.get(op, [])
        if not runs:
            continue
        row: dict[str, Any] = {"op": op, "seeds": len(runs), "metrics": {}, "costs": {}}
        for subset in task.subsets:
            for metric in task.metrics:
                values = [r["metrics"].get(subset, {}).get(metric.name) for r in runs]
                row["metrics"][(subset, metric.name)] = _mean_std([v for v in values if v is not None])
        for key in ("params", "macs", "model_params"):
            row["costs"][key] = _mean_std([r["costs"].get(key) for r in runs])[0]
        row["timings"] = _cost_figures(op, runs, costs)
        rows.append(row)
    return rows


def _fmt(mean: float, std: float | None, digits: int) -> str:
    if mean != mean:  # NaN: no value (e.g. no thin image)
        return "n/a"
    return f"{mean:.{digits}f}" if std is None else f"{mean:.{digits}f} ± {std:.{digits}f}"


def _primary(task: Task) -> Metric:
    return next(m for m in task.metrics if m.name == task.primary)


def _best(task: Task, rows: list[dict[str, Any]], key: tuple[str, str]) -> float | None:
    metric = next(m for m in task.metrics if m.name == key[1])
    values = [r["metrics"][key][0] for r in rows if r["metrics"][key][0] == r["metrics"][key][0]]
    if not values:
        return None
    return max(values) if metric.higher_is_better else min(values)


def _reference_label(ref: dict[str, Any]) -> str:
    return ref.get("label", ref["name"])


def _footnotes(references: list[dict[str, Any]]) -> list[str]:
    return [f"[{i}] {ref['name']}" for i, ref in enumerate(references, start=1)]


def _table(
    task: Task, rows: list[dict[str, Any]], references: list[dict[str, Any]]
) -> tuple[list[str], list[list[str]]]:
    headers = ["operator", "seeds"]
    keys = [(subset, m) for subset in task.subsets for m in task.metrics]
    headers += [m.label if subset == "overall" else f"{m.label} ({subset})" for subset, m in keys]
    headers += ["op params", "op MMACs", "model params", "train ms/step [IQR]", "latency ms [IQR]"]
    body = []
    for row in rows:
        cells = [f"`{row['op']}`", str(row["seeds"])]
        for subset, m in keys:
            mean, std = row["metrics"][(subset, m.name)]
            text = _fmt(mean, std, m.digits)
            best = _best(task, rows, (subset, m.name))
            cells.append(f"**{text}**" if best is not None and mean == best and len(rows) > 1 else text)
        c = row["costs"]
        cells += [f"{c['params']:,.0f}", f"{c['macs'] / 1e6:,.1f}", f"{c['model_params']:,.0f}"]
        cells += [row["timings"][key].text() for key in COST_KEYS]
        body.append(cells)
    for i, ref in enumerate(references, start=1):
        cells = [f"*{_reference_label(ref)}* [{i}]", "-"]
        for subset, m in keys:
            value = ref["metrics"].get(subset, {}).get(m.name)
            cells.append("n/a" if value is None else f"{value:.{m.digits}f}")
        cells += ["-"] * 5
        body.append(cells)
    return headers, body


def _terminal_table(
    task: Task, rows: list[dict[str, Any]], references: list[dict[str, Any]]
) -> tuple[list[str], list[list[str]]]:
    """The few columns that fit :data:`TERMINAL_WIDTH`: the primary metric per subset and the timings."""
    metric = _primary(task)
    headers = ["operator", "seeds", *(metric.label if s == "overall" else f"{metric.label} {s}" for s in task.subsets)]
    headers += ["train ms", "latency ms"]
    body = []
    for row in rows:
        cells = [row["op"], str(row["seeds"])]
        cells += [_fmt(*row["metrics"][(s, metric.name)], metric.digits) for s in task.subsets]
        cells += [row["timings"][key].text(spread=False) for key in COST_KEYS]
        body.append(cells)
    for i, ref in enumerate(references, start=1):
        values = [ref["metrics"].get(s, {}).get(metric.name) for s in task.subsets]
        cells = [
            f"{_reference_label(ref)} [{i}]",
            "-",
            *("n/a" if v is None else f"{v:.{metric.digits}f}" for v in values),
        ]
        body.append([*cells, "-", "-"])
    return headers, body


PAIRED_TEXT = (
    "Differences of the primary metric on the same test images, operator minus the best one (and minus "
    "bilinear), with 95% intervals from a bootstrap that resamples the test images (shared by all "
    "operators) and each operator's seeds; 'wins' is the share of images on which the row beats the "
    "best. 'Worse than the best' means the interval excludes zero; the rank interval is the central 95% "
    "of the ranks over the bootstrap replicates. Reference rows (one deterministic 'seed') are compared "
    "with the best operator the same way."
)


@dataclass(frozen=True)
class PairedRow:
    name: str
    reference: bool
    seeds: int
    images: int
    mean: float
    vs_best: PairedDifference | None
    vs_baseline: PairedDifference | None
    verdict: str
    rank: str


def _paired_rows(task: Task, tables: dict[str, np.ndarray], refs: dict[str, np.ndarray]) -> list[PairedRow]:
    metric = _primary(task)
    baseline = BASELINE if BASELINE in tables else None
    ops = verdicts(tables, higher_is_better=metric.higher_is_better, baseline=baseline)
    rows = [
        PairedRow(
            v.name,
            False,
            v.seeds,
            v.images,
            v.mean,
            v.vs_best,
            v.vs_baseline,
            v.verdict,
            f"{v.rank} [{v.rank_low}-{v.rank_high}]",
        )
        for v in ops
    ]
    best = tables[ops[0].name]
    for label, table in refs.items():
        vs_best = paired_difference(table, best, higher_is_better=metric.higher_is_better)
        vs_baseline = (
            None
            if baseline is None
            else paired_difference(table, tables[baseline], higher_is_better=metric.higher_is_better)
        )
        rows.append(
            PairedRow(
                label,
                True,
                1,
                table.shape[1],
                float(table.mean()),
                vs_best,
                vs_baseline,
                verdict_of(vs_best, metric.higher_is_better),
                "-",
            )
        )
    return rows


def _seed_caveat(rows: list[PairedRow]) -> str:
    """A warning when some operator has one seed: its interval then holds the test images'
    variation only, not training noise."""
    single = [r.name for r in rows if not r.reference and r.seeds == 1]
    if not single:
        return ""
    return (
        f" With one seed ({len(single)} of {sum(not r.reference for r in rows)} operators), an interval covers the "
        "choice of test images only, not the variation between training runs (only more seeds measure it): add "
        "seeds (`--seeds`, `--time-budget`) before trusting a ranking of close operators."
    )


def _interval_text(d: PairedDifference | None, digits: int, compact: bool = False) -> str:
    if d is None:
        return "-"
    if compact:
        return f"{d.mean:+.{digits}f} [{d.low:.{digits}f},{d.high:.{digits}f}]"
    return f"{d.mean:+.{digits}f} [{d.low:+.{digits}f}, {d.high:+.{digits}f}]"


def _paired_table(task: Task, rows: list[PairedRow], compact: bool = False) -> tuple[list[str], list[list[str]]]:
    metric = _primary(task)
    baseline = any(r.vs_baseline is not None for r in rows)
    if compact:  # the terminal: no win share (the report has it), so that 100 columns suffice
        headers = ["operator", "n", metric.label, "vs best [95%]", *(["vs bilinear [95%]"] if baseline else [])]
        headers += ["verdict", "rank"]
    else:
        headers = ["operator", "seeds x images", metric.label, "vs best (95% CI)", "wins vs best"]
        headers += [f"vs {BASELINE} (95% CI)"] if baseline else []
        headers += ["verdict", "rank"]
    body = []
    for r in rows:
        name = (f"*{r.name}*" if r.reference else f"`{r.name}`") if not compact else r.name
        cells = [name, f"{r.seeds}x{r.images}" if compact else f"{r.seeds} x {r.images}", f"{r.mean:.{metric.digits}f}"]
        cells.append(_interval_text(r.vs_best, metric.digits, compact))
        if not compact:
            cells.append("-" if r.vs_best is None else f"{100 * r.vs_best.win_fraction:.0f}%")
        if baseline:
            cells.append(_interval_text(r.vs_baseline, metric.digits, compact))
        cells += [SHORT_VERDICTS[r.verdict] if compact else r.verdict, r.rank]
        body.append(cells)
    return headers, body


def _failures(records: list[dict[str, Any]]) -> list[str]:
    """One line per failed run: the operator, the seed and why."""
    return [f"`{r['op']}` seed {r['seed']}: {r['failed']}" for r in records if "failed" in r]


def _html_table(headers: list[str], body: list[list[str]]) -> str:
    def cell(text: str) -> str:
        text = html.escape(text)
        if text.startswith("**"):
            return f"<b>{text.strip('*')}</b>"
        if text.startswith("`"):
            return f"<code>{text.strip('`')}</code>"
        if text.startswith("*"):
            head, _, tail = text[1:].partition("*")
            return f"<i>{head}</i>{tail}"
        return text

    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    rows = "".join("<tr>" + "".join(f"<td>{cell(c)}</td>" for c in r) + "</tr>" for r in body)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plot_quality_cost(task: Task, rows: list[dict[str, Any]], references, path: Path) -> None:
    plt = _pyplot()
    metric = _primary(task)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key in zip(axes, ("macs", "latency_ms")):
        for row in rows:
            y, std = row["metrics"][("overall", metric.name)]
            if key == "macs":
                x, xerr = row["costs"]["macs"] / 1e6, None
            else:
                figure = row["timings"]["latency_ms"]
                if figure.median is None:
                    continue
                x = figure.median
                xerr = None if figure.q1 is None else [[x - figure.q1], [figure.q3 - x]]
            ax.errorbar(x, y, xerr=xerr, yerr=std or 0, fmt="o", capsize=3)
            ax.annotate(row["op"], (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        for ref in references:
            value = ref["metrics"].get("overall", {}).get(metric.name)
            if value is not None:
                ax.axhline(value, color="gray", linestyle="--", linewidth=1)
                ax.annotate(_reference_label(ref), (ax.get_xlim()[0], value), fontsize=7, color="gray", va="bottom")
        if key == "macs":  # zero for selection-only operators (nearest, max unpooling)
            ax.set_xscale("symlog", linthresh=1.0)
            ax.set_xlim(left=0)
            ax.set_xlabel("operator MMACs (all stages, eval resolution)")
        else:
            ax.set_xlabel("whole-model inference latency, ms (cost phase median, IQR bars)")
        ax.set_ylabel(f"{metric.label} ({'higher' if metric.higher_is_better else 'lower'} is better)")
        ax.grid(alpha=0.3)
    fig.suptitle(f"{task.title}: quality against cost")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_forest(task: Task, rows: list[PairedRow], path: Path) -> bool:
    """Each row's paired difference to the best with its 95% interval, best at the top."""
    shown = [r for r in rows if r.vs_best is not None]
    if not shown:
        return False
    plt = _pyplot()
    metric = _primary(task)
    colours = {
        "worse than the best": "tab:red",
        "not separable from the best": "tab:blue",
        "better than the best": "tab:green",
    }
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(shown) + 1.4))
    for y, r in enumerate(reversed(shown)):
        d = r.vs_best
        assert d is not None
        ax.errorbar(
            d.mean,
            y,
            xerr=[[d.mean - d.low], [d.high - d.mean]],
            fmt="s" if r.reference else "o",
            color=colours.get(r.verdict, "black"),
            capsize=3,
        )
    ax.set_yticks(range(len(shown)), [f"{r.name} (reference)" if r.reference else r.name for r in reversed(shown)])
    ax.axvline(0.0, color="black", linewidth=1)
    best = next(r.name for r in rows if r.verdict == BEST)
    ax.set_xlabel(f"{metric.label} minus {best}'s, paired over test images (95% interval)")
    ax.grid(alpha=0.3, axis="x")
    ax.set_title("Paired difference to the best operator (red: worse, blue: not separable, green: better)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _log_records(path: Path) -> list[dict[str, Any]]:
    """The readable lines of a training log (a line torn by a killed write is left out)."""
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def _mean_curve(curves: list[dict[int, float]]) -> tuple[list[int], list[float]]:
    steps = sorted(set.intersection(*(set(c) for c in curves)))
    return steps, [statistics.fmean(c[s] for c in curves) for s in steps]


def _plot_loss_curves(out: Path, task: Task, spec: dict[str, Any], path: Path) -> bool:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    plotted = False
    for op in spec["ops"]:
        curves = []
        for log in sorted((out / "runs" / task.name / op).glob("seed-*/log.jsonl")):
            records = _log_records(log)
            if records:
                curves.append({r["step"]: r["loss"] for r in records})
        if curves:
            ax.plot(*_mean_curve(curves), label=op)
            plotted = True
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (mean over seeds)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    if plotted:
        ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return plotted


def _plot_learning_curves(out: Path, task: Task, spec: dict[str, Any], path: Path) -> int:
    """The primary metric on the validation images against steps; returns how many
    validation images the curves rest on (0: no curve, nothing plotted)."""
    metric = _primary(task)
    series, images = {}, 0
    for op in spec["ops"]:
        curves = []
        for folder in sorted((out / "runs" / task.name / op).glob("seed-*")):
            result, curve = folder / "result.json", folder / "curve.json"
            if result.is_file() and curve.is_file():
                curves.append({int(e["step"]): float(e[metric.name]) for e in read_json(curve)})
                images = max(images, int(read_json(result).get("validation_images", 0)))
        if curves and any(curves):
            series[op] = _mean_curve(curves)
    if not series or not images:
        return 0
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for op, (steps, values) in series.items():
        ax.plot(steps, values, marker="o", markersize=3, label=op)
    ax.set_xlabel("step")
    ax.set_ylabel(f"validation {metric.label} (mean over seeds)")
    ax.set_title(f"{images} validation composites of training foregrounds (not the test set)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return images


def _plot_visual_sheet(out: Path, task: Task, spec: dict[str, Any], path: Path) -> bool:
    plt = _pyplot()
    visuals = {}
    for op in spec["ops"]:
        file = run_dir(out, task.name, op, 0) / "visuals.npz"
        if file.is_file():
            with np.load(file, allow_pickle=False) as data:
                visuals[op] = {k: data[k] for k in data.files}
    if not visuals:
        return False
    first = next(iter(visuals.values()))
    columns = len(first["output"])
    labels = ["input", "ground truth", *visuals]
    fig, axes = plt.subplots(len(labels), columns, figsize=(max(4.5, 1.9 * columns), 1.9 * len(labels)), squeeze=False)
    for r, label in enumerate(labels):
        for c in range(columns):
            ax = axes[r][c]
            if label == "input":
                picture = first["input"][c]
            elif label == "ground truth":
                picture = first["target"][c]
            else:
                picture = visuals[label]["output"][c]
            ax.imshow(picture, cmap="gray" if picture.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
    fig.suptitle("Same test crops, every operator\n(seed 0, zoomed on boundaries)", fontsize=9)
    # Keep half an inch at the top for the two-line title, whatever the figure's height.
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / fig.get_figheight()))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _embed(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def _wall_minutes(records: list[dict[str, Any]]) -> float | None:
    """From the first run's start to the last run's end (runs of parallel shards overlap)."""
    spans = []
    for r in records:
        if r.get("finished") and "seconds" in r:
            end = datetime.fromisoformat(r["finished"]).timestamp()
            spans.append((end - float(r["seconds"]), end))
    if not spans:
        return None
    return (max(e for _, e in spans) - min(s for s, _ in spans)) / 60.0


def _cost_text(costs: dict[str, Any] | None) -> str:
    if costs is None:
        return (
            "Timings (marked *) were measured by the runs while training, with whatever else ran on the machine; "
            "they are not comparable between operators (the cost phase has not run: it runs once every run has "
            "finished)."
        )
    load = costs.get("load_average", {})
    machine = costs.get("machine", {})
    return (
        f"Timings: measured after training in a separate phase ({costs['measured']}, {machine.get('threads', '?')} "
        f"threads), the operators interleaved round by round, {costs['rounds']} rounds each; median with its "
        f"interquartile range. † marks a spread above {costs['unreliable_spread']:.0%} of the median: other load "
        f"was present, do not trust that figure. Load average before/after: {_number(load.get('before'))}/{_number(load.get('after'))}."
    )


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _precision_text(spec: dict[str, Any]) -> str:
    amp = spec.get("amp", "none")
    layout = "channels-last" if spec.get("channels_last") else "contiguous (NCHW)"
    return f"trained in {'float32' if amp == 'none' else f'{amp} autocast'}, {layout} layout"


def _budget_text(spec: dict[str, Any]) -> str:
    budget = spec.get("time_budget")
    if not budget:
        return ""
    added = ", ".join(f"`{op}` +{n}" for op, n in budget["added"].items()) or "none"
    return f"Time budget {budget['minutes']:g} min: ended because {budget['ended']}; seeds added: {added}."


def write_report(out: Path, log: Callable[[str], None] = print) -> Path:
    """Write ``report.md``, ``report.html`` and the plots into ``out``; print the tables."""
    out = Path(out)
    spec, records, references = collect(out)
    task = get_task(spec["task"])
    costs_path = out / COSTS_FILE
    costs = read_json(costs_path) if costs_path.is_file() else None
    rows = _summaries(task, spec, records, costs)
    failures = _failures(records)
    headers, body = _table(task, rows, references)
    expected = len(spec["ops"]) * spec["seeds"] + sum((spec.get("time_budget") or {}).get("added", {}).values())
    machines = {json.dumps(r.get("machine", {}), sort_keys=True) for r in records}
    machine_text = "; ".join(
        f"{m.get('processor', '?')}, {m.get('cpus', '?')} CPUs, {m.get('threads', '?')} threads, torch {m.get('torch', '?')}"
        for m in map(json.loads, machines)
    )
    preset = records[0]["preset"] if records else task.presets()[spec["preset"]].to_dict()
    summed = sum(r.get("seconds", 0.0) for r in records)
    wall = _wall_minutes(records)
    finished = max((r.get("finished", "") for r in records), default="")
    tables, names = score_tables(out, task, records)
    paired_rows = _paired_rows(task, tables, reference_tables(task, references, names)) if tables else []
    pictures = {}
    if rows:
        _plot_quality_cost(task, rows, references, out / "quality_vs_cost.png")
        pictures["Quality against cost"] = out / "quality_vs_cost.png"
        if _plot_forest(task, paired_rows, out / "paired_differences.png"):
            pictures["Paired differences to the best"] = out / "paired_differences.png"
        if _plot_learning_curves(out, task, spec, out / "learning_curves.png"):
            pictures["Learning curves (validation)"] = out / "learning_curves.png"
        if _plot_loss_curves(out, task, spec, out / "loss_curves.png"):
            pictures["Training loss"] = out / "loss_curves.png"
        if _plot_visual_sheet(out, task, spec, out / "visual_sheet.png"):
            pictures["Visual sheet"] = out / "visual_sheet.png"
    intro = [
        f"# {task.title}",
        f"Preset `{spec['preset']}` ({preset['description']}); {_precision_text(spec)}; data: {spec['data']}; "
        f"{len(records)} of {expected} runs finished (last {finished or 'n/a'})"
        f"{f', {len(failures)} of them failed' if failures else ''}; wall time "
        f"{'n/a' if wall is None else f'{wall:.1f} min'} (runs summed: {summed / 60:.1f} min).",
        _budget_text(spec),
        f"Machine: {machine_text or 'n/a'}.",
        f"Metrics: {task.describe_metrics()}; mean ± std over seeds. Costs: the operator's parameters and "
        "multiply-accumulates summed over every stage it occupies at the evaluation resolution, time per training "
        "step, and whole-model inference latency at the evaluation resolution (batch 1).",
        _cost_text(costs),
        "; ".join(_footnotes(references)),
    ]
    intro = [line for line in intro if line]
    md = "\n\n".join(intro) + "\n\n" + markdown_table(headers, body) + "\n"
    paired = _paired_table(task, paired_rows) if paired_rows else None
    caveat = _seed_caveat(paired_rows)
    if paired is not None:
        md += "\n## Paired comparison\n\n" + PAIRED_TEXT + caveat + "\n\n" + markdown_table(*paired) + "\n"
    if failures:
        md += "\n## Failed runs\n\nThese runs stopped without a result; they count in no mean above.\n\n"
        md += "".join(f"- {line}\n" for line in failures)
    for title, picture in pictures.items():
        md += f"\n## {title}\n\n![{title}]({picture.name})\n"
    (out / "report.md").write_text(md)
    style = (
        "body{font-family:sans-serif;max-width:1200px;margin:2em auto;line-height:1.4}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}"
        "td:first-child,th:first-child{text-align:left}img{max-width:100%}"
    )
    body_html = "".join(f"<p>{html.escape(line.replace('`', ''))}</p>" for line in intro[1:])
    body_html += _html_table(headers, body)
    if paired is not None:
        body_html += f"<h2>Paired comparison</h2><p>{html.escape(PAIRED_TEXT + caveat)}</p>" + _html_table(*paired)
    if failures:
        body_html += "<h2>Failed runs</h2><p>These runs stopped without a result; they count in no mean above.</p><ul>"
        body_html += "".join(f"<li>{html.escape(line.replace('`', ''))}</li>" for line in failures) + "</ul>"
    for title, picture in pictures.items():
        body_html += f"<h2>{html.escape(title)}</h2><img alt='{html.escape(title)}' src='{_embed(picture)}'>"
    (out / "report.html").write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(task.title)}</title>"
        f"<style>{style}</style></head><body><h1>{html.escape(task.title)}</h1>{body_html}</body></html>"
    )
    print_table(
        f"{task.name} / {spec['preset']}: {len(records)} of {expected} runs",
        *_terminal_table(task, rows, references),
        width=TERMINAL_WIDTH,
    )
    if paired_rows:
        print_table(
            "paired against the best over the same test images (95% bootstrap intervals)",
            *_paired_table(task, paired_rows, compact=True),
            width=TERMINAL_WIDTH,
        )
        log("verdict: best; ~best = not separable from the best; worse/better = the interval excludes 0")
        if caveat:
            log(caveat.strip())
    for line in _footnotes(references):
        log(line)
    if costs is not None and any(f.unreliable for r in rows for f in r["timings"].values()):
        log("† timing spread above the threshold: other load was present while measuring")
    log(f"report: {out / 'report.html'} and {out / 'report.md'}")
    return out / "report.md"
