"""Reconstruction: does the operator deliver spatial information?

The experiment of the Index Networks paper made concrete: a small encoder-decoder without
skip connections downsamples a photo crop ``levels`` times with a pair's ``down`` and
restores it with the same pair's ``up``; whatever position information the pair's guide
carries (max-unpooling indices, IndexNet's index maps, A2U's kernels) is all the decoder
gets besides the bottleneck.  Fixed upsamplers (nearest, bilinear) can only blur.  Pairs
whose guide is the high-resolution feature itself (FADE, SAPA) see more than positions;
the report says so.

Trained on random crops of real photographs (the fetched backgrounds) or of the synthetic
source's procedural backgrounds; PSNR and SSIM on a fixed set of test crops.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from ...metrics.image import psnr, ssim
from ...registry import create_pair
from ...storage import latest_checkpoint, load_checkpoint, write_json_atomic
from ...training.loop import LoopConfig, TrainingTask, fit
from ..measure import latency_ms, operator_costs
from .base import Metric, Preset, RunSpec, StepParts, Task, register_task

__all__ = ["ReconstructionNet", "PhotoCrops", "ReconstructionTask"]


def _conv_bn_relu(inp: int, oup: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(inp, oup, 3, padding=1, bias=False), nn.BatchNorm2d(oup), nn.ReLU(inplace=True))


class ReconstructionNet(nn.Module):
    """``stem -> levels x (down -> conv) -> levels x (up -> conv) -> head``, no skip connections.

    Args:
        pair: registered pair name.
        channels: feature channels at every level.
        levels: number of 2x down/up steps.

    Shape:
        ``N x 3 x H x W`` -> ``N x 3 x H x W``; ``H`` and ``W`` multiples of ``2 ** levels``.
    """

    def __init__(self, pair: str, channels: int = 32, levels: int = 3, **pair_kwargs: Any) -> None:
        super().__init__()
        self.levels = levels
        self.stem = _conv_bn_relu(3, channels)
        self.pairs = nn.ModuleList(create_pair(pair, channels=channels, **pair_kwargs) for _ in range(levels))
        self.encode = nn.ModuleList(_conv_bn_relu(channels, channels) for _ in range(levels))
        self.decode = nn.ModuleList(_conv_bn_relu(channels, channels) for _ in range(levels))
        self.head = nn.Conv2d(channels, 3, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.stem(x)
        guides = []
        for pair, conv in zip(self.pairs, self.encode):
            h, guide = pair.down(h)
            guides.append(guide)
            h = conv(h)
        for pair, conv, guide in zip(reversed(self.pairs), self.decode, reversed(guides)):
            h = conv(pair.up(h, guide))
        return self.head(h)


class PhotoCrops(Dataset):
    """Random square crops of a source's backgrounds; item ``i`` depends only on ``(seed, i)``."""

    def __init__(self, source: Any, part: str, size: int, seed: int, length: int = 10**9) -> None:
        self.source, self.size, self.seed, self.length = source, size, seed, length
        self.names = source.backgrounds(part)
        if not self.names:
            raise ValueError(f"argument `source`: no {part!r} backgrounds in {getattr(source, 'id', source)}")

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        rng = np.random.default_rng([self.seed, index])
        name = self.names[int(rng.integers(len(self.names)))]
        photo = self.source.load_background(name, 2 * self.size)
        h, w = photo.shape[:2]
        y, x = int(rng.integers(h - self.size + 1)), int(rng.integers(w - self.size + 1))
        crop = photo[y : y + self.size, x : x + self.size]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        image = torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1)
        image = image.float() / 255.0 if image.dtype == torch.uint8 else image.float()
        return {"image": image}


def _batch_loss(model: nn.Module, batch: dict[str, Any]):
    loss = F.l1_loss(model(batch["image"]).float(), batch["image"])
    return loss, {}


_QUICK_OPS = (
    "nearest",
    "bilinear",
    "deconv",
    "pixel_shuffle",
    "carafe",
    "maxunpool",
    "indexnet_m2o",
    "indexnet_o2o",
    "indexnet_hin",
    "a2u",
    "dysample",
    "fade",
    "sapa",
)


@register_task
class ReconstructionTask(Task):
    name = "reconstruction"
    title = "Reconstruction without skip connections (does the operator deliver spatial information?)"
    metrics = (Metric("psnr", "PSNR (dB)", True, 2), Metric("ssim", "SSIM", True, 4))
    primary = "psnr"
    default_ops = (*_QUICK_OPS, "dlu", "freqfusion", "featup_jbu", "sapa_deform")

    def presets(self) -> dict[str, Preset]:
        return {
            "smoke": Preset(
                "smoke",
                steps=3,
                crop=32,
                width=16,
                batch_size=4,
                seeds=1,
                eval_images=4,
                lr=2e-3,
                minutes=0.3,
                description="a few steps on tiny crops: checks the pipeline end to end",
            ),
            "quick": Preset(
                "quick",
                steps=300,
                crop=64,
                width=32,
                batch_size=16,
                seeds=1,
                eval_images=64,
                lr=2e-3,
                minutes=13.0,
                description="300 steps on 64x64 crops, 32 channels, 3 levels",
                # The 13 operators that fit the quarter hour; the four newest (SAPA-Deform's
                # torch-path sampling alone takes about 10 min) join with --ops.
                ops=_QUICK_OPS,
            ),
            "standard": Preset(
                "standard",
                steps=1200,
                crop=64,
                width=32,
                batch_size=16,
                seeds=1,
                eval_images=256,
                lr=2e-3,
                minutes=52.0,  # estimated: four times the measured quick training, not measured itself
                description="1200 steps on 64x64 crops, 32 channels, 3 levels, 256 test images",
            ),
            "full": Preset(
                "full",
                steps=3000,
                crop=96,
                width=32,
                batch_size=16,
                seeds=3,
                eval_images=256,
                lr=2e-3,
                minutes=300.0,
                description="3000 steps on 96x96 crops, 3 seeds",
            ),
        }

    def _source(self, spec: RunSpec):
        from ...data import open_source

        return open_source(spec.data, spec.data_root)

    def _test_crops(self, spec: RunSpec) -> Tensor:
        cache = spec.shared_dir / f"test-crops-{spec.data}-{spec.preset.crop}-{spec.preset.eval_images}.npy"
        if cache.is_file():
            return torch.from_numpy(np.load(cache, allow_pickle=False))
        crops = PhotoCrops(self._source(spec), "test", spec.preset.crop, seed=2**20)
        stack = torch.stack([crops[i]["image"] for i in range(spec.preset.eval_images)])
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(cache.name + ".tmp.npy")
        np.save(tmp, stack.numpy())
        tmp.replace(cache)
        return stack

    def prepare(self, spec: RunSpec) -> None:
        self._test_crops(spec)

    def _build(self, spec: RunSpec) -> ReconstructionNet:
        return ReconstructionNet(spec.op, channels=int(spec.preset.width), levels=3)

    def _trained(self, spec: RunSpec) -> ReconstructionNet:
        model = self._build(spec)
        model.load_state_dict(load_checkpoint(latest_checkpoint(spec.run_dir / "checkpoints"))["model"])
        return model.eval()

    def step_parts(self, spec: RunSpec, trained: bool = True) -> StepParts:
        from torch.utils.data import default_collate

        if trained:
            model = self._trained(spec)
        else:
            torch.manual_seed(spec.seed)
            model = self._build(spec)
        crops = PhotoCrops(self._source(spec), "train", spec.preset.crop, spec.seed)
        batch = default_collate([crops[i] for i in range(spec.preset.batch_size)])
        return StepParts(model, _batch_loss, batch, self._test_crops(spec)[:1])

    def run(self, spec: RunSpec, progress: bool) -> dict[str, Any]:
        p = spec.preset
        loop = LoopConfig(
            out=str(spec.run_dir),
            steps=p.steps,
            batch_size=p.batch_size,
            lr=p.lr,
            weight_decay=0.0,
            optimizer="adamw",
            schedule="cosine",
            checkpoint_every=max(1, p.steps // 5),
            log_every=max(1, p.steps // 50),
            workers=0,
            seed=spec.seed,
            **p.precision(),
        )
        run_config = {"task": self.name, "op": spec.op, "seed": spec.seed, "preset": p.to_dict(), "data": spec.data}
        start = time.perf_counter()
        resume = (spec.run_dir / "checkpoints" / "latest").is_file()
        task = TrainingTask(
            build_model=lambda: self._build(spec),
            loss=_batch_loss,
            dataset=PhotoCrops(self._source(spec), "train", p.crop, spec.seed),
            model_config={"op": spec.op, "width": p.width},
            min_batch_per_process=2,
        )
        result = fit(
            task,
            loop,
            run_config=run_config,
            identity=("task", "op", "seed", "preset", "data"),
            resume=resume,
            progress=progress,
        )
        model = self._trained(spec)
        crops = self._test_crops(spec)
        with torch.no_grad():
            recon = torch.cat([model(crops[i : i + 16]) for i in range(0, len(crops), 16)]).clamp(0, 1)
        scores = {"psnr": psnr(recon, crops), "ssim": ssim(recon, crops)}
        metrics = {name: float(values.mean()) for name, values in scores.items()}
        per_image = [
            {"name": f"crop-{i:04d}", **{name: float(values[i]) for name, values in scores.items()}}
            for i in range(len(crops))
        ]
        write_json_atomic(spec.run_dir / "per_image.json", per_image)
        example = crops[:1]
        costs = operator_costs(model, example)
        costs["latency_ms"] = latency_ms(model, example)
        costs["train_ms_per_step"] = 1000.0 * result.seconds_per_step if result.seconds_per_step else None
        k = min(4, len(crops))
        np.savez_compressed(
            spec.run_dir / "visuals.npz",
            input=(crops[:k].permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8),
            target=(crops[:k].permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8),
            output=(recon[:k].permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8),
        )
        return {
            "metrics": {"overall": metrics},
            "costs": costs,
            "train": {"steps": result.step, "wall_s": time.perf_counter() - start},
        }

    def reference_rows(self, spec: RunSpec) -> list[dict[str, Any]]:
        """Bilinear down/up of the test crops by 8 without learning: the floor a learned pair must beat."""
        crops = self._test_crops(spec)
        small = F.interpolate(crops, scale_factor=1 / 8, mode="area")
        up = F.interpolate(small, size=crops.shape[-2:], mode="bilinear", align_corners=False).clamp(0, 1)
        return [
            {
                "name": "area down x8, bilinear up (no learning)",
                "metrics": {"overall": {"psnr": float(psnr(up, crops).mean()), "ssim": float(ssim(up, crops).mean())}},
            }
        ]
