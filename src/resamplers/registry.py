"""Name-based registries and ``create_*`` factories.

Each operator family has a :class:`Registry`.  An entry records the operator's class,
fixed keyword arguments for named variants (``dysample_plus`` is ``dysample`` with
``dyscope=True``), a one-line summary and small example construction arguments that the
documentation, the benchmark and the shared test matrix use.

Creating an operator validates the keywords against the constructor's signature first,
so a typo raises ``TypeError`` naming the keyword and listing the accepted ones, and an
unknown name raises ``ValueError`` listing the close matches.
"""
from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from torch import nn

__all__ = [
    "Entry",
    "Registry",
    "UPSAMPLERS",
    "DOWNSAMPLERS",
    "PAIRS",
    "POOLS",
    "BLOCKS",
    "register_upsampler",
    "register_downsampler",
    "register_pair",
    "register_pool",
    "register_block",
    "create_upsampler",
    "create_downsampler",
    "create_pair",
    "create_pool",
    "create_block",
    "list_upsamplers",
    "list_downsamplers",
    "list_pairs",
    "list_pools",
    "list_blocks",
]

M = TypeVar("M", bound=type)


@dataclass(frozen=True)
class Entry:
    """One registered operator (or a named variant of one)."""

    name: str
    cls: type[nn.Module]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    example: Mapping[str, Any] = field(default_factory=dict)
    summary: str = ""

    def accepted_keywords(self) -> list[str]:
        params = inspect.signature(self.cls.__init__).parameters
        return [p for p in params if p != "self" and params[p].kind is not inspect.Parameter.VAR_KEYWORD]

    def example_kwargs(self, **overrides: Any) -> dict[str, Any]:
        """The example construction keywords, updated with ``overrides``."""
        return {**self.example, **overrides}


class Registry:
    """A registry of one operator family (``kind`` names it in messages)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def register(
        self,
        name: str,
        *,
        defaults: Mapping[str, Any] | None = None,
        example: Mapping[str, Any] | None = None,
        summary: str | None = None,
    ) -> Callable[[M], M]:
        """Class decorator; may be stacked to register named variants of one class."""

        def decorator(cls: M) -> M:
            self.add(name, cls, defaults=defaults, example=example, summary=summary)
            return cls

        return decorator

    def add(
        self,
        name: str,
        cls: type[nn.Module],
        *,
        defaults: Mapping[str, Any] | None = None,
        example: Mapping[str, Any] | None = None,
        summary: str | None = None,
    ) -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered (by {self._entries[name].cls.__name__})")
        doc = inspect.getdoc(cls) or ""
        entry = Entry(
            name=name,
            cls=cls,
            defaults=dict(defaults or {}),
            example=dict(example or {}),
            summary=summary if summary is not None else doc.splitlines()[0] if doc else "",
        )
        unknown = set(entry.defaults) - set(entry.accepted_keywords())
        if unknown:
            raise TypeError(f"{self.kind} {name!r}: defaults {sorted(unknown)} are not arguments of {cls.__name__}")
        self._entries[name] = entry

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entry(self, name: str) -> Entry:
        if not isinstance(name, str):
            raise TypeError(f"argument `name`: expected a str, got {type(name).__name__}")
        if name not in self._entries:
            close = difflib.get_close_matches(name, self._entries, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise ValueError(
                f"argument `name`: unknown {self.kind} {name!r}{hint} Registered: {', '.join(self.names())}"
            )
        return self._entries[name]

    def create(self, name: str, **kwargs: Any) -> nn.Module:
        entry = self.entry(name)
        accepted = entry.accepted_keywords()
        for key in kwargs:
            if key not in accepted:
                close = difflib.get_close_matches(key, accepted, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise TypeError(
                    f"create_{self.kind}({name!r}): unexpected keyword argument {key!r}{hint}; "
                    f"accepted: {', '.join(accepted)}"
                )
        for key in entry.defaults:
            if key in kwargs and kwargs[key] != entry.defaults[key]:
                raise TypeError(
                    f"create_{self.kind}({name!r}): keyword {key!r} is fixed to {entry.defaults[key]!r} by this "
                    f"variant; use the base operator to change it"
                )
        return entry.cls(**{**entry.defaults, **kwargs})

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self):
        return iter(self._entries[n] for n in self.names())

    def __len__(self) -> int:
        return len(self._entries)


UPSAMPLERS = Registry("upsampler")
DOWNSAMPLERS = Registry("downsampler")
PAIRS = Registry("pair")  # guided down/up pairs (resamplers.pairs)
POOLS = Registry("pool")  # global and pyramid pooling
BLOCKS = Registry("block")  # multi-scale blocks built on resamplers

register_upsampler = UPSAMPLERS.register
register_downsampler = DOWNSAMPLERS.register
register_pair = PAIRS.register
register_pool = POOLS.register
register_block = BLOCKS.register


def create_upsampler(name: str, **kwargs: Any) -> nn.Module:
    """Create a registered upsampler, e.g. ``create_upsampler('carafe', channels=256)``."""
    return UPSAMPLERS.create(name, **kwargs)


def create_downsampler(name: str, **kwargs: Any) -> nn.Module:
    """Create a registered downsampler, e.g. ``create_downsampler('max', scale_factor=2)``."""
    return DOWNSAMPLERS.create(name, **kwargs)


def list_upsamplers() -> list[str]:
    """Names of the registered upsamplers."""
    return UPSAMPLERS.names()


def list_downsamplers() -> list[str]:
    """Names of the registered downsamplers."""
    return DOWNSAMPLERS.names()


def create_pair(name: str, channels: int, **kwargs: Any) -> nn.Module:
    """Create a registered down/up pair, e.g. ``create_pair('indexnet_m2o', channels=64)``.

    Every registered upsampler is also a pair (its downsampler chosen with ``down=``).
    """
    return PAIRS.create(name, channels=channels, **kwargs)


def create_pool(name: str, **kwargs: Any) -> nn.Module:
    """Create a registered global or pyramid pool, e.g. ``create_pool('gem', channels=256)``."""
    return POOLS.create(name, **kwargs)


def create_block(name: str, **kwargs: Any) -> nn.Module:
    """Create a registered multi-scale block, e.g. ``create_block('strip_pooling', channels=256)``."""
    return BLOCKS.create(name, **kwargs)


def list_pairs() -> list[str]:
    """Names of the registered down/up pairs."""
    return PAIRS.names()


def list_pools() -> list[str]:
    """Names of the registered global and pyramid pools."""
    return POOLS.names()


def list_blocks() -> list[str]:
    """Names of the registered multi-scale blocks."""
    return BLOCKS.names()
