"""Drop a registered upsampler into a feature pyramid network (FPN), by name.

An FPN's top-down path upsamples the coarser level 2x and adds the lateral feature of the
finer one.  Every upsampler of the registry fits there: plain ones are called as ``up(p)``,
the feature-guided ones (FADE, SAPA) as ``up(p, lateral)``, guided by the feature they are
upsampled to, the call their papers make in an FPN.  The script builds one FPN per
upsampler, runs forward and backward on a random batch, and prints the output shapes and
the upsamplers' parameter counts.

    python docs/tutorials/fpn_upsampler.py                 # every registered upsampler
    python docs/tutorials/fpn_upsampler.py --smoke         # five of them at a small size
    python docs/tutorials/fpn_upsampler.py --ops carafe,dysample --size 256
"""

from __future__ import annotations

import argparse
import sys

import torch
from torch import Tensor, nn

import resamplers
from resamplers.guided import FeatureGuidedUpsampler


class TinyBackbone(nn.Module):
    """Four stages of strided 3x3 convolutions: features at strides 4, 8, 16 and 32."""

    def __init__(self, widths: tuple[int, ...] = (16, 32, 48, 64)) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, 2, 1), nn.ReLU(), nn.Conv2d(widths[0], widths[0], 3, 2, 1))
        self.stages = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c_in, c_out, 3, 2, 1), nn.BatchNorm2d(c_out), nn.ReLU())
            for c_in, c_out in zip(widths[:-1], widths[1:])
        )
        self.widths = widths

    def forward(self, x: Tensor) -> list[Tensor]:
        features = [self.stem(x)]
        for stage in self.stages:
            features.append(stage(features[-1]))
        return features  # strides 4, 8, 16, 32


class FPN(nn.Module):
    """Lateral 1x1 convolutions, a top-down path with one ``upsampler`` per level, 3x3 output convolutions."""

    def __init__(self, in_channels: tuple[int, ...], channels: int, upsampler: str, **up_kwargs) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels)
        # One upsampler per top-down step; `create_upsampler` checks the keywords against the operator.
        self.up = nn.ModuleList(
            resamplers.create_upsampler(upsampler, channels=channels, scale_factor=2, **up_kwargs)
            for _ in in_channels[1:]
        )
        self.output = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1) for _ in in_channels)

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        laterals = [conv(f) for conv, f in zip(self.lateral, features)]
        p = laterals[-1]
        outputs = [p]
        for level in range(len(laterals) - 2, -1, -1):
            up = self.up[level]
            lateral = laterals[level]
            if isinstance(up, FeatureGuidedUpsampler):  # FADE, SAPA: guided by the finer feature
                p = lateral + up(p, lateral)
            else:
                p = lateral + up(p)
            outputs.insert(0, p)
        return [conv(p) for conv, p in zip(self.output, outputs)]


def run(upsampler: str, size: int, channels: int) -> None:
    torch.manual_seed(0)
    backbone = TinyBackbone()
    # SAPA's default embedding (d = 64) and FADE's defaults suit any channel count; keep the kernels small here.
    up_kwargs = {"up_kernel": 3} if upsampler.startswith(("fade", "sapa")) else {}
    fpn = FPN(backbone.widths, channels, upsampler, **up_kwargs)
    image = torch.randn(2, 3, size, size)
    pyramid = fpn(backbone(image))
    loss = sum(p.square().mean() for p in pyramid)
    loss.backward()
    up_params = sum(p.numel() for p in fpn.up.parameters())
    grads = [p.grad for p in fpn.up.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads), f"{upsampler}: missing or bad gradients"
    shapes = ", ".join("x".join(map(str, p.shape[2:])) for p in pyramid)
    print(f"{upsampler:16s} pyramid {shapes:24s} upsampler parameters {up_params:>8,}  loss {loss.item():.4f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", default=None, help="comma-separated upsampler names (default: every registered one)")
    parser.add_argument("--size", type=int, default=128, help="input image side")
    parser.add_argument("--channels", type=int, default=64, help="FPN channels")
    parser.add_argument("--smoke", action="store_true", help="five upsamplers on 64 x 64 images (seconds)")
    args = parser.parse_args(argv)
    if args.smoke:
        names = ["nearest", "bilinear", "carafe", "dysample", "fade", "sapa"]
        size, channels = 64, 32
    else:
        names = args.ops.split(",") if args.ops else resamplers.list_upsamplers()
        size, channels = args.size, args.channels
    for name in names:
        run(name, size, channels)
    return 0


if __name__ == "__main__":
    sys.exit(main())
