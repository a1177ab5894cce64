"""Guided steps and the pair: a down step composed with the up step that undoes it.

IndexNet, A2U and max unpooling are *paired* operators: the down step looks at the
high-resolution encoder feature and produces a :class:`~resamplers.base.Guide` (indices,
index maps, affinities) that a later up step in the decoder consumes.  FADE and SAPA are
guided by the high-resolution feature itself (``guide.encoder``).  Every downsampler can
make a guide (:meth:`~resamplers.base.Downsampler.down`) and every upsampler can take
one (:meth:`~resamplers.base.Upsampler.up`), so any down step composes with any up step
whose guidance it provides::

    pair = create_pair("indexnet_m2o", channels=64)
    y, guide = pair.down(x)          # encoder: N x 64 x H x W -> N x 64 x H/2 x W/2
    skip = guide.skip                # what the skip connection should carry
    ...
    z = pair.up(d, guide)            # decoder: N x C_d x H/2 x W/2 -> N x C_d x H x W
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from torch import Tensor, nn

from .._checks import check_feature, check_int
from ..base import Downsampler, Guide, Operator, Upsampler, spatial_size
from ..functional import carafe

__all__ = ["Guide", "ResamplerPair", "FeatureGuidedUpsampler", "resolve_up_channels"]


class FeatureGuidedUpsampler(Upsampler):
    """An upsampler guided by the high-resolution encoder feature of the same stage.

    ``forward(d, encoder)``: ``d`` is ``N x C_d x h x w`` and ``encoder`` ``N x C x sh x sw``;
    in a pair the encoder feature comes from ``guide.encoder``.

    Attributes:
        channels: decoder channels ``C_d`` (input ``d``).
        guide_channels: encoder channels ``C`` (input ``encoder``).
    """

    input_names = ("d", "encoder")

    def __init__(self, channels: int, scale_factor: int, guide_channels: int | None = None) -> None:
        super().__init__(check_int(channels, "channels", minimum=1), scale_factor)
        self.guide_channels = (
            channels if guide_channels is None else check_int(guide_channels, "guide_channels", minimum=1)
        )

    def input_channels(self) -> tuple[int | None, ...]:
        return (self.channels, self.guide_channels)

    def input_scales(self) -> tuple[Fraction, ...]:
        return (Fraction(1), Fraction(self.scale_factor))

    def output_shapes(self, shapes: Any) -> list[tuple[int, ...]]:
        d, encoder = shapes
        s = self.scale_factor
        if tuple(encoder[2:]) != (d[2] * s, d[3] * s) or encoder[0] != d[0]:
            raise ValueError(f"argument `encoder`: expected {s}x the size of `d`, got {encoder} for {d}")
        return [self.output_shape(tuple(d))]

    def check_inputs(self, d: Tensor, encoder: Tensor) -> None:
        """``d``: ``N x C_d x h x w``; ``encoder``: ``N x C x sh x sw``."""
        check_feature(d, "d", channels=self.channels)
        check_feature(encoder, "encoder", channels=self.guide_channels)
        s = self.scale_factor
        expected = (d.shape[0], d.shape[-2] * s, d.shape[-1] * s)
        if (encoder.shape[0], encoder.shape[-2], encoder.shape[-1]) != expected:
            raise ValueError(
                f"argument `encoder`: expected batch {expected[0]} and spatial size {expected[1]} x {expected[2]} "
                f"(scale_factor {s} times that of `d`), got shape {tuple(encoder.shape)}"
            )

    up_kernel: int

    def kernels(self, d: Tensor, encoder: Tensor) -> Tensor:  # pragma: no cover - abstract
        """Reassembly kernels ``N x k^2 x sh x sw`` (CARAFE layout, one group)."""
        raise NotImplementedError

    def reassemble(self, d: Tensor, encoder: Tensor) -> Tensor:
        """Check the inputs and reassemble ``d`` with :meth:`kernels` (CARAFE with one group and
        window ``up_kernel``): the step FADE and SAPA share."""
        self.check_inputs(d, encoder)
        return carafe(d, self.kernels(d, encoder), self.up_kernel, 1, self.scale_factor)

    def up(self, d: Tensor, guide: Guide) -> Tensor:
        return self(d, guide.encoder)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, guide_channels={self.guide_channels}"


class ResamplerPair(Operator):
    """A down step and the up step that undoes it, as one module.

    ``down(x)`` runs the downsampler and returns its output and :class:`Guide`; ``up(d,
    guide)`` runs the upsampler's up step; ``forward`` is the round trip ``up(*down(x))``,
    which is what the shared test matrix and the benchmark exercise.

    Where the official code has both steps in one module, their parameters are stored
    without the ``downsampler.`` / ``upsampler.`` prefix (``flat_children``), so official
    checkpoints and this library's earlier ones load key for key.

    Attributes:
        channels: encoder channels (input of ``down``).
        up_channels: decoder channels the up step was built for.
        up_channels_fixed: whether ``up`` requires exactly ``up_channels`` (else any count).
        up_channels_tied: ``True`` when the guide is per channel (depthwise indices,
            max-pooling positions), so ``up_channels`` must equal ``channels``.
        downsampler: the down step.
        upsampler: the up step.
    """

    def __init__(
        self,
        downsampler: Downsampler,
        upsampler: Upsampler,
        up_channels: int | None = None,
        *,
        up_channels_fixed: bool = True,
        per_channel_guide: bool = False,
        flat_children: tuple[str, ...] = (),
    ) -> None:
        super().__init__(downsampler.channels)
        if downsampler.scale_factor != upsampler.scale_factor:
            raise ValueError(
                f"argument `scale_factor`: down step {downsampler.scale_factor} and up step "
                f"{upsampler.scale_factor} differ"
            )
        self.scale_factor = downsampler.scale_factor
        self.up_channels = resolve_up_channels(up_channels, downsampler.channels, per_channel_guide)
        self.up_channels_fixed = up_channels_fixed
        self.up_channels_tied = per_channel_guide
        self.downsampler = downsampler
        self.upsampler = upsampler
        self.flat_children = flat_children
        if flat_children:
            self._register_state_dict_hook(_strip_child_prefixes)
            self.register_load_state_dict_pre_hook(_add_child_prefixes)

    def __getattr__(self, name: str) -> Any:
        # Like their state-dict keys, the attributes of flat children read as the pair's own
        # (``pair.indexnet1``, ``pair.ker_generator``), as in the official single modules.
        try:
            return super().__getattr__(name)
        except AttributeError:
            modules = self.__dict__.get("_modules", {})
            for child in self.__dict__.get("flat_children", ()):
                if child in modules and hasattr(modules[child], name):
                    return getattr(modules[child], name)
            raise

    @property
    def size_multiple(self) -> int:  # type: ignore[override]
        # A round trip restores the input size only when the input divides by the scale.
        return self.scale_factor

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of the round trip ``up(*down(x))``: the input's, at ``up_channels``."""
        n, c, h, w = shape
        if self.up_channels_fixed and self.up_channels != self.channels:
            raise ValueError(
                f"argument `x`: the round trip needs up_channels == channels, got {self.up_channels} != {self.channels}"
            )
        return (n, c, h, w)

    def down(self, x: Tensor) -> tuple[Tensor, Guide]:
        """``N x C x H x W`` -> the low-resolution map and the guide for :meth:`up`."""
        self.check_input(x)
        return self.downsampler.down(x)

    def up(self, d: Tensor, guide: Guide) -> Tensor:
        """``N x C_d x h x w`` (the guide's low size) -> ``N x C_d x H x W``."""
        self.check_up_input(d, guide)
        return self.upsampler.up(d, guide)

    def check_up_input(self, d: Tensor, guide: Guide, name: str = "d") -> Tensor:
        """Validate a decoder feature against the guide it is upsampled with."""
        if not isinstance(guide, Guide):
            raise TypeError(f"argument `guide`: expected the Guide returned by down(), got {type(guide).__name__}")
        check_feature(d, name, channels=self.up_channels if self.up_channels_fixed else None)
        if d.shape[0] != guide.skip.shape[0]:
            raise ValueError(
                f"argument `{name}`: expected batch size {guide.skip.shape[0]} (that of the guide), got {d.shape[0]}"
            )
        if spatial_size(d) != tuple(guide.low_size):
            raise ValueError(
                f"argument `{name}`: expected spatial size {guide.low_size[0]} x {guide.low_size[1]} (the size down() "
                f"produced for this guide, whose high-resolution size is {guide.size[0]} x {guide.size[1]}), "
                f"got {d.shape[-2]} x {d.shape[-1]}"
            )
        return d

    def skip(self, guide: Guide) -> Tensor:
        """What a skip connection from this stage should carry."""
        return guide.skip

    def forward(self, x: Tensor) -> Tensor:
        self.output_shape(tuple(self.check_input(x).shape))
        return self.up(*self.down(x))

    def extra_repr(self) -> str:
        return f"channels={self.channels}, scale_factor={self.scale_factor}, up_channels={self.up_channels}"


def resolve_up_channels(up_channels: int | None, channels: int | None, per_channel_guide: bool) -> int | None:
    """The decoder channels of a pair: ``channels`` by default; a per-channel guide
    (depthwise indices, max-pooling positions) admits no other count."""
    if up_channels is None:
        return channels
    check_int(up_channels, "up_channels", minimum=1)
    if per_channel_guide and up_channels != channels:
        raise ValueError(
            f"argument `up_channels`: this pair's guide holds one index per encoder channel, so up() needs "
            f"the encoder's {channels} channels; got {up_channels}"
        )
    return up_channels


def _child_names(child: nn.Module) -> set[str]:
    """First components of a module's own state-dict keys."""
    return set(child._modules) | set(child._parameters) | set(child._buffers)


def _strip_child_prefixes(module: ResamplerPair, state_dict: dict[str, Any], prefix: str, local_metadata: Any) -> None:
    for child in module.flat_children:
        child_prefix = f"{prefix}{child}."
        for key in [k for k in state_dict if k.startswith(child_prefix)]:
            state_dict[prefix + key[len(child_prefix) :]] = state_dict.pop(key)


def _add_child_prefixes(module: ResamplerPair, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
    own = _child_names(module)
    children = {child: _child_names(getattr(module, child)) for child in module.flat_children}
    # A key no child claims goes to the only flat child, whose loader may rename it (legacy keys).
    fallback = module.flat_children[0] if len(module.flat_children) == 1 else None
    for key in [k for k in state_dict if k.startswith(prefix)]:
        first = key[len(prefix) :].split(".", 1)[0]
        if first in own:
            continue
        owner = next((child for child, names in children.items() if first in names), fallback)
        if owner is not None:
            state_dict[f"{prefix}{owner}.{key[len(prefix) :]}"] = state_dict.pop(key)
