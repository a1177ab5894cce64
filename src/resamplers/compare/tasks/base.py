"""What a comparison task provides.  Tasks are pluggable: a segmentation task joins by
subclassing :class:`Task` and calling :func:`register_task`; the runner and the report
never name a task."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ...registry import Registry

__all__ = ["Metric", "Preset", "RunSpec", "Task", "TASKS", "register_task", "get_task"]


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
        return asdict(self)

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
    data: str  # "real" or "synthetic"
    data_root: str | None


class Task(ABC):
    """A task on which resampler pairs are compared."""

    name: str
    title: str
    metrics: tuple[Metric, ...]
    primary: str  # the metric on the quality axis of the quality/cost plot
    default_ops: tuple[str, ...]
    subsets: tuple[str, ...] = ("overall",)

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

    def cost_probes(self, spec: RunSpec) -> dict[str, Callable[[], object]]:
        """Calls to time in the cost phase, built from the finished run's weights:
        ``latency_ms`` (inference at the evaluation resolution, batch 1) and
        ``train_ms_per_step`` (forward, backward and optimiser step on one training batch).
        A task without probes keeps the figures its runs measured while training."""
        return {}

    def reference_rows(self, spec: RunSpec) -> list[dict[str, Any]]:
        """Rows of non-learned references (e.g. closed-form matting), cached by the task."""
        return []

    def describe_metrics(self) -> str:
        return ", ".join(f"{m.label} ({'higher' if m.higher_is_better else 'lower'} is better)" for m in self.metrics)


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
