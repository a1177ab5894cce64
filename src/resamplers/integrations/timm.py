"""timm integration: the library's pools inside timm models.

timm takes a downsampling layer in two places, and this module fills both:

* **Anti-aliasing layers** (``aa_layer=`` of ``timm.create_model`` for ResNet and its
  relatives).  timm builds the layer as ``aa_layer(channels=C, stride=s)`` wherever a
  block or the stem downsamples, and it checks ``issubclass(aa_layer, nn.AvgPool2d)``, so
  it needs a class.  :func:`aa_layer` gives one for any of the library's downsamplers
  that keep the channel count (``blur``, ``softpool``, ``avgmax``, ``gem``, ``lp``, ...)::

      from resamplers.integrations.timm import aa_layer
      model = timm.create_model("resnet18", pretrained=False, aa_layer=aa_layer("softpool"))

* **The classifier pool.**  ``create_model(global_pool=...)`` takes only timm's own names,
  so :func:`set_global_pool` replaces the pool inside the model's
  ``SelectAdaptivePool2d`` with one of the library's pools after the model is built::

      model = set_global_pool(timm.create_model("resnet18", pretrained=False), "gem")

  A pool that changes the feature count (``catavgmax`` gives ``2C``, ``netvlad``
  ``K * C``) gets a new, freshly initialised linear classifier of the right width.  A
  pool that gives vectors (``N x D``) fits only heads that flatten right after pooling
  (ResNet's); heads that normalise the pooled map first (ConvNeXt's) need a ``N x D x 1 x
  1`` pool such as ``gem`` or ``avgmax``.  The head is run once on a small map before the
  model is returned, so a pool that does not fit raises ``ValueError`` here, not later.
  timm's ``reset_classifier(global_pool=...)`` puts one of timm's pools back.

This is the only module of the package that imports timm (``pip install
'resamplers[timm]'``); ``import resamplers`` does not load it.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from timm.layers import SelectAdaptivePool2d
from torch import Tensor, nn

from ..registry import DOWNSAMPLERS, POOLS, create_downsampler, create_pool

__all__ = ["AntiAliasing", "aa_layer", "set_global_pool"]

# Channels of the trial builds that check an operator's channel count before timm uses it.
_TRIAL_CHANNELS = 8


class AntiAliasing(nn.Module):
    """Base of the classes :func:`aa_layer` returns: one of the library's downsamplers,
    built the way timm builds an anti-aliasing layer.

    ``forward``: ``N x C x H x W`` to ``N x C x H/s x W/s`` (``s`` the stride), by the
    downsampler ``self.pool``.  Its state-dict keys are the downsampler's under ``pool.``.
    """

    operator: ClassVar[str] = ""
    operator_kwargs: ClassVar[dict[str, Any]] = {}

    def __init__(
        self,
        channels: int | None = None,
        stride: int = 2,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if not self.operator:
            raise TypeError("AntiAliasing is a base class; use aa_layer(name) to get a class timm can build")
        self.pool = create_downsampler(self.operator, channels=channels, scale_factor=stride, **self.operator_kwargs)
        if device is not None or dtype is not None:
            self.pool.to(device=device, dtype=dtype)

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(x)


def aa_layer(name: str, **kwargs: Any) -> type[AntiAliasing]:
    """A class timm's ``aa_layer=`` accepts, building the downsampler ``name``.

    Args:
        name: a registered downsampler (:func:`resamplers.list_downsamplers`) that keeps the
            channel count and returns one map.
        **kwargs: its further constructor keywords (``filt_size=3`` for ``blur``, ``p=2``
            for ``gem``, ...); ``channels`` and ``scale_factor`` come from timm.

    Raises:
        ValueError: ``name`` is unknown or changes the channel count.
        TypeError: a keyword the operator does not take, or one timm sets.
    """
    entry = DOWNSAMPLERS.entry(name, argument="name")
    for reserved in ("channels", "scale_factor"):
        if reserved in kwargs:
            raise TypeError(f"aa_layer: {reserved!r} is set by timm (channels=..., stride=...), not here")
    trial = create_downsampler(entry.name, channels=_TRIAL_CHANNELS, scale_factor=2, **kwargs)
    out_channels = getattr(trial, "out_channels", None)
    if out_channels not in (None, _TRIAL_CHANNELS):
        raise ValueError(
            f"name: {name!r} turns {_TRIAL_CHANNELS} channels into {out_channels}; "
            "an anti-aliasing layer must keep the channel count"
        )
    class_name = "AntiAliasing_" + entry.name
    return type(class_name, (AntiAliasing,), {"operator": entry.name, "operator_kwargs": dict(kwargs)})


def _find_pool(model: nn.Module) -> SelectAdaptivePool2d:
    pools = [module for module in model.modules() if isinstance(module, SelectAdaptivePool2d)]
    if len(pools) != 1:
        raise ValueError(
            f"model: expected one timm SelectAdaptivePool2d (the classifier pool of a CNN head), "
            f"{type(model).__name__} has {len(pools)}"
        )
    return pools[0]


def _replace_child(model: nn.Module, old: nn.Module, new: nn.Module) -> None:
    for parent in model.modules():
        for child_name, child in parent.named_children():
            if child is old:
                setattr(parent, child_name, new)
                return
    raise ValueError(f"model: its classifier {type(old).__name__} is not a child module")


def _try_head(model: nn.Module) -> None:
    """Run the model's head once on a small map (timm's ``forward_head``), in eval mode."""
    forward_head = getattr(model, "forward_head", None)
    if not callable(forward_head):
        return
    reference = next(model.parameters())
    channels = model.num_features
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            forward_head(torch.zeros(1, channels, 4, 4, device=reference.device, dtype=reference.dtype))
    finally:
        model.train(was_training)


def set_global_pool(model: nn.Module, name: str, **kwargs: Any) -> nn.Module:
    """Replace the classifier pool of a timm model by the library's pool ``name``; returns ``model``.

    Args:
        model: a timm model whose head pools with one ``SelectAdaptivePool2d`` (ResNet,
            ConvNeXt, EfficientNet, RegNet, ...) and has ``num_features`` channels there.
        name: a registered pool (:func:`resamplers.list_pools`) that gives one vector a
            map: ``N x D x 1 x 1`` or ``N x D``.
        **kwargs: its further constructor keywords (``p=4`` for ``gem``, ``num_clusters``
            for ``netvlad``); ``channels`` is the model's ``num_features``.

    The pooled features are ``D`` wide; where ``D`` differs from the classifier's input, a
    new ``nn.Linear(D, num_classes)`` replaces it (initialised afresh).

    Raises:
        ValueError: an unknown pool, a pool that keeps the spatial size, a model without
            one timm classifier pool, or a head that cannot take the pooled features.
    """
    entry = POOLS.entry(name, argument="name")
    if "channels" in kwargs:
        raise TypeError("set_global_pool: 'channels' is the model's num_features, not an argument")
    channels = getattr(model, "num_features", None)
    if not isinstance(channels, int):
        raise ValueError(f"model: {type(model).__name__} has no integer num_features (a timm model has)")
    site = _find_pool(model)
    reference = next(model.parameters())
    pool = create_pool(entry.name, channels=channels, **kwargs).to(device=reference.device, dtype=reference.dtype)
    trial_map = torch.zeros(1, channels, 4, 4, device=reference.device, dtype=reference.dtype)
    with torch.no_grad():
        pooled = pool(trial_map)
    vector = pooled.dim() == 2 or (pooled.dim() == 4 and pooled.shape[-2:] == (1, 1))
    if not vector:
        raise ValueError(
            f"name: {name!r} gives a {tuple(pooled.shape)} map from a 4x4 one; a classifier pool "
            "must give one vector a map (N x D x 1 x 1 or N x D)"
        )
    if pooled.dim() == 2 and isinstance(site.flatten, nn.Identity):
        raise ValueError(
            f"name: {name!r} gives N x D vectors, but the head of {type(model).__name__} keeps the pooled "
            "map 4-D (it normalises before flattening); use a pool that gives N x D x 1 x 1 (gap, gmp, gem, avgmax)"
        )
    width = pooled.shape[1]
    classifier = model.get_classifier() if hasattr(model, "get_classifier") else None
    previous = (site.pool, site.pool_type)
    fresh: nn.Linear | None = None
    if isinstance(classifier, nn.Linear) and classifier.in_features != width:
        fresh = nn.Linear(width, classifier.out_features, bias=classifier.bias is not None)
        fresh = fresh.to(device=reference.device, dtype=reference.dtype)
        _replace_child(model, classifier, fresh)
    site.pool, site.pool_type = pool, f"resamplers.{entry.name}"
    try:
        _try_head(model)
    except Exception as error:
        # Leave the model as it came: the old pool and classifier.
        site.pool, site.pool_type = previous
        if fresh is not None and classifier is not None:
            _replace_child(model, fresh, classifier)
        raise ValueError(
            f"name: the head of {type(model).__name__} cannot take {name!r}'s pooled features "
            f"({tuple(pooled.shape[1:])} a map): {error}"
        ) from error
    return model
