"""Semantic segmentation: where most users put these operators.

Each run trains the segmentation network of :mod:`resamplers.models.segmentation`
(MobileNetV2 encoder whose down steps are the pair's, UPerNet-lite decoder whose every up
step is the pair's) with pixel-wise cross-entropy (class-weighted by the inverse square
root of each class's pixel frequency in the presets), on the built-in cut-and-paste composites
(:mod:`resamplers.data.segmentation`, real stamps on real photographs, or the synthetic
source), or on the user's data set (``--data folder:PATH --layout voc|ade|generic``).

Metrics on the test set (the built-in fixed set, or the folder's ``val`` split):

* ``miou``: mIoU as mmsegmentation computes it, one confusion matrix over the whole set;
* ``boundary_iou``: Boundary IoU (band of 2% of the image diagonal), where upsamplers differ most;
* ``acc``: pixel accuracy;

all in percent.

The table shows these whole-set figures. The paired statistics are about the whole-set
mIoU of the table: ``per_image.json`` holds each image's per-class intersections and unions
(``miou_parts``), and the bootstrap resamples images and recomputes the whole-set mIoU
from them (:class:`~resamplers.compare.stats.RatioScores`); each image's own mIoU and
Boundary IoU are there too, and give the share of images on which one operator beats
another. The reference row predicts background everywhere.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...data.segmentation import FORMAT as SEGMENTATION_FORMAT
from ...data.segmentation import IGNORE_INDEX
from ...metrics.segmentation import segmentation_metrics
from ...models.segmentation import SegmentationConfig, SegmentationNet, segmentation_inputs
from ...storage import latest_checkpoint, load_checkpoint, read_json, write_json_atomic
from ...training.loop import LoopConfig, TrainingTask, fit
from ...training.segmentation import (
    RandomCrops,
    class_pixel_counts,
    initial_segmentation_network,
    inverse_sqrt_frequency_weights,
    segmentation_batch_loss,
    weighted_segmentation_loss,
)
from ..measure import latency_ms, operator_costs
from .base import Metric, Preset, RunSpec, StepParts, Task, checkpoint_step, register_task, train_in_segments

__all__ = ["SegmentationTask", "predict_labels", "colour_labels"]

VISUAL_CROPS = 4
CROP = 64
# Class colours of the visual sheet (background dark grey; ignored pixels black).
PALETTE = np.array(
    [
        [60, 60, 60],
        [230, 25, 75],
        [60, 180, 75],
        [255, 225, 25],
        [0, 130, 200],
        [245, 130, 48],
        [145, 30, 180],
        [70, 240, 240],
        [240, 50, 230],
        [210, 245, 60],
        [250, 190, 212],
        [0, 128, 128],
    ],
    dtype=np.uint8,
)


def colour_labels(labels: np.ndarray) -> np.ndarray:
    """An ``H x W`` label map as uint8 RGB (classes past the palette cycle; ignore is black)."""
    colours = PALETTE[np.where(labels == IGNORE_INDEX, 0, labels) % len(PALETTE)]
    colours[labels == IGNORE_INDEX] = 0
    return colours


@torch.no_grad()
def predict_labels(model: nn.Module, image: Tensor) -> Tensor:
    """The predicted label map (``H x W`` int64) of one ``3 x H x W`` image of any size: the
    input is padded to a multiple of 32 (zeros after normalisation) and the logits cropped."""
    model.eval()
    height, width = image.shape[-2:]
    x = segmentation_inputs(image[None])
    x = F.pad(x, (0, (-width) % 32, 0, (-height) % 32))
    return model(x)[0, :, :height, :width].argmax(0)


def _percent(scores: dict[str, Any]) -> dict[str, float]:
    """The reported metrics in percent (as segmentation papers and mmsegmentation print them)."""
    return {key: 100.0 * float(scores[key]) for key in ("miou", "boundary_iou", "acc")}


def _whole_set(preds: list[np.ndarray], targets: list[np.ndarray], num_classes: int) -> dict[str, float]:
    return _percent(segmentation_metrics(preds, targets, num_classes, IGNORE_INDEX))


def _per_image(pred: np.ndarray, target: np.ndarray, num_classes: int) -> dict[str, Any]:
    """One image's own scores, and its per-class counts of mIoU (``miou_parts``: the
    intersections and unions that sum over the test set to the whole-set mIoU)."""
    scores = segmentation_metrics([pred], [target], num_classes, IGNORE_INDEX)
    return {**_percent(scores), "miou_parts": [scores["intersection"], scores["union"]]}


@register_task
class SegmentationTask(Task):
    name = "segmentation"
    title = "Semantic segmentation (MobileNetV2 encoder, UPerNet-lite decoder)"
    metrics = (
        Metric("miou", "mIoU %", True, 1),
        Metric("boundary_iou", "Boundary IoU %", True, 1),
        Metric("acc", "pixel acc %", True, 1),
    )
    primary = "miou"
    default_ops = ("bilinear", "nearest", "carafe", "dysample", "fade", "sapa", "indexnet_m2o", "a2u", "maxunpool")
    folder_layouts = ("voc", "ade", "generic")

    def presets(self) -> dict[str, Preset]:
        # class weights from the pixel counts of this many training samples (see run())
        shared = {
            "init_like": "bilinear",
            "validation_images": 16,
            "class_weights": "inverse_sqrt",
            "weight_samples": 200,
        }
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
                extra={
                    **shared,
                    "eval_size": 64,
                    "curve_points": 2,
                    "validation_images": 2,
                    "test_images": 2,
                    "weight_samples": 4,
                },
            ),
            "quick": Preset(
                "quick",
                steps=900,
                crop=96,
                width=0.5,
                batch_size=8,
                seeds=1,
                eval_images=0,
                lr=5e-3,
                minutes=15.0,
                description=(
                    "900 steps of 8 crops of 96 at width 0.5 (25 warm-up steps, cosine, class-weighted), "
                    "100 test images of 128"
                ),
                extra={**shared, "eval_size": 128, "curve_points": 4, "test_images": 100, "warmup_steps": 25},
                ops=("bilinear", "carafe", "dysample", "fade", "indexnet_m2o"),
            ),
            "standard": Preset(
                "standard",
                steps=3000,
                crop=96,
                width=0.5,
                batch_size=8,
                seeds=1,
                eval_images=0,
                lr=5e-3,
                minutes=120.0,  # estimated from the quick preset's step times, not yet measured
                description=(
                    "3000 steps of 8 crops of 96 at width 0.5 (50 warm-up steps, cosine, class-weighted), "
                    "200 test images of 128"
                ),
                extra={**shared, "eval_size": 128, "curve_points": 6, "test_images": 200, "warmup_steps": 50},
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
                description="20k steps of 16 images of 256 at full width, 3 seeds, 500 test images of 256",
                extra={**shared, "eval_size": 256, "curve_points": 10, "test_images": 500},
            ),
        }

    # -- data --------------------------------------------------------------------------

    def _folder(self, spec: RunSpec, split: str):
        from ...data import open_segmentation_folder

        return open_segmentation_folder(spec.data.split(":", 1)[1], spec.layout or "", split)

    def _source(self, spec: RunSpec):
        from ...data import open_source

        return open_source(spec.data, spec.data_root)

    def _test_set_dir(self, spec: RunSpec):
        extra = spec.preset.extra
        return (
            spec.shared_dir / f"testset-{spec.data}-v{SEGMENTATION_FORMAT}-{extra['eval_size']}-{extra['test_images']}"
        )

    def num_classes(self, spec: RunSpec) -> int:
        from ...data import SEGMENTATION_CLASSES

        if spec.data.startswith("folder:"):
            return self._folder(spec, "train").num_classes
        return len(SEGMENTATION_CLASSES)

    def prepare(self, spec: RunSpec) -> None:
        from ...data import write_segmentation_test_set

        if spec.data.startswith("folder:"):
            self._folder(spec, "train")
            self._folder(spec, "val")  # both splits open (every pair checked) before any run starts
            return
        extra = spec.preset.extra
        write_segmentation_test_set(
            self._source(spec), self._test_set_dir(spec), size=extra["eval_size"], count=extra["test_images"], seed=0
        )

    def _test_images(self, spec: RunSpec) -> list[dict]:
        from ...data import SegmentationTestSet

        test = (
            self._folder(spec, "val")
            if spec.data.startswith("folder:")
            else SegmentationTestSet(self._test_set_dir(spec))
        )
        n = len(test) if spec.preset.eval_images <= 0 else min(len(test), spec.preset.eval_images)
        return [test[i] for i in range(n)]

    def _validation_images(self, spec: RunSpec) -> list[dict]:
        """Images of the training part (never the test set): for the built-in data, composites
        with a data seed no training run uses; for a folder, its first training images."""
        from ...data import SegmentationComposites

        wanted = int(spec.preset.extra.get("validation_images", 0))
        if wanted <= 0:
            return []
        if spec.data.startswith("folder:"):
            train = self._folder(spec, "train")
            return [train[i] for i in range(min(wanted, len(train)))]
        composites = SegmentationComposites(
            self._source(spec), spec.preset.extra["eval_size"], part="train", seed=999_983
        )
        return [composites[i] for i in range(wanted)]

    def _training_data(self, spec: RunSpec):
        from ...data import SegmentationComposites

        if spec.data.startswith("folder:"):
            return RandomCrops(self._folder(spec, "train"), spec.preset.crop, seed=spec.seed)
        return SegmentationComposites(self._source(spec), spec.preset.crop, part="train", seed=spec.seed)

    # -- runs --------------------------------------------------------------------------

    def _model_config(self, spec: RunSpec) -> SegmentationConfig:
        return SegmentationConfig(
            pair=spec.op,
            num_classes=self.num_classes(spec),
            width=spec.preset.width,
            init_like=spec.preset.extra.get("init_like"),
        )

    def _trained(self, spec: RunSpec) -> SegmentationNet:
        model = SegmentationNet(self._model_config(spec))
        model.load_state_dict(load_checkpoint(latest_checkpoint(spec.run_dir / "checkpoints"))["model"])
        return model.eval()

    def _score(self, model: nn.Module, samples: list[dict], num_classes: int):
        preds = [predict_labels(model, s["image"]).numpy() for s in samples]
        targets = [s["mask"].numpy() for s in samples]
        rows = [{"name": s["name"], **_per_image(p, t, num_classes)} for s, p, t in zip(samples, preds, targets)]
        return rows, preds, targets

    def run(self, spec: RunSpec, progress: bool) -> dict[str, Any]:
        p = spec.preset
        model_config = self._model_config(spec)
        loop = LoopConfig(
            out=str(spec.run_dir),
            steps=p.steps,
            batch_size=p.batch_size,
            lr=p.lr,
            optimizer="adamw",
            schedule="cosine",
            warmup_steps=int(p.extra.get("warmup_steps", 0)),
            checkpoint_every=max(1, p.steps // 5),
            log_every=max(1, p.steps // 50),
            workers=0,
            seed=spec.seed,
            **p.precision(),
        )
        run_config = {"task": self.name, "op": spec.op, "seed": spec.seed, "preset": p.to_dict(), "data": spec.data}
        data = self._training_data(spec)
        weights = self._class_weights(spec, data, model_config.num_classes)
        task = TrainingTask(
            build_model=lambda: initial_segmentation_network(model_config),
            loss=weighted_segmentation_loss(weights),
            dataset=data,
            model_config=model_config.to_dict(),
            min_batch_per_process=2,  # ASPP's image pooling batch-normalises a 1x1 map
        )
        start = time.perf_counter()
        validation = self._validation_images(spec)
        classes = model_config.num_classes

        def score() -> dict[str, float]:
            _, preds, targets = self._score(self._trained(spec), validation, classes)
            return _whole_set(preds, targets, classes)

        def segment(resume: bool, steps: int):
            identity = ("task", "op", "seed", "preset", "data")
            return fit(
                task, loop, run_config=run_config, identity=identity, resume=resume, progress=progress, stop_after=steps
            )

        result = train_in_segments(spec, segment, score if validation else None)
        model = self._trained(spec)
        samples = self._test_images(spec)
        per_image, preds, targets = self._score(model, samples, classes)
        write_json_atomic(spec.run_dir / "per_image.json", per_image)
        size = p.extra["eval_size"]
        example = torch.zeros(1, 3, size, size)
        costs = operator_costs(model, example)
        costs["latency_ms"] = latency_ms(model, example, repeats=3)
        costs["train_ms_per_step"] = (
            1000.0 * result.seconds_per_step if result is not None and result.seconds_per_step else None
        )
        self._save_visuals(spec, samples, preds)
        return {
            "metrics": {"overall": _whole_set(preds, targets, classes)},
            "costs": costs,
            "train": {
                "steps": checkpoint_step(spec.run_dir),
                "wall_s": time.perf_counter() - start,
                "class_weights": None if weights is None else [round(float(w), 4) for w in weights],
            },
            "validation_images": len(validation),
        }

    def _class_weights(self, spec: RunSpec, data, num_classes: int) -> Tensor | None:
        """The loss's class weights: ``None``, or (``class_weights="inverse_sqrt"``) from the
        pixel counts of the first ``weight_samples`` training samples, the same for every
        operator and seed of a comparison (the data seed 0, not the run's)."""
        scheme = spec.preset.extra.get("class_weights")
        if scheme is None:
            return None
        if scheme != "inverse_sqrt":
            raise ValueError(f"preset `class_weights`: expected 'inverse_sqrt' or None, got {scheme!r}")
        if spec.data.startswith("folder:"):
            samples = RandomCrops(self._folder(spec, "train"), spec.preset.crop, seed=0)
        else:
            from ...data import SegmentationComposites

            samples = SegmentationComposites(self._source(spec), spec.preset.crop, part="train", seed=0)
        counts = class_pixel_counts(samples, num_classes, int(spec.preset.extra["weight_samples"]))
        return inverse_sqrt_frequency_weights(counts)

    def step_parts(self, spec: RunSpec, trained: bool = True) -> StepParts:
        from torch.utils.data import default_collate

        size = spec.preset.extra["eval_size"]
        if trained:
            model = self._trained(spec)
        else:
            torch.manual_seed(spec.seed)
            model = initial_segmentation_network(self._model_config(spec))
        data = self._training_data(spec)
        batch = default_collate([data[i] for i in range(spec.preset.batch_size)])
        example = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
        return StepParts(model, segmentation_batch_loss, batch, example)

    # -- report pieces -----------------------------------------------------------------

    def _visual_windows(self, samples: list[dict]) -> list[tuple[int, int, int]]:
        """Crops centred on object boundaries: per image the window with the most pixels
        whose right or lower neighbour has another label; the images with most first."""
        found = []
        for i, sample in enumerate(samples):
            labels = sample["mask"].numpy()
            edges = np.zeros(labels.shape, np.float32)
            edges[:, :-1] += labels[:, :-1] != labels[:, 1:]
            edges[:-1, :] += labels[:-1, :] != labels[1:, :]
            h, w = labels.shape
            c = min(CROP, h, w)
            integral = np.pad(edges.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
            best, at = -1.0, (0, 0)
            for y in range(0, h - c + 1, 8):
                for x in range(0, w - c + 1, 8):
                    total = integral[y + c, x + c] - integral[y, x + c] - integral[y + c, x] + integral[y, x]
                    if total > best:
                        best, at = total, (y, x)
            found.append((best, i, *at))
        found.sort(key=lambda item: (-item[0], item[1]))
        return [(i, y, x) for _, i, y, x in found[:VISUAL_CROPS]]

    def _save_visuals(self, spec: RunSpec, samples: list[dict], preds: list[np.ndarray]) -> None:
        windows = self._visual_windows(samples)
        c = min(CROP, *samples[0]["mask"].shape)
        image = [
            (samples[i]["image"][:, y : y + c, x : x + c].numpy().transpose(1, 2, 0) * 255).round()
            for i, y, x in windows
        ]
        target = [colour_labels(samples[i]["mask"].numpy()[y : y + c, x : x + c]) for i, y, x in windows]
        output = [colour_labels(preds[i][y : y + c, x : x + c]) for i, y, x in windows]
        np.savez_compressed(
            spec.run_dir / "visuals.npz",
            input=np.stack(image).clip(0, 255).astype(np.uint8),
            target=np.stack(target),
            output=np.stack(output),
            names=np.array([samples[i]["name"] for i, _, _ in windows]),
        )

    def reference_rows(self, spec: RunSpec) -> list[dict[str, Any]]:
        """Predicting background (class 0) everywhere, scored like the operators."""
        extra = spec.preset.extra
        cache = (
            spec.shared_dir
            / f"references-v2-{spec.data.replace('/', '_')}-{spec.preset.name}-{extra['test_images']}.json"
        )
        if cache.is_file():
            return read_json(cache)
        samples = self._test_images(spec)
        classes = self.num_classes(spec)
        preds = [np.zeros_like(s["mask"].numpy()) for s in samples]
        targets = [s["mask"].numpy() for s in samples]
        rows = [
            {
                "label": "background",
                "name": "background everywhere (the trivial prediction)",
                "metrics": {"overall": _whole_set(preds, targets, classes)},
                "per_image": [
                    {"name": s["name"], **_per_image(p, t, classes)} for s, p, t in zip(samples, preds, targets)
                ],
            }
        ]
        write_json_atomic(cache, rows)
        return rows
