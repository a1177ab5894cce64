"""Image matting: the task where IndexNet and A2U were born and the upsampler matters most.

Each run trains the IndexNet matting network (``resamplers.models``) with the operator's
pair at every stage, on composites of the real fetched data (or the synthetic source),
then evaluates SAD, MSE, Grad and Conn on the unknown region of the fixed test set,
overall and on its thin-structure subset (images with procedural strands or defocus).
The closed-form matting of Levin et al. on the same images is the reference row.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from ...metrics import matting_metrics
from ...models import load_matting_model, predict_alpha
from ...storage import read_json, write_json_atomic
from ...training.config import TrainConfig
from ...training.matting import initial_network, matting_batch_loss, train, training_dataset
from ..measure import latency_ms, operator_costs
from .base import Metric, Preset, RunSpec, StepParts, Task, checkpoint_step, register_task, train_in_segments

__all__ = ["MattingTask"]

VISUAL_CROPS = 4
CROP = 64


def _mean_metrics(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]} if rows else {}


# Every operator trains the same network from scratch; the official head's one-channel
# ReLU6 can die on the whole unknown region before the network has learned anything,
# which leaves the matte at the trimap-only answer whatever the operator (see
# resamplers.models.matting).  The leaky head has the same parameters and cannot.
HEAD_ACTIVATION = "leaky_relu"

QUICK_STEPS = 600
# Five of the nine default operators fit about 15 minutes on a 2-core CPU at a budget where
# every one has learned (SAD at most half the trivial matte's); `standard` runs all nine.
QUICK_OPS = ("bilinear", "carafe", "dysample", "fade", "indexnet_m2o")


@register_task
class MattingTask(Task):
    name = "matting"
    title = "Image matting (IndexNet matting network, Composition-1k-style test set)"
    metrics = (
        Metric("sad", "SAD", False, 2),
        Metric("mse", "MSE", False, 4),
        Metric("grad", "Grad", False, 2),
        Metric("conn", "Conn", False, 2),
    )
    primary = "sad"
    default_ops = ("indexnet_m2o", "a2u", "carafe", "bilinear", "nearest", "maxunpool", "dysample", "fade", "sapa")
    subsets = ("overall", "thin")

    def presets(self) -> dict[str, Preset]:
        # Every preset starts the parts that the operators' networks share from the same
        # initial values (those of the bilinear network), trains on the same samples in the
        # same order and scores the same images: only the operator differs.
        shared = {"eval_size": 256, "head_activation": HEAD_ACTIVATION, "init_like": "bilinear"}
        return {
            "smoke": Preset(
                "smoke",
                steps=2,
                crop=64,
                width=0.25,
                batch_size=2,
                seeds=1,
                eval_images=2,
                lr=1e-3,
                minutes=0.5,
                description="two steps at width 0.25: checks the pipeline end to end",
                extra={**shared, "eval_size": 64, "curve_points": 2, "validation_images": 2},
            ),
            "quick": Preset(
                "quick",
                steps=QUICK_STEPS,
                crop=96,
                width=0.5,
                batch_size=8,
                seeds=1,
                eval_images=48,
                lr=2e-3,
                minutes=15.0,
                description=f"{QUICK_STEPS} steps of 8 crops of 96 at width 0.5 (leaky head, cosine), "
                "48 test images of 256; five operators (all nine in `standard`)",
                extra={**shared, "curve_points": 4, "validation_images": 16},
                ops=QUICK_OPS,
            ),
            "standard": Preset(
                "standard",
                steps=2400,
                crop=96,
                width=0.5,
                batch_size=8,
                seeds=1,
                eval_images=0,
                lr=2e-3,
                minutes=100.0,
                description="2400 steps of 8 crops of 96 at width 0.5 (leaky head, cosine), all 175 test images of 256",
                extra={**shared, "curve_points": 6, "validation_images": 24},
            ),
            "full": Preset(
                "full",
                steps=20000,
                crop=256,
                width=1.0,
                batch_size=16,
                seeds=3,
                eval_images=0,
                lr=1e-3,
                minutes=6000.0,
                description="20k steps of 16 crops of 256 at full width (leaky head), 3 seeds, all test images",
                extra={**shared, "curve_points": 10, "validation_images": 48},
            ),
        }

    def _test_set_dir(self, spec: RunSpec):
        return spec.shared_dir / f"testset-{spec.data}-{spec.preset.extra['eval_size']}"

    def prepare(self, spec: RunSpec) -> None:
        from ...data import open_source, write_test_set

        source = open_source(spec.data, spec.data_root)
        size = spec.preset.extra["eval_size"]
        write_test_set(source, self._test_set_dir(spec), size=size, seed=0)
        if spec.preset.extra.get("validation_images", 0):
            write_test_set(
                source, self._validation_dir(spec), size=size, seed=1, backgrounds_per_foreground=1, part="train"
            )

    def _test_images(self, spec: RunSpec):
        from ...data import MattingTestSet

        test = MattingTestSet(self._test_set_dir(spec))
        n = len(test) if spec.preset.eval_images <= 0 else min(len(test), spec.preset.eval_images)
        # An evenly spread subset keeps every foreground family represented.
        indices = np.linspace(0, len(test) - 1, n).round().astype(int).tolist() if n < len(test) else list(range(n))
        return [test[i] for i in indices]

    def _validation_dir(self, spec: RunSpec):
        return spec.shared_dir / f"validation-{spec.data}-{spec.preset.extra['eval_size']}"

    def _validation_images(self, spec: RunSpec) -> list[dict]:
        """Composites of training foregrounds on training backgrounds (never the test set),
        one per foreground, an evenly spread subset of ``validation_images`` of them."""
        from ...data import MattingTestSet

        wanted = int(spec.preset.extra.get("validation_images", 0))
        if wanted <= 0:
            return []
        validation = MattingTestSet(self._validation_dir(spec))
        n = min(len(validation), wanted)
        indices = np.linspace(0, len(validation) - 1, n).round().astype(int).tolist()
        return [validation[i] for i in indices]

    def _score(self, model, samples: list[dict]) -> tuple[list[dict[str, Any]], list[torch.Tensor]]:
        rows, predictions = [], []
        for sample in samples:
            pred = predict_alpha(model, sample["image"], sample["trimap"])
            row = matting_metrics(pred.numpy(), sample["alpha"][0].numpy(), sample["trimap"].numpy())
            rows.append({"name": sample["name"], "thin": bool(sample["thin"]), **row})
            predictions.append(pred)
        return rows, predictions

    def _train_config(self, spec: RunSpec) -> TrainConfig:
        p = spec.preset
        return TrainConfig.from_dict(
            dict(
                out=str(spec.run_dir),
                pair=spec.op,
                init_like=p.extra.get("init_like"),
                width=p.width,
                data=spec.data,
                data_root=spec.data_root,
                crop=p.crop,
                workers=0,
                lr=p.lr,
                batch_size=p.batch_size,
                steps=p.steps,
                head_activation=p.extra["head_activation"],
                checkpoint_every=max(1, p.steps // 5),
                log_every=max(1, p.steps // 50),
                seed=spec.seed,
                **p.precision(),
            )
        )

    def run(self, spec: RunSpec, progress: bool) -> dict[str, Any]:
        """Train in segments that end at the learning-curve points, scoring the validation
        images at each (``curve.json``), then score the test set."""
        config = self._train_config(spec)
        start = time.perf_counter()
        validation = self._validation_images(spec)

        def score() -> dict[str, float]:
            rows, _ = self._score(load_matting_model(spec.run_dir), validation)
            return _mean_metrics([{m.name: r[m.name] for m in self.metrics} for r in rows])

        result = train_in_segments(
            spec,
            lambda resume, steps: train(config, resume=resume, progress=progress, stop_after=steps),
            score if validation else None,
        )
        model = load_matting_model(spec.run_dir)
        samples = self._test_images(spec)
        per_image, predictions = self._score(model, samples)
        metrics = {
            "overall": _mean_metrics([{m.name: r[m.name] for m in self.metrics} for r in per_image]),
            "thin": _mean_metrics([{m.name: r[m.name] for m in self.metrics} for r in per_image if r["thin"]]),
        }
        write_json_atomic(spec.run_dir / "per_image.json", per_image)
        size = spec.preset.extra["eval_size"]
        example = torch.zeros(1, 4, size, size)
        costs = operator_costs(model, example)
        costs["latency_ms"] = latency_ms(model, example, repeats=3)
        costs["train_ms_per_step"] = (
            1000.0 * result.seconds_per_step if result is not None and result.seconds_per_step else None
        )
        self._save_visuals(spec, samples, predictions)
        return {
            "metrics": metrics,
            "costs": costs,
            "train": {"steps": checkpoint_step(spec.run_dir), "wall_s": time.perf_counter() - start},
            "validation_images": len(validation),
        }

    def step_parts(self, spec: RunSpec, trained: bool = True) -> StepParts:
        from torch.utils.data import default_collate

        size = spec.preset.extra["eval_size"]
        config = self._train_config(spec)
        if trained:
            model = load_matting_model(spec.run_dir)
        else:
            torch.manual_seed(spec.seed)
            model = initial_network(config.model)
        dataset = training_dataset(config)
        batch = default_collate([dataset[i] for i in range(spec.preset.batch_size)])
        example = torch.rand(1, 4, size, size, generator=torch.Generator().manual_seed(0))
        return StepParts(model, matting_batch_loss, batch, example)

    def _visual_windows(self, samples: list[dict]) -> list[tuple[int, int, int]]:
        """Fixed crops for the visual sheet: the thin images first, each centred on its busiest unknown band."""
        order = sorted(range(len(samples)), key=lambda i: (not samples[i]["thin"], i))[:VISUAL_CROPS]
        windows = []
        for i in order:
            alpha = samples[i]["alpha"][0].numpy()
            soft = ((alpha > 0.02) & (alpha < 0.98)).astype(np.float32)
            h, w = soft.shape
            c = min(CROP, h, w)
            # the window with the most fractional-alpha pixels (integral image, stride 8)
            integral = np.pad(soft.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
            best, at = -1.0, (0, 0)
            for y in range(0, h - c + 1, 8):
                for x in range(0, w - c + 1, 8):
                    total = integral[y + c, x + c] - integral[y, x + c] - integral[y + c, x] + integral[y, x]
                    if total > best:
                        best, at = total, (y, x)
            windows.append((i, *at))
        return windows

    def _save_visuals(self, spec: RunSpec, samples: list[dict], predictions: list[torch.Tensor]) -> None:
        windows = self._visual_windows(samples)
        c = min(CROP, *samples[0]["alpha"].shape[-2:])

        def crop(t: torch.Tensor, y: int, x: int) -> np.ndarray:
            return t[..., y : y + c, x : x + c].numpy()

        image = [crop(samples[i]["image"], y, x).transpose(1, 2, 0) for i, y, x in windows]
        target = [crop(samples[i]["alpha"][0], y, x) for i, y, x in windows]
        output = [crop(predictions[i], y, x) for i, y, x in windows]
        to8 = lambda arrays: (np.stack(arrays) * 255).round().clip(0, 255).astype(np.uint8)  # noqa: E731
        np.savez_compressed(
            spec.run_dir / "visuals.npz",
            input=to8(image),
            target=to8(target),
            output=to8(output),
            names=np.array([samples[i]["name"] for i, _, _ in windows]),
        )

    def reference_rows(self, spec: RunSpec) -> list[dict[str, Any]]:
        """Closed-form matting, and the trivial matte (0 in the unknown band) that a network
        which has not yet learned from the image outputs (its training loss plateaus there)."""
        cache = spec.shared_dir / f"references-{spec.data}-{spec.preset.name}.json"
        if cache.is_file():
            cached = read_json(cache)
            if all("per_image" in r for r in cached):  # older caches lack the per-image scores
                return cached
        samples = self._test_images(spec)
        names = [m.name for m in self.metrics]

        def row(label: str, name: str, predict) -> dict[str, Any]:
            scored = [
                {
                    "name": s["name"],
                    "thin": bool(s["thin"]),
                    **matting_metrics(predict(s), s["alpha"][0].numpy(), s["trimap"].numpy()),
                }
                for s in samples
            ]
            return {
                "label": label,
                "name": name,
                "metrics": {
                    "overall": _mean_metrics([{k: r[k] for k in names} for r in scored]),
                    "thin": _mean_metrics([{k: r[k] for k in names} for r in scored if r["thin"]]),
                },
                "per_image": scored,
            }

        rows = [
            row(
                "trivial",
                "trivial: 0 in the unknown band (trimap only)",
                lambda s: (s["trimap"].numpy() == 255).astype(np.float64),
            )
        ]
        try:
            from ...metrics.closed_form import closed_form_alpha
        except ImportError:
            pass
        else:
            rows.append(
                row(
                    "closed-form",
                    "closed-form matting (Levin et al. 2008, pymatting)",
                    lambda s: closed_form_alpha(s["image"], s["trimap"]),
                )
            )
        write_json_atomic(cache, rows)
        return rows
