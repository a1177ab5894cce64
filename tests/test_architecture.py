"""The layering of ARCHITECTURE.md, checked on the source: what may import what.

Every module of the package belongs to one layer; a module may import only from its own
top-level package or from lower layers (imports inside functions count too).  The
operator library (layers up to ``complexity``) imports none of the application, and
``import resamplers`` loads none of it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import resamplers

PACKAGE = Path(resamplers.__file__).parent

# Bottom to top; entries on one line share a layer and must not import each other.
LAYERS: list[tuple[str, ...]] = [
    ("_checks",),
    ("_native", "core"),
    ("functional",),
    ("registry",),
    ("base",),
    ("components",),
    ("upsampling", "downsampling", "global_pooling"),
    ("guided", "blocks"),
    ("backbones",),
    ("complexity",),
    ("__init__",),  # the library's public face: imports every operator family
    ("integrations",),  # bridges to other frameworks, on demand: the library only, never the application
    # The application, above the library.
    ("storage", "console"),
    ("export",),
    ("bench",),
    ("data",),
    ("metrics",),
    ("models",),
    ("training",),
    ("compare",),
    ("cli",),
]
LIBRARY = {name for layer in LAYERS[: LAYERS.index(("__init__",)) + 1] for name in layer}
LEVEL = {name: level for level, layer in enumerate(LAYERS) for name in layer}


def top_level(path: Path) -> str:
    """The top-level part of the package a source file belongs to (``__init__`` for the package file)."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


def imported_parts(path: Path) -> set[str]:
    """Top-level parts of ``resamplers`` that ``path`` imports, anywhere in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ["resamplers", *path.relative_to(PACKAGE).parent.parts]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
                names = [module] if node.module else [f"{module}.{alias.name}" for alias in node.names]
            else:
                names = [node.module or ""]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "resamplers":
                found.add(parts[1] if len(parts) > 1 and _is_module(parts[1]) else "__init__")
    return found


def _is_module(name: str) -> bool:
    """Whether ``resamplers.<name>`` is a module or package (not a name defined in ``__init__``)."""
    return (PACKAGE / name).is_dir() or (PACKAGE / f"{name}.py").exists() or any(PACKAGE.glob(f"{name}.*.so"))


SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_part_of_the_package_has_a_layer():
    parts = {top_level(p) for p in SOURCES} | {p.name.split(".")[0] for p in PACKAGE.glob("_native*.so")}
    assert parts <= set(LEVEL), f"add {sorted(parts - set(LEVEL))} to LAYERS and ARCHITECTURE.md"


@pytest.mark.parametrize("path", SOURCES, ids=[str(p.relative_to(PACKAGE)) for p in SOURCES])
def test_imports_point_down(path):
    own = top_level(path)
    for part in imported_parts(path) - {own}:
        if own == "__init__":
            assert part in LIBRARY, f"the package's __init__ imports the application part {part!r}"
            continue
        assert LEVEL[part] < LEVEL[own], (
            f"{path.relative_to(PACKAGE)} (layer {LAYERS[LEVEL[own]]}) imports {part!r} "
            f"(layer {LAYERS[LEVEL[part]]}), which is not below it"
        )


def test_importing_the_library_loads_no_application_module_and_no_framework():
    code = "import sys, resamplers; print(' '.join(sorted(m.split('.')[0] + ':' + m for m in sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    ours = [m.split(":", 1)[1] for m in loaded if m.startswith("resamplers:")]
    application = sorted({m.split(".")[1] for m in ours if "." in m} - LIBRARY)
    assert not application, f"`import resamplers` loaded application modules: {application}"
    frameworks = sorted({m.split(":")[0] for m in loaded} & {"mmengine", "mmcv", "timm", "torchvision"})
    assert not frameworks, f"`import resamplers` loaded frameworks the integrations bridge to: {frameworks}"
