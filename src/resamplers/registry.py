"""Name-based registries and ``create_*`` factories.

Each operator family has a :class:`Registry`.  An entry records the operator's class,
fixed keyword arguments for named variants (``dysample_plus`` is ``dysample`` with
``dyscope=True``), a one-line summary and small example construction arguments that the
documentation, the benchmark and the shared test matrix use.

Creating an operator validates the keywords against the constructor's signature first,
so a typo raises ``TypeError`` naming the keyword and listing the accepted ones, and an
unknown name raises ``ValueError`` listing the close matches.

Operators register at any time: with the decorators when their module is imported (the
package's own, or user code after ``import resamplers``), or from another installed
package through the entry-point group :data:`ENTRY_POINT_GROUP` (``resamplers.operators``;
each entry point names a module to import, or a callable to call, that registers
operators), loaded the first time a registry is listed or misses a name.  A registry can
derive entries from another one when they are looked up: every upsampler is a pair.
"""

from __future__ import annotations

import importlib.metadata
import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from torch import nn

from ._checks import did_you_mean

__all__ = [
    "ENTRY_POINT_GROUP",
    "load_plugins",
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

ENTRY_POINT_GROUP = "resamplers.operators"


# Names of the plug-ins loaded so far; None until the first look-up loads them.
_plugins: list[str] | None = None


def load_plugins() -> tuple[str, ...]:
    """Import (or call) every ``resamplers.operators`` entry point once; returns their names.

    A plug-in that fails to load raises ``ImportError`` naming it, never silently skipped.
    A plug-in may itself use the registries while it loads (it sees the plug-ins before it).
    """
    global _plugins
    if _plugins is None:
        _plugins = []
        try:
            for point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
                try:
                    target = point.load()
                    if callable(target):
                        target()
                except Exception as error:
                    raise ImportError(
                        f"resamplers plug-in {point.name!r} ({point.value}) failed to load: {error}"
                    ) from error
                _plugins.append(point.name)
        except ImportError:
            _plugins = None  # report it again at the next look-up
            raise
    return tuple(_plugins)


@dataclass(frozen=True)
class Entry:
    """One registered operator (or a named variant of one)."""

    name: str
    cls: type[Any]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    example: Mapping[str, Any] = field(default_factory=dict)
    summary: str = ""
    # Keywords gathered into one dict argument of ``cls``: {"up_kwargs": ("up_kernel", ...)}.
    forwarded: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def own_keywords(self) -> list[str]:
        params = inspect.signature(self.cls.__init__).parameters
        return [p for p in params if p != "self" and params[p].kind is not inspect.Parameter.VAR_KEYWORD]

    def accepted_keywords(self) -> list[str]:
        own = self.own_keywords()
        return own + [k for keys in self.forwarded.values() for k in keys if k not in own]

    def build(self, **kwargs: Any) -> nn.Module:
        """Construct the operator; forwarded keywords go into their dict argument."""
        own = set(self.own_keywords())
        arguments = {**self.defaults, **{k: v for k, v in kwargs.items() if k in own}}
        for target, keys in self.forwarded.items():
            gathered = {k: kwargs[k] for k in keys if k in kwargs and k not in own}
            if gathered:
                arguments[target] = {**dict(arguments.get(target) or {}), **gathered}
        return self.cls(**arguments)

    def example_kwargs(self, **overrides: Any) -> dict[str, Any]:
        """The example construction keywords, updated with ``overrides``."""
        return {**self.example, **overrides}


class Registry:
    """A registry of one family: an operator family, or the application's tasks (``kind`` names it in messages)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry] = {}
        self._derivations: list[tuple[Registry, Callable[[Entry], Entry]]] = []

    def derive_from(self, source: Registry, make_entry: Callable[[Entry], Entry]) -> None:
        """Give every entry of ``source`` without an entry of its name here the entry
        ``make_entry(source_entry)``, decided at look-up (so later registrations count)."""
        self._derivations.append((source, make_entry))

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
        cls: type[Any],
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
        load_plugins()
        derived = {name for source, _ in self._derivations for name in source.names()}
        return sorted(set(self._entries) | derived)

    def _find(self, name: str) -> Entry | None:
        if name in self._entries:
            return self._entries[name]
        for source, make_entry in self._derivations:
            if name in source:
                return make_entry(source.entry(name))
        return None

    def entry(self, name: str, *, argument: str = "name") -> Entry:
        """The entry registered as ``name``; an unknown name raises ``ValueError`` naming
        ``argument`` (the caller's name for it, e.g. ``--task``) and the close matches."""
        if not isinstance(name, str):
            raise TypeError(f"argument `{argument}`: expected a str, got {type(name).__name__}")
        found = self._find(name)
        if found is None and load_plugins():
            found = self._find(name)
        if found is None:
            names = self.names()
            raise ValueError(
                f"argument `{argument}`: unknown {self.kind} {name!r}{did_you_mean(name, names)} "
                f"Registered: {', '.join(names)}"
            )
        return found

    def create(self, name: str, **kwargs: Any) -> nn.Module:
        entry = self.entry(name)
        accepted = entry.accepted_keywords()
        for key in kwargs:
            if key not in accepted:
                hint = did_you_mean(key, accepted, n=1) or "."
                raise TypeError(
                    f"create_{self.kind}({name!r}): unexpected keyword argument {key!r}{hint} "
                    f"Accepted: {', '.join(accepted)}"
                )
        for key in entry.defaults:
            if key in kwargs and kwargs[key] != entry.defaults[key]:
                raise TypeError(
                    f"create_{self.kind}({name!r}): keyword {key!r} is fixed to {entry.defaults[key]!r} by this "
                    f"variant; use the base operator to change it"
                )
        return entry.build(**kwargs)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        return self._find(name) is not None or (bool(load_plugins()) and self._find(name) is not None)

    def __iter__(self) -> Iterator[Entry]:
        return iter([self.entry(n) for n in self.names()])

    def __len__(self) -> int:
        return len(self.names())


UPSAMPLERS = Registry("upsampler")
DOWNSAMPLERS = Registry("downsampler")
PAIRS = Registry("pair")  # down/up pairs (resamplers.guided); every upsampler is one
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


def create_pair(name: str, **kwargs: Any) -> nn.Module:
    """Create a registered down/up pair, e.g. ``create_pair('indexnet_m2o', channels=64)``.

    Every registered upsampler is also a pair (its downsampler chosen with ``down=``, its
    own keywords passed as they are), including upsamplers registered later.
    """
    return PAIRS.create(name, **kwargs)


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
