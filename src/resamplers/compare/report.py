"""The comparison report: ``report.md`` and a self-contained ``report.html`` with plots.

Built only from the files in the results folder (``compare.json``, every run's
``result.json``, ``log.jsonl`` and ``visuals.npz``, the task's reference rows), so the
report of a sharded comparison is the same whichever process writes it.
"""

from __future__ import annotations

import base64
import html
import json
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..console import markdown_table, print_table
from ..storage import read_json
from .stats import PairedDifference, verdicts
from .tasks import get_task
from .tasks.base import Task

__all__ = ["collect", "write_report"]


def collect(out: Path) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """The comparison spec, every finished run's record, and the reference rows."""
    out = Path(out)
    spec_path = out / "compare.json"
    if not spec_path.is_file():
        raise FileNotFoundError(f"argument `RESULTS_DIR`: {out} has no compare.json (not a results folder)")
    spec = read_json(spec_path)
    records = []
    for path in sorted((out / "runs" / spec["task"]).glob("*/seed-*/result.json")):
        try:
            records.append(read_json(path))
        except (OSError, ValueError) as error:
            raise ValueError(f"argument `RESULTS_DIR`: unreadable run result {path}: {error}") from error
    reference_path = out / "shared" / spec["task"] / "reference.json"
    references = read_json(reference_path) if reference_path.is_file() else []
    return spec, records, references


def _mean_std(values: list[float]) -> tuple[float, float | None]:
    values = [v for v in values if v is not None]
    if not values:
        return (float("nan"), None)
    return (statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None)


def _summaries(task: Task, spec: dict[str, Any], records: list[dict[str, Any]]) -> list[dict[str, Any]]:
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
        for key in ("params", "macs", "model_params", "train_ms_per_step", "latency_ms"):
            row["costs"][key] = _mean_std([r["costs"].get(key) for r in runs])[0]
        rows.append(row)
    return rows


def _fmt(mean: float, std: float | None, digits: int) -> str:
    if mean != mean:  # NaN: no value (e.g. no thin image)
        return "n/a"
    return f"{mean:.{digits}f}" if std is None else f"{mean:.{digits}f} ± {std:.{digits}f}"


def _best(task: Task, rows: list[dict[str, Any]], key: tuple[str, str]) -> float | None:
    metric = next(m for m in task.metrics if m.name == key[1])
    values = [r["metrics"][key][0] for r in rows if r["metrics"][key][0] == r["metrics"][key][0]]
    if not values:
        return None
    return max(values) if metric.higher_is_better else min(values)


def _table(
    task: Task, rows: list[dict[str, Any]], references: list[dict[str, Any]]
) -> tuple[list[str], list[list[str]]]:
    headers = ["operator", "seeds"]
    keys = [(subset, m) for subset in task.subsets for m in task.metrics]
    headers += [m.label if subset == "overall" else f"{m.label} ({subset})" for subset, m in keys]
    headers += ["op params", "op MMACs", "model params", "train ms/step", "latency ms"]
    body = []
    for row in rows:
        cells = [f"`{row['op']}`", str(row["seeds"])]
        for subset, m in keys:
            mean, std = row["metrics"][(subset, m.name)]
            text = _fmt(mean, std, m.digits)
            best = _best(task, rows, (subset, m.name))
            cells.append(f"**{text}**" if best is not None and mean == best and len(rows) > 1 else text)
        c = row["costs"]
        cells += [
            f"{c['params']:,.0f}",
            f"{c['macs'] / 1e6:,.1f}",
            f"{c['model_params']:,.0f}",
            "n/a" if c["train_ms_per_step"] != c["train_ms_per_step"] else f"{c['train_ms_per_step']:,.0f}",
            f"{c['latency_ms']:,.1f}",
        ]
        body.append(cells)
    for ref in references:
        cells = [f"*{ref['name']}*", "-"]
        for subset, m in keys:
            value = ref["metrics"].get(subset, {}).get(m.name)
            cells.append("n/a" if value is None else f"{value:.{m.digits}f}")
        cells += ["-"] * 5
        body.append(cells)
    return headers, body


PAIRED_TEXT = (
    "Differences of the primary metric on the same test images, operator minus the best one (and minus "
    "bilinear), with 95% intervals from a bootstrap that resamples the test images (shared by all "
    "operators) and each operator's seeds; 'wins' is the share of images on which the operator beats the "
    "best. 'Worse than the best' means the interval excludes zero; the rank interval is the central 95% "
    "of the ranks over the bootstrap replicates."
)
BASELINE = "bilinear"  # the fixed baseline every operator is also compared with


def _score_tables(out: Path, task: Task, records: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Per operator, its primary metric as ``seeds x images`` from the runs' ``per_image.json``
    (operators whose runs lack the file, or scored other images, are left out)."""
    by_op: dict[str, list[list[dict[str, Any]]]] = {}
    for record in sorted(records, key=lambda r: (r["op"], r["seed"])):
        path = out / "runs" / task.name / record["op"] / f"seed-{record['seed']}" / "per_image.json"
        if "failed" not in record and path.is_file():
            by_op.setdefault(record["op"], []).append(read_json(path))
    if not by_op:
        return {}
    names = [row["name"] for row in next(iter(by_op.values()))[0]]
    tables = {}
    for op, runs in by_op.items():
        if all([row["name"] for row in run] == names for run in runs):
            tables[op] = np.array([[row[task.primary] for row in run] for run in runs], dtype=np.float64)
    return tables


def _interval_text(d: PairedDifference | None, digits: int) -> str:
    if d is None:
        return "-"
    return f"{d.mean:+.{digits}f} [{d.low:+.{digits}f}, {d.high:+.{digits}f}]"


def _paired_table(task: Task, tables: dict[str, np.ndarray]) -> tuple[list[str], list[list[str]]]:
    metric = next(m for m in task.metrics if m.name == task.primary)
    baseline = BASELINE if BASELINE in tables else None
    rows = verdicts(tables, higher_is_better=metric.higher_is_better, baseline=baseline)
    headers = ["operator", "seeds x images", metric.label, "vs best (95% CI)", "wins vs best", "verdict", "rank"]
    if baseline:
        headers.insert(5, f"vs {baseline} (95% CI)")
    body = []
    for v in rows:
        cells = [
            f"`{v.name}`",
            f"{v.seeds} x {v.images}",
            f"{v.mean:.{metric.digits}f}",
            _interval_text(v.vs_best, metric.digits),
            "-" if v.vs_best is None else f"{100 * v.vs_best.win_fraction:.0f}%",
            v.verdict,
            f"{v.rank} [{v.rank_low}-{v.rank_high}]",
        ]
        if baseline:
            cells.insert(5, _interval_text(v.vs_baseline, metric.digits))
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
            return f"<i>{text.strip('*')}</i>"
        return text

    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    rows = "".join("<tr>" + "".join(f"<td>{cell(c)}</td>" for c in r) + "</tr>" for r in body)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _plot_quality_cost(task: Task, rows: list[dict[str, Any]], references, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = next(m for m in task.metrics if m.name == task.primary)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, (key, label, scale) in zip(
        axes,
        [
            ("macs", "operator MMACs (all stages, eval resolution)", 1e6),
            ("latency_ms", "whole-model inference latency (ms)", 1.0),
        ],
    ):
        for row in rows:
            x = row["costs"][key] / scale
            y, std = row["metrics"][("overall", metric.name)]
            ax.errorbar(x, y, yerr=std or 0, fmt="o", capsize=3)
            ax.annotate(row["op"], (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        for ref in references:
            value = ref["metrics"].get("overall", {}).get(metric.name)
            if value is not None:
                ax.axhline(value, color="gray", linestyle="--", linewidth=1)
                ax.annotate(ref["name"], (ax.get_xlim()[0], value), fontsize=7, color="gray", va="bottom")
        if key == "macs":  # zero for selection-only operators (nearest, max unpooling)
            ax.set_xscale("symlog", linthresh=1.0)
            ax.set_xlim(left=0)
        ax.set_xlabel(label)
        ax.set_ylabel(f"{metric.label} ({'higher' if metric.higher_is_better else 'lower'} is better)")
        ax.grid(alpha=0.3)
    fig.suptitle(f"{task.title}: quality against cost")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _log_records(path: Path) -> list[dict[str, Any]]:
    """The readable lines of a training log (a line torn by a killed write is left out)."""
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def _plot_loss_curves(out: Path, task: Task, spec: dict[str, Any], path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    plotted = False
    for op in spec["ops"]:
        curves = []
        for log in sorted((out / "runs" / task.name / op).glob("seed-*/log.jsonl")):
            records = _log_records(log)
            if records:
                curves.append({r["step"]: r["loss"] for r in records})
        if not curves:
            continue
        steps = sorted(set.intersection(*(set(c) for c in curves)))
        ax.plot(steps, [statistics.fmean(c[s] for c in curves) for s in steps], label=op)
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


def _plot_visual_sheet(out: Path, task: Task, spec: dict[str, Any], path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    visuals = {}
    for op in spec["ops"]:
        file = out / "runs" / task.name / op / "seed-0" / "visuals.npz"
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


def write_report(out: Path, log: Callable[[str], None] = print) -> Path:
    """Write ``report.md``, ``report.html`` and the plots into ``out``; print the table."""
    out = Path(out)
    spec, records, references = collect(out)
    task = get_task(spec["task"])
    rows = _summaries(task, spec, records)
    failures = _failures(records)
    headers, body = _table(task, rows, references)
    expected = len(spec["ops"]) * spec["seeds"]
    machines = {json.dumps(r.get("machine", {}), sort_keys=True) for r in records}
    machine_text = "; ".join(
        f"{m.get('processor', '?')}, {m.get('cpus', '?')} CPUs, {m.get('threads', '?')} threads, torch {m.get('torch', '?')}"
        for m in map(json.loads, machines)
    )
    preset = records[0]["preset"] if records else task.presets()[spec["preset"]].to_dict()
    wall = sum(r.get("seconds", 0.0) for r in records)
    finished = max((r.get("finished", "") for r in records), default="")
    pictures = {}
    if rows:
        _plot_quality_cost(task, rows, references, out / "quality_vs_cost.png")
        pictures["Quality against cost"] = out / "quality_vs_cost.png"
        if _plot_loss_curves(out, task, spec, out / "loss_curves.png"):
            pictures["Training loss"] = out / "loss_curves.png"
        if _plot_visual_sheet(out, task, spec, out / "visual_sheet.png"):
            pictures["Visual sheet"] = out / "visual_sheet.png"
    intro = [
        f"# {task.title}",
        "",
        f"Preset `{spec['preset']}` ({preset['description']}); data: {spec['data']}; "
        f"{len(records)} of {expected} runs finished (last {finished or 'n/a'})"
        f"{f', {len(failures)} of them failed' if failures else ''}; summed run time {wall / 60:.1f} min.",
        f"Machine: {machine_text or 'n/a'}.",
        f"Metrics: {task.describe_metrics()}; mean ± std over seeds. Costs: the operator's parameters and "
        "multiply-accumulates summed over every stage it occupies at the evaluation resolution, training time per "
        "step, and whole-model inference latency at the evaluation resolution (batch 1).",
        "",
    ]
    md = "\n".join(intro) + markdown_table(headers, body) + "\n"
    tables = _score_tables(out, task, records)
    paired = _paired_table(task, tables) if tables else None
    if paired is not None:
        md += "\n## Paired comparison\n\n" + PAIRED_TEXT + "\n\n" + markdown_table(*paired) + "\n"
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
    body_html = "".join(f"<p>{html.escape(line)}</p>" for line in intro[2:] if line)
    body_html += _html_table(headers, body)
    if paired is not None:
        body_html += f"<h2>Paired comparison</h2><p>{html.escape(PAIRED_TEXT)}</p>" + _html_table(*paired)
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
        headers,
        [[c.replace("**", "").replace("`", "").replace("*", "") for c in r] for r in body],
    )
    if paired is not None:
        print_table(
            "paired against the best (95% bootstrap intervals)",
            paired[0],
            [[c.replace("`", "") for c in r] for r in paired[1]],
        )
    log(f"report: {out / 'report.html'} and {out / 'report.md'}")
    return out / "report.md"
