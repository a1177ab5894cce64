"""A tiny deterministic matting dataset for training tests (item i depends only on i)."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset


class FakeComposites(Dataset):
    def __init__(self, size: int = 64, length: int = 10**6, seed: int = 0) -> None:
        self.size, self.length, self.seed = size, length, seed

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        s = self.size
        yy, xx = torch.meshgrid(
            torch.arange(s, dtype=torch.float32), torch.arange(s, dtype=torch.float32), indexing="ij"
        )
        cy, cx, r = torch.rand(3, generator=g) * torch.tensor([s / 2, s / 2, s / 4]) + torch.tensor(
            [s / 4, s / 4, s / 8]
        )
        alpha = (r - ((yy - cy) ** 2 + (xx - cx) ** 2).sqrt()).div(2.0).add(0.5).clamp(0, 1)[None]
        fg = torch.rand(3, 1, 1, generator=g).expand(3, s, s).clone()
        bg = torch.rand(3, s, s, generator=g) * 0.2 + torch.rand(3, 1, 1, generator=g) * 0.8
        image = alpha * fg + (1 - alpha) * bg
        trimap = torch.full((s, s), 128, dtype=torch.uint8)
        dist = ((yy - cy) ** 2 + (xx - cx) ** 2).sqrt()
        trimap[dist < r - 4] = 255
        trimap[dist > r + 4] = 0
        return {"image": image, "alpha": alpha, "trimap": trimap, "fg": fg, "bg": bg}
