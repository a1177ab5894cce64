"""mkdocs hook: the operator family pages and their figures, generated from the registry.

At every build (``make docs``, ``mkdocs serve``) :func:`on_files` adds five pages under
``operators/`` (upsamplers, downsamplers, guided pairs, global pools, blocks) and one PNG
per operator under ``operators/figures/``; nothing is written into ``docs/``.  The rows
(name, parameter count at C = 256, summary) come from ``resamplers ops --markdown``'s code
path (:func:`resamplers.cli.ops.operator_rows`, which also writes the README's table), the
keywords from each entry's constructor and variant defaults, the text from the class
docstring (a mkdocstrings ``:::`` block).  Each figure runs the operator, built with its
registry example keywords (small channel counts) and its default initialisation, on a
32 x 32 test image; learned operators are untrained and their captions say so.

:func:`on_post_build` checks that the API reference covers every public symbol: each name
in the ``__all__`` of :data:`PUBLIC_MODULES` must be in the built site's object inventory
(a warning, so a failure under ``--strict``).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import io
import logging
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from matplotlib.figure import Figure
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from torch import Tensor
from torch.utils._pytree import tree_flatten

from resamplers.cli.ops import HEADERS, operator_rows
from resamplers.complexity import count_parameters
from resamplers.console import markdown_table
from resamplers.registry import BLOCKS, DOWNSAMPLERS, PAIRS, POOLS, UPSAMPLERS, Entry, Registry

log = logging.getLogger("mkdocs.hooks.resamplers")

# The modules whose `__all__` the API reference (docs/api/*.md) renders.
PUBLIC_MODULES = (
    "resamplers",
    "resamplers.functional",
    "resamplers.registry",
    "resamplers.base",
    "resamplers.upsampling",
    "resamplers.downsampling",
    "resamplers.global_pooling",
    "resamplers.guided",
    "resamplers.blocks",
    "resamplers.backbones",
    "resamplers.models",
    "resamplers.data",
    "resamplers.metrics",
    "resamplers.compare",
    "resamplers.integrations.mmengine",
    "resamplers.integrations.timm",
)

SIZE = 32  # the test image is SIZE x SIZE
BARS = 64  # a vector output shows its first BARS values


@dataclass(frozen=True)
class Family:
    registry: Registry
    path: str
    title: str
    create: str  # the factory's name
    intro: str


FAMILIES = (
    Family(
        UPSAMPLERS,
        "operators/upsamplers.md",
        "Upsamplers",
        "create_upsampler",
        "An upsampler maps `N x C x H x W` to `N x C x sH x sW` (`scale_factor = s`, 2 by default). "
        "FADE and SAPA are guided by the encoder feature of the target size: they are called as "
        "`up(d, encoder)`; FeatUp's JBU by an image of the target size, `up(d, guidance)`. Every upsampler is "
        "also a [guided pair](guided-pairs.md) of the same name.",
    ),
    Family(
        DOWNSAMPLERS,
        "operators/downsamplers.md",
        "Downsamplers",
        "create_downsampler",
        "A downsampler maps `N x C x H x W` to `N x C x H/s x W/s`. The local pools take torch's window "
        "arithmetic (`kernel_size`, `stride`, `padding`; window = stride = s by default); every downsampler "
        "also has `down(x) -> (y, guide)`, the down step of a [pair](guided-pairs.md).",
    ),
    Family(
        PAIRS,
        "operators/guided-pairs.md",
        "Guided pairs",
        "create_pair",
        "A pair is a down step and the up step that undoes it: `y, guide = pair.down(x)` in the encoder, "
        "`z = pair.up(d, guide)` in the decoder, `guide.skip` for the skip connection. The guided pairs "
        "below pass indices, index maps or affinities from `down` to `up`; every upsampler is a pair too "
        "([last section](#every-upsampler-is-a-pair)).",
    ),
    Family(
        POOLS,
        "operators/global-pools.md",
        "Global and pyramid pools",
        "create_pool",
        "Global pools reduce a map to a vector (or a small fixed grid: adaptive output sizes); pyramid pools "
        "concatenate pools of several sizes. The adaptive pools export to ONNX for every input and output size.",
    ),
    Family(
        BLOCKS,
        "operators/blocks.md",
        "Multi-scale blocks",
        "create_block",
        "Blocks built on the resamplers: strip pooling, selective kernels, HRNet's exchange unit and the HRNet "
        "backbone (whose fusion upsamples with any registered upsampler).",
    ),
)


# -- mkdocs events -------------------------------------------------------------------------


def on_files(files: Files, config: MkDocsConfig) -> Files:
    start = time.perf_counter()
    torch.set_num_threads(1)
    rows = _rows_by_kind()
    for family in FAMILIES:
        page, figures = render_family(family, rows[family.registry.kind])
        files.append(File.generated(config, family.path, content=page))
        for name, png in figures.items():
            files.append(File.generated(config, f"operators/figures/{name}", content=png))
    log.info("operator pages and figures generated in %.1f s", time.perf_counter() - start)
    return files


def on_post_build(config: MkDocsConfig) -> None:
    """Warn about every public name the API reference does not render."""
    rendered = _inventory(Path(config.site_dir) / "objects.inv")
    for module in PUBLIC_MODULES:
        for name in _declared_names(module):
            # A function named like the submodule that defines it is rendered from there.
            if f"{module}.{name}" not in rendered and f"{module}.{name}.{name}" not in rendered:
                log.warning("API reference: %s.%s is in __all__ but not rendered (docs/api/)", module, name)


def _declared_names(module: str) -> list[str]:
    """A module's ``__all__`` read from its source, so that an integration whose framework
    does not import here (timm needs a working torchvision) is still checked."""
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None, f"{module} is not installed"
    names: list[str] = []
    for node in ast.parse(Path(spec.origin).read_text()).body:
        if isinstance(node, (ast.Assign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(target, ast.Name) and target.id == "__all__" for target in targets):
                try:
                    names += list(ast.literal_eval(node.value))
                except ValueError:  # built from other lists: import the module instead
                    return list(importlib.import_module(module).__all__)
    return names or list(importlib.import_module(module).__all__)


def _inventory(path: Path) -> set[str]:
    """The object names of a Sphinx ``objects.inv`` (four header lines, then zlib)."""
    body = path.read_bytes().split(b"\n", 4)[4]
    return {line.split(" ", 1)[0] for line in zlib.decompress(body).decode().splitlines()}


def _rows_by_kind() -> dict[str, dict[str, list[str]]]:
    """``resamplers ops`` rows (the README table's), by kind and bare name."""
    by_kind: dict[str, dict[str, list[str]]] = {family.registry.kind: {} for family in FAMILIES}
    for row in operator_rows():
        by_kind[row[0]][row[1].strip("`")] = row
    return by_kind


# -- pages ---------------------------------------------------------------------------------


def render_family(family: Family, rows: dict[str, list[str]]) -> tuple[str, dict[str, bytes]]:
    registry = family.registry
    entries = [registry.entry(name) for name in rows]
    unguided = [e for e in entries if registry is PAIRS and _is_unguided_pair(e)]
    shown = [e for e in entries if e not in unguided]
    lines = [
        f"# {family.title}",
        "",
        family.intro,
        "",
        f"This page is generated from the registry (`resamplers.registry.{registry.kind.upper()}S`) when the site "
        f"is built; `resamplers.{family.create}(name, **kwargs)` builds an operator, `resamplers ops` lists them.",
        "",
        markdown_table(
            HEADERS[1:], [[f"[{r[1]}](#{_slug(r[1])})", *map(_cell, r[2:])] for r in (rows[e.name] for e in shown)]
        ),
        "",
    ]
    figures: dict[str, bytes] = {}
    documented: dict[type, str] = {}
    for entry in shown:
        figure_name = f"{registry.kind}-{entry.name}.png"
        png, caption = operator_figure(registry, entry)
        figures[figure_name] = png
        lines += render_entry(family, entry, rows[entry.name], figure_name, caption, documented)
    if unguided:
        lines += render_unguided_pairs(unguided, rows)
    return "\n".join(lines) + "\n", figures


def render_entry(
    family: Family, entry: Entry, row: list[str], figure: str, caption: str, documented: dict[type, str]
) -> list[str]:
    cls = entry.cls
    path = f"{cls.__module__}.{cls.__qualname__}"
    example = ", ".join(f"{k}={v!r}" for k, v in entry.example_kwargs().items())
    lines = [
        f"## `{entry.name}`",
        "",
        _markdown(entry.summary),
        "",
        f"`resamplers.{family.create}({entry.name!r}, {example})` builds a small one; {row[2]} parameters at "
        f"`channels=256`, scale 2. Class: [`{cls.__name__}`][{path}]"
        + (f" (documented with [`{documented[cls]}`](#{_slug(documented[cls])}))." if cls in documented else "."),
        "",
        "Keywords: " + ", ".join(_keywords(entry)) + ".",
        "",
        '<figure markdown="span">',
        f"  ![{entry.name} on the test image](figures/{figure})",
        f"  <figcaption>{caption}</figcaption>",
        "</figure>",
        "",
    ]
    if cls not in documented:
        documented[cls] = entry.name
        lines += [
            f"::: {path}",
            "    options:",
            "      heading_level: 3",
            "      show_root_toc_entry: false",
            "      show_root_full_path: false",
            "      members: false",
            "",
        ]
    return lines


def render_unguided_pairs(entries: list[Entry], rows: dict[str, list[str]]) -> list[str]:
    table = [
        [
            f"`{e.name}`",
            f"[`{e.defaults['upsampler']}`](upsamplers.md#{_slug(e.defaults['upsampler'])})",
            rows[e.name][2],
        ]
        for e in entries
    ]
    return [
        "## Every upsampler is a pair",
        "",
        "Each registered upsampler (also one registered later, by user code or a plug-in) is a pair of the same "
        "name: its down step is a registered downsampler (`down='max'`, 2x2 max pooling, by default; any other "
        "via `down=`), its up step the upsampler, whose own keywords pass through "
        "(`create_pair('carafe', channels=64, up_kernel=3)`). Feature-guided upsamplers (FADE, SAPA, FeatUp's "
        "JBU) read `guide.encoder`.",
        "",
        markdown_table(["pair", "upsampler", "parameters at C=256, scale 2"], table),
        "",
        "::: resamplers.guided.composed.ComposedPair",
        "    options:",
        "      heading_level: 3",
        "      show_root_full_path: false",
        "      members: false",
        "",
    ]


def _keywords(entry: Entry) -> Iterable[str]:
    """The constructor's keywords with their defaults; a variant's fixed keywords say so."""
    params = inspect.signature(entry.cls.__init__).parameters
    for name in entry.accepted_keywords():
        if name in entry.defaults:
            yield f"`{name}={entry.defaults[name]!r}` (fixed by this variant)"
        elif name in params:
            default = params[name].default
            yield f"`{name}`" if default is inspect.Parameter.empty else f"`{name}={default!r}`"
        else:
            target = next(t for t, keys in entry.forwarded.items() if name in keys)
            yield f"`{name}` (passed on in `{target}`)"


def _is_unguided_pair(entry: Entry) -> bool:
    # The same test as `resamplers bench` uses: a pair derived from an upsampler.
    return "upsampler" in entry.defaults


def _markdown(text: str) -> str:
    """Plain text (a registry summary) as Markdown: ``*`` is a product there, not emphasis."""
    return text.replace("*", "\\*")


def _cell(text: str) -> str:
    return _markdown(text).replace("|", "\\|")


def _slug(name: str) -> str:
    """The anchor the toc extension gives the heading ``## `name` ``."""
    return name.strip("`").lower()


# -- figures -------------------------------------------------------------------------------


def pattern_image(height: int, width: int) -> Tensor:
    """A checkerboard (8 x 8 cells at SIZE), a bright ring and a one-pixel diagonal line, in [0, 1].

    Defined on the unit square, so the same picture at any size: hard edges show
    interpolation and aliasing, the thin line what pooling keeps.
    """
    v = (torch.arange(height, dtype=torch.float64) + 0.5) / height
    u = (torch.arange(width, dtype=torch.float64) + 0.5) / width
    y, x = torch.meshgrid(v, u, indexing="ij")
    cells = SIZE // 8
    checker = ((torch.floor(x * cells) + torch.floor(y * cells)) % 2) * 0.3 + 0.2
    radius = torch.sqrt((x - 0.5) ** 2 + (y - 0.5) ** 2)
    image = torch.where((radius > 0.25) & (radius < 0.34), torch.ones_like(x), checker)
    line = (torch.abs(x - y) < 0.5 / min(height, width)) & (x > 0.6)
    return torch.where(line, torch.full_like(x, 0.9), image).float()


def _input_like(shape: tuple[int, ...]) -> Tensor:
    n, c, h, w = shape
    return pattern_image(h, w).expand(n, c, h, w).contiguous()


Panel = tuple[str, Tensor]  # a title and a 2-D map, or a 1-D vector (drawn as bars)


@torch.no_grad()
def operator_figure(registry: Registry, entry: Entry) -> tuple[bytes, str]:
    torch.manual_seed(0)
    module = entry.build(**entry.example_kwargs()).eval()
    shapes = module.input_shapes(1, SIZE, SIZE)
    inputs = [_input_like(tuple(shape)) for shape in shapes]
    names = list(module.input_names) if not module.list_input else [f"branch {i}" for i in range(len(inputs))]
    panels: list[Panel] = [(f"{name}\n{_shape(x)}", x[0, 0]) for name, x in zip(names, inputs)]
    if registry is PAIRS:
        y, guide = module.down(inputs[0])
        z = module.up(y, guide)
        panels += [(f"down\n{_shape(y)}", y[0, 0]), (f"up(down)\n{_shape(z)}", z[0, 0])]
        what = "the input, channel 0 of <code>down(x)</code> and of the round trip <code>up(*down(x))</code>"
    else:
        out = module(inputs) if module.list_input else module(*inputs)
        outputs = [t for t in tree_flatten(out)[0] if isinstance(t, Tensor)]
        output_panels = _output_panels(outputs, inputs[0].shape[1])
        panels += output_panels
        if any("[" in title for title, _ in output_panels):
            what = "the input and the first channel of each C-channel block of the concatenated output"
        elif any(data.dim() == 1 for _, data in output_panels):
            what = "the input and the output vector"
        else:
            what = "the input and channel 0 of the output" + ("s" if len(outputs) > 1 else "")
    learned = count_parameters(module) > 0
    weights = (
        "untrained: the default initialisation, seed 0"
        if learned
        else "no learned weights: this is the operator itself"
    )
    caption = (
        f"<code>{entry.name}</code> (eval mode) on the {SIZE} x {SIZE} test image (the same picture in every "
        f"channel): "
        f"{what}; {weights}."
    )
    return _draw(panels), caption


def _output_panels(outputs: list[Tensor], channels: int) -> list[Panel]:
    panels: list[Panel] = []
    for i, t in enumerate(outputs):
        label = "output" if len(outputs) == 1 else f"output {i}"
        if t.dim() == 4 and t.shape[-2] * t.shape[-1] > 1:
            # One output of k * C channels concatenates k maps (catavgmax, spp): show each.
            blocks = t.shape[1] // channels if len(outputs) == 1 and t.shape[1] % channels == 0 else 1
            for b in range(min(blocks, 4)):
                suffix = f" [{b}C]" if blocks > 1 else ""
                panels.append((f"{label}{suffix}\n{_shape(t)}", t[0, b * channels]))
        else:
            vector = t.reshape(t.shape[0], -1)[0]
            first = f" (first {BARS})" if vector.numel() > BARS else ""
            panels.append((f"{label}{first}\n{_shape(t)}", vector[:BARS]))
    return panels


def _shape(t: Tensor) -> str:
    return " x ".join(str(s) for s in t.shape)


def _draw(panels: list[Panel]) -> bytes:
    figure = Figure(figsize=(1.7 * len(panels), 2.0), dpi=80, layout="constrained")
    for axes, (title, data) in zip(figure.subplots(1, len(panels), squeeze=False)[0], panels):
        data = data.float()
        if data.dim() == 2:
            low, high = float(data.min()), float(data.max())
            axes.imshow(data.numpy(), cmap="gray", interpolation="nearest", vmin=low, vmax=max(high, low + 1e-6))
            axes.set_xticks([])
            axes.set_yticks([])
        else:
            axes.bar(range(data.numel()), data.numpy(), width=1.0, color="0.3")
            axes.tick_params(labelsize=6)
            axes.set_xticks([])
        axes.set_title(title, fontsize=7)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
