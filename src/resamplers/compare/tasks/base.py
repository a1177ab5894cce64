"""What a comparison task provides.  Tasks are pluggable: a segmentation task joins by
subclassing :class:`Task` and calling :func:`register_task`; the runner and the report
never name a task."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from ..._checks import check_choice
from ...registry import Registry

__all__ = [
    "Metric",
    "Preset",
    "RunSpec",
    "StepParts",
    "Task",
    "TASKS",
    "register_task",
    "get_task",
    "curve_points",
    "checkpoint_step",
    "train_in_segments",
]


@dataclass(frozen=True)
class Metric:
    """A quality measure: ``name`` in results, ``label`` in reports."""

    name: str
    label: str
    higher_is_better: bool
    digits: int = 3


@dataclass(frozen=True)
class Preset:
    """A budget: every run of a comparison uses the same one.

    ``minutes`` is the documented expected wall time of the preset's default operator set on
    a 2-core CPU (all seeds), measured when the preset was set.  ``ops`` is the preset's
    default operator set when it differs from the task's (a short budget may run fewer).
    """

    name: str
    steps: int
    crop: int
    width: float
    batch_size: int
    seeds: int
    eval_images: int
    lr: float
    minutes: float
    description: str
    extra: dict[str, Any] = field(default_factory=dict)
    ops: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """As JSON holds it (lists, not tuples), so that a record read back compares equal."""
        return {**asdict(self), "ops": list(self.ops)}

    def with_precision(self, amp: str = "none", channels_last: bool = False) -> Preset:
        """The budget trained under autocast ``amp`` and/or in channels-last layout.  Both are
        part of the budget (a run is kept only under the settings it was trained with); the
        defaults leave the preset as it is, so float32 runs keep matching their records."""
        from ..measure import AMP_DTYPES

        check_choice(amp, "amp", list(AMP_DTYPES))
        extra = {k: v for k, v in self.extra.items() if k not in ("amp", "channels_last")}
        if amp != "none":
            extra["amp"] = amp
        if channels_last:
            extra["channels_last"] = True
        return replace(self, extra=extra)

    def precision(self) -> dict[str, Any]:
        """The training loop's ``amp`` and ``channels_last`` settings of this budget."""
        return {"amp": self.extra.get("amp", "none"), "channels_last": bool(self.extra.get("channels_last", False))}

    def budget(self) -> dict[str, Any]:
        """What a run's result depends on: everything but the name, the documented time,
        the description and the default operator set."""
        return {k: v for k, v in self.to_dict().items() if k not in ("name", "minutes", "description", "ops")}


@dataclass(frozen=True)
class RunSpec:
    """One (task, operator, seed) run and where it lives."""

    task: str
    op: str
    seed: int
    preset: Preset
    run_dir: Path
    shared_dir: Path  # task-wide files (test set, reference rows) inside the results folder
    data: str  # "real", "synthetic" or "folder:PATH"
    data_root: str | None
    layout: str | None = None  # of folder data


@dataclass(frozen=True)
class StepParts:
    """What one training step and one inference call of a run's network need: the network,
    its batch loss (``loss(model, batch) -> (value, logs)``), a training batch and a
    batch-1 input at the evaluation resolution."""

    model: Any
    loss: Callable[[Any, dict[str, Any]], tuple[Any, Any]]
    batch: dict[str, Any]
    example: Any


class Task(ABC):
    """A task on which resampler pairs are compared."""

    name: str
    title: str
    metrics: tuple[Metric, ...]
    primary: str  # the metric on the quality axis of the quality/cost plot
    default_ops: tuple[str, ...]
    subsets: tuple[str, ...] = ("overall",)
    folder_layouts: tuple[str, ...] = ()  # layouts of user data sets (``--data folder:PATH --layout``)

    @abstractmethod
    def presets(self) -> dict[str, Preset]:
        """The task's presets by name (``smoke``, ``quick``, ``full``)."""

    @abstractmethod
    def prepare(self, spec: RunSpec) -> None:
        """Build what all runs share (e.g. the fixed test set) once; idempotent."""

    @abstractmethod
    def run(self, spec: RunSpec, progress: bool) -> dict[str, Any]:
        """Train (resumably, in ``spec.run_dir``), evaluate and measure; return the result record.

        The record holds ``metrics`` (``{subset: {metric: value}}``), ``costs`` (``params``,
        ``macs``, ``model_params``, ``train_ms_per_step``, ``latency_ms``) and ``train``.
        Visual crops go to ``spec.run_dir / "visuals.npz"``.
        """

    def step_parts(self, spec: RunSpec, trained: bool = True) -> StepParts | None:
        """The network of the run (its finished weights when ``trained``, else the initial
        network the run starts from), its loss, one training batch and an inference input;
        ``None`` for a task that has none to offer (the cost phase and ``resamplers
        profile`` then skip it)."""
        return None

    def cost_probes(self, spec: RunSpec) -> dict[str, Callable[[], object]]:
        """Calls to time in the cost phase, built from the finished run's weights:
        ``latency_ms`` (inference at the evaluation resolution, batch 1) and
        ``train_ms_per_step`` (forward, backward and optimiser step on one training batch).
        A task without :meth:`step_parts` keeps the figures its runs measured while training."""
        from ..measure import AMP_DTYPES, inference_probe, train_step_probe

        parts = self.step_parts(spec)
        if parts is None:
            return {}
        precision = spec.preset.precision()
        step = train_step_probe(
            parts.model,
            parts.loss,
            parts.batch,
            amp=AMP_DTYPES[precision["amp"]],
            channels_last=precision["channels_last"],
        )
        return {"latency_ms": inference_probe(parts.model, parts.example), "train_ms_per_step": step}

    def reference_rows(self, spec: RunSpec) -> list[dict[str, Any]]:
        """Rows of non-learned references (e.g. closed-form matting), cached by the task."""
        return []

    def describe_metrics(self) -> str:
        return ", ".join(f"{m.label} ({'higher' if m.higher_is_better else 'lower'} is better)" for m in self.metrics)


def curve_points(steps: int, points: int) -> list[int]:
    """``points`` steps spread evenly up to ``steps`` (the last is ``steps``)."""
    points = max(1, min(points, steps))
    return sorted({round(steps * k / points) for k in range(1, points + 1)})


def checkpoint_step(run_dir: Path) -> int:
    """The step of the newest checkpoint in a run directory (0 when there is none)."""
    from ...storage import latest_checkpoint, load_checkpoint

    directory = run_dir / "checkpoints"
    newest = latest_checkpoint(directory) if directory.is_dir() else None
    return 0 if newest is None else int(load_checkpoint(newest).get("step", 0))


def train_in_segments(
    spec: RunSpec,
    train_segment: Callable[[bool, int], Any],
    score: Callable[[], dict[str, float]] | None,
) -> Any:
    """Train ``spec``'s run to its preset's steps in segments that end at the learning-curve
    points (``curve_points`` of the preset's ``extra``), calling ``score()`` at each and
    appending ``{"step", **scores}`` to ``run_dir/curve.json`` (atomically, so a resumed run
    skips the points it has). ``train_segment(resume, steps)`` trains that many more steps
    and returns the loop's ``TrainResult``; returns the last one (``None`` when nothing was
    left to train).

    Raises:
        KeyboardInterrupt: a signal stopped training (the checkpoint is kept).
    """
    from ...storage import read_json, write_json_atomic

    curve_path = spec.run_dir / "curve.json"
    curve = read_json(curve_path) if curve_path.is_file() else []
    result = None
    for point in curve_points(spec.preset.steps, int(spec.preset.extra.get("curve_points", 1))):
        if any(entry["step"] == point for entry in curve):
            continue
        reached = checkpoint_step(spec.run_dir)
        if reached < point:
            result = train_segment(reached > 0, point - reached)
            if result.interrupted:
                raise KeyboardInterrupt(f"training of {spec.op} seed {spec.seed} interrupted at step {result.step}")
            reached = result.step
        if score is not None and reached == point:
            curve.append({"step": point, **score()})
            write_json_atomic(curve_path, curve)
    return result


# Tasks are classes registered by name; plug-ins may add their own (see resamplers.registry).
TASKS = Registry("task")

T = TypeVar("T", bound=type)


def register_task(cls: T) -> T:
    """Class decorator: register a :class:`Task` subclass under its ``name``."""
    TASKS.add(cls.name, cls)
    return cls


def get_task(name: str) -> Task:
    """A fresh instance of the task registered as ``name``."""
    return TASKS.entry(name, argument="--task").cls()
