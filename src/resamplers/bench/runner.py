"""``resamplers bench``: parameters, MACs, latency and peak memory of registered operators.

Latencies are medians over repeated runs after warm-up.  Comparisons against a baseline
formulation interleave the two candidates run by run, so machine noise hits both alike,
and are reported as ratios.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor, nn
from torch.utils._pytree import tree_flatten, tree_unflatten

from .._checks import did_you_mean
from ..base import Operator
from ..complexity import count_macs, count_parameters
from ..registry import BLOCKS, DOWNSAMPLERS, PAIRS, POOLS, UPSAMPLERS, Registry
from .baselines import BASELINES, Baseline
from .core_cases import CORE_CASES, CORE_KIND
from .memory import peak_extra_bytes, steady_state_malloc
from .roofline import MachineLimits, Work, measure_limits, module_work
from .timing import machine_info, time_interleaved

__all__ = ["BenchConfig", "OpResult", "BaselineResult", "BenchReport", "resolve_ops", "run_bench"]

REGISTRIES: dict[str, Registry] = {
    registry.kind: registry for registry in (UPSAMPLERS, DOWNSAMPLERS, PAIRS, POOLS, BLOCKS)
}


def build_operator(kind: str, name: str, channels: int, scale_factor: int) -> nn.Module:
    """Build a registered operator at ``channels`` (and ``scale_factor`` where it takes one).

    A pair's forward is its round trip ``up(*down(x))``; kind ``core`` is the reassembly
    core alone (:mod:`.core_cases`).
    """
    if kind == CORE_KIND:
        return CORE_CASES[name](channels, scale_factor)
    registry = REGISTRIES[kind]
    kwargs: dict[str, object] = {"channels": channels}
    if "scale_factor" in registry.entry(name).accepted_keywords():
        kwargs["scale_factor"] = scale_factor
    return registry.create(name, **kwargs)


@dataclass(frozen=True)
class BenchConfig:
    batch: int = 1
    channels: int = 256
    height: int = 64
    width: int = 64
    scale_factor: int = 2
    repeats: int = 10
    warmup: int = 2
    dtype: str = "float32"
    seed: int = 0
    # Measure the machine's bandwidth and FLOP rate and report each row's roofline bound.
    roofline: bool = True


@dataclass
class OpResult:
    op: str
    params: int
    macs: int
    input_shape: list[int]
    output_shape: list[int]
    forward_ms: float
    train_ms: float
    peak_mib: float | None
    # Roofline lower bounds (None without measured limits); see bench.roofline.
    forward_bound_ms: float | None = None
    train_bound_ms: float | None = None


@dataclass
class BaselineResult:
    op: str
    baseline: str
    ours_forward_ms: float
    ours_train_ms: float
    baseline_forward_ms: float
    baseline_train_ms: float
    forward_speedup: float
    train_speedup: float
    ours_peak_mib: float | None
    baseline_peak_mib: float | None
    max_abs_diff: float


@dataclass
class BenchReport:
    config: BenchConfig
    machine: dict[str, object]
    limits: MachineLimits | None = None
    ops: list[OpResult] = field(default_factory=list)
    baselines: list[BaselineResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def resolve_ops(names: Sequence[str] | None) -> list[str]:
    """Qualified names (``kind:name``) for ``names``; a bare name matches every kind.

    Without names: the reassembly core, then every upsampler, downsampler, guided pair,
    pool and block.  Unguided pairs are left out of the default set: they time the same
    upsampler again.
    """
    every = [f"{CORE_KIND}:{name}" for name in CORE_CASES]
    every += [f"{kind}:{name}" for kind, reg in REGISTRIES.items() for name in reg.names()]
    if not names:
        return [q for q in every if not _is_unguided_pair(q)]
    resolved: list[str] = []
    for name in names:
        if ":" in name:
            kind, bare = name.split(":", 1)
            if kind == CORE_KIND:
                if bare not in CORE_CASES:
                    raise ValueError(
                        f"argument `--op`: unknown core case {bare!r}{did_you_mean(bare, list(CORE_CASES))} "
                        f"Expected one of {sorted(CORE_CASES)}"
                    )
            elif kind not in REGISTRIES:
                raise ValueError(
                    f"argument `--op`: unknown kind {kind!r}; expected one of {sorted([CORE_KIND, *REGISTRIES])}"
                )
            else:
                REGISTRIES[kind].entry(bare)  # raises with close matches
            matches = [name]
        else:
            matches = [q for q in every if q.split(":", 1)[1] == name]
            # A bare upsampler name means the upsampler, not also its unguided pair.
            matches = [q for q in matches if not _is_unguided_pair(q)] or matches
            if not matches:
                bare_names = sorted({q.split(":", 1)[1] for q in every})
                raise ValueError(
                    f"argument `--op`: unknown operator {name!r}{did_you_mean(name, bare_names)} "
                    f"Registered: {', '.join(every)}"
                )
        resolved.extend(m for m in matches if m not in resolved)
    return resolved


def _is_unguided_pair(qualified: str) -> bool:
    kind, name = qualified.split(":", 1)
    if kind != PAIRS.kind:
        return False
    return "upsampler" in PAIRS.entry(name).defaults


def example_input(module: Operator | nn.Module, config: BenchConfig, generator: torch.Generator) -> tuple:
    """``forward``'s arguments at the bench size, as the operator's contract states them
    (one map for most operators, ``d`` and ``encoder`` for feature-guided upsamplers, a
    list of branch maps for multi-resolution blocks)."""
    shapes = module.input_shapes(config.batch, config.height, config.width)
    maps = [torch.randn(*shape, generator=generator) for shape in shapes]
    return (maps,) if module.list_input else tuple(maps)


def _workloads(forward: Callable, inputs: tuple, module: nn.Module, grad: list[Tensor]):
    """Inference and forward+backward closures of ``forward(*inputs)``."""

    def infer() -> None:
        with torch.no_grad():
            forward(*inputs)

    def train() -> None:
        flat, spec = tree_flatten(inputs)
        leaves_with_grad = [t.detach().requires_grad_() for t in flat]
        torch.autograd.backward(tree_flatten(forward(*tree_unflatten(leaves_with_grad, spec)))[0], grad)
        module.zero_grad(set_to_none=True)

    return infer, train


def _mib(n: int | None) -> float | None:
    return None if n is None else n / 2**20


def _work(
    module: nn.Module, inputs: list[Tensor], outputs: list[Tensor], macs: int, config: BenchConfig, *, backward: bool
) -> Work:
    """Bytes and FLOPs of one row: exact for the core cases, compulsory traffic otherwise."""
    itemsize = inputs[0].element_size()
    if isinstance(module, tuple(CORE_CASES.values())):
        return module.work(itemsize, config.height, config.width, config.batch, backward=backward)
    shapes = [tuple(t.shape) for t in inputs], [tuple(t.shape) for t in outputs]
    return module_work(*shapes, count_parameters(module), macs, itemsize, backward=backward)


@dataclass
class _Case:
    """One row's operator, inputs and workloads (built the same way for both passes)."""

    module: nn.Module
    inputs: tuple
    flat: list[Tensor]
    outputs: list[Tensor]
    infer: Callable[[], None]
    train: Callable[[], None]
    grad: list[Tensor]


def _build_case(qualified: str, config: BenchConfig, dtype: torch.dtype) -> _Case:
    kind, name = qualified.split(":", 1)
    torch.manual_seed(config.seed)
    # Eval mode: BatchNorm after a global pool (SK attention) cannot train on a batch
    # of 1, and stochastic ops time their deterministic form; gradients still flow.
    module = build_operator(kind, name, config.channels, config.scale_factor).to(dtype).eval()
    g = torch.Generator().manual_seed(config.seed)
    flat, spec = tree_flatten(example_input(module, config, g))
    x = tree_unflatten([t.to(dtype) for t in flat], spec)
    with torch.no_grad():
        outs = tree_flatten(module(*x))[0]
    grad = [torch.randn(o.shape, generator=g).to(dtype) for o in outs]
    infer, train = _workloads(module, x, module, grad)
    return _Case(module, x, flat, outs, infer, train, grad)


def _baseline_workloads(case: _Case, baseline: Baseline):
    """The baseline formulation's inference and forward+backward closures on the case's inputs."""
    return _workloads(lambda *t: baseline.run(case.module, *t), case.inputs, case.module, case.grad)


def _peaks(ops: Sequence[str], config: BenchConfig, dtype: torch.dtype) -> dict[str, tuple[float | None, ...]]:
    """Each row's peak extra MiB of forward+backward (and its baseline's), measured before
    any timing: the timed calls leave glibc's heap fragmented, which would add the
    re-touched pages of small blocks to a later peak."""
    peaks: dict[str, tuple[float | None, ...]] = {}
    for qualified in ops:
        case = _build_case(qualified, config, dtype)
        baseline = BASELINES.get(qualified)
        # First calls allocate once for good (thread pools, kernel caches): not the row's.
        case.train()
        if baseline is not None:
            _baseline_workloads(case, baseline)[1]()
        ours = _mib(peak_extra_bytes(case.train))
        peaks[qualified] = (
            (ours,) if baseline is None else (ours, _mib(peak_extra_bytes(_baseline_workloads(case, baseline)[1])))
        )
    return peaks


def run_bench(
    ops: Iterable[str],
    config: BenchConfig,
    progress: Callable[[str], None] | None = None,
) -> BenchReport:
    """Benchmark each qualified operator name in ``ops`` at ``config``."""
    ops = list(ops)
    dtype = getattr(torch, config.dtype)
    report = BenchReport(config=config, machine=machine_info())
    if progress:
        progress("peak memory")
    peaks = _peaks(ops, config, dtype)
    # From here on, freed blocks are reused as in a training process (no page faults timed).
    steady_state_malloc()
    if config.roofline:
        if progress:
            progress("machine limits")
        report.limits = measure_limits(dtype)
    for qualified in ops:
        if progress:
            progress(qualified)
        case = _build_case(qualified, config, dtype)
        module, x, flat, outs, infer, train = case.module, case.inputs, case.flat, case.outputs, case.infer, case.train
        forward_ms, train_ms = time_interleaved([infer, train], config.repeats, config.warmup)
        macs = count_macs(module, *x)
        limits = report.limits
        report.ops.append(
            OpResult(
                op=qualified,
                params=count_parameters(module),
                macs=macs,
                input_shape=list(flat[0].shape),
                output_shape=list(outs[0].shape),  # the first (highest-resolution) output of a list
                forward_ms=forward_ms,
                train_ms=train_ms,
                peak_mib=peaks[qualified][0],
                forward_bound_ms=None
                if limits is None
                else _work(module, flat, outs, macs, config, backward=False).bound_ms(limits),
                train_bound_ms=None
                if limits is None
                else _work(module, flat, outs, macs, config, backward=True).bound_ms(limits),
            )
        )
        baseline = BASELINES.get(qualified)
        if baseline is None:
            continue
        with torch.no_grad():
            diff = (baseline.run(module, *x) - outs[0]).abs().max().item()
        b_infer, b_train = _baseline_workloads(case, baseline)
        ours_f, base_f, ours_t, base_t = time_interleaved(
            [infer, b_infer, train, b_train], config.repeats, config.warmup
        )
        report.baselines.append(
            BaselineResult(
                op=qualified,
                baseline=baseline.description,
                ours_forward_ms=ours_f,
                ours_train_ms=ours_t,
                baseline_forward_ms=base_f,
                baseline_train_ms=base_t,
                forward_speedup=base_f / ours_f,
                train_speedup=base_t / ours_t,
                ours_peak_mib=peaks[qualified][0],
                baseline_peak_mib=peaks[qualified][1],
                max_abs_diff=diff,
            )
        )
    return report
