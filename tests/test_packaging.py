"""Packaging: ``python -m build`` makes an sdist and a wheel that install and work.

Each test builds from a copy of the source tree in a temporary folder (the repository's
``build/`` and its in-place ``_native*.so`` are never touched nor packed), installs the
archive into a fresh virtual environment on a ``PATH`` without a C compiler, and runs the
README's Python example there:

* the wheel carries the compiled kernels, so ``native_available()`` is True although no
  compiler can be found at install time;
* the sdist installs without a compiler too (the extension is optional), and the library
  then runs on its pure-PyTorch path.

Nothing is downloaded.  The fresh environment is made with ``venv --without-pip`` and a
``.pth`` file that appends this interpreter's site-packages to its ``sys.path``, so torch,
numpy, onnx, pip and setuptools resolve to the copies already installed (a .pth line is a
plain path: the editable install's own .pth in that folder is not processed, so the
repository's ``src`` stays out of the new environment).  ``venv --system-site-packages``
would not do: this interpreter is itself a virtual environment, and that flag reaches only
the base interpreter's packages.  pip then installs the one archive with ``--no-deps
--no-index --ignore-installed`` (the last because the development install of the same
name and version is visible through the .pth), builds the sdist with
``--no-build-isolation`` against the visible setuptools, and installs into the new
environment's own site-packages, which comes first on its ``sys.path``.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
# What the sdist is made from (MANIFEST.in says what of it goes in).
SOURCE_FILES = ["pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "CHANGELOG.md", "LICENSE"]
COMPILERS = ["cc", "gcc", "clang", "c99", "x86_64-linux-gnu-gcc"]
TIMEOUT = 300

pytestmark = pytest.mark.slow


def _version() -> str:
    """The one place the version is written: ``__version__`` in the package's ``__init__``."""
    tree = ast.parse((ROOT / "src" / "resamplers" / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__version__" for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError("no __version__ in src/resamplers/__init__.py")


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, **kwargs)
    assert result.returncode == 0, (
        f"{' '.join(map(str, cmd))} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    )
    return result


def _copy_source(tmp: Path) -> Path:
    source = tmp / "source"
    source.mkdir()
    for name in SOURCE_FILES:
        assert (ROOT / name).is_file(), f"{name} is missing at the repository root"
        shutil.copy2(ROOT / name, source / name)
    ignore = shutil.ignore_patterns("*.so", "*.pyd", "*.dylib", "__pycache__", "*.egg-info", "*.py[cod]")
    shutil.copytree(ROOT / "src", source / "src", ignore=ignore)
    return source


def _build(source: Path, out: Path, *flags: str) -> None:
    assert importlib.util.find_spec("build"), "`build` is missing: install the dev extra (pip install -e '.[dev]')"
    # --no-isolation: the build backend (setuptools) is the one installed here, no download.
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), *flags, str(source)], cwd=source)


def _fresh_venv(tmp: Path) -> Path:
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    reuse = dict.fromkeys(
        [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], str(Path(torch.__file__).parents[1])]
    )
    (site / "_reuse_test_interpreter.pth").write_text("".join(f"{path}\n" for path in reuse))
    return python


def _no_compiler_env(venv_python: Path) -> dict[str, str]:
    """The environment for install and use: ``PATH`` holds only the new environment's
    ``bin`` (python, pip's scripts), ``CC`` points nowhere, pip reads no user config."""
    path = str(venv_python.parent)
    for compiler in COMPILERS:
        assert shutil.which(compiler, path=path) is None, compiler
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIP_", "RESAMPLERS_", "VIRTUAL_ENV"))}
    env.update(
        PATH=path,
        CC="/nonexistent",
        CXX="/nonexistent",
        LDSHARED="/nonexistent",
        PIP_CONFIG_FILE=os.devnull,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PYTHONNOUSERSITE="1",
    )
    return env


def _pip_install(python: Path, archive: Path, env: dict[str, str]) -> str:
    cmd = [str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed", "--no-cache-dir"]
    return _run([*cmd, "--no-build-isolation", str(archive)], env=env, cwd=archive.parent).stdout


def _readme_example() -> str:
    """The first Python block under the README's "Python example" heading."""
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"^## Python example\n.*?```python\n(.*?)```", readme, flags=re.M | re.S)
    assert match, "README.md has no ```python block under '## Python example'"
    return match.group(1)


# Runs in the new environment after the README's code; prints what the test checks.
CHECKS = """
import importlib.metadata, json
import resamplers.functional as F
assert tuple(y.shape) == (1, 64, 64, 96), y.shape
import onnxruntime
session = onnxruntime.InferenceSession("carafe.onnx", providers=["CPUExecutionProvider"])
x2 = torch.randn(1, 64, 20, 28)
(out,) = session.run(None, {session.get_inputs()[0].name: x2.numpy()})
with torch.no_grad():
    torch.testing.assert_close(torch.from_numpy(out), up(x2), rtol=1e-4, atol=1e-4)
print(json.dumps({
    "file": resamplers.__file__,
    "version": resamplers.__version__,
    "metadata_version": importlib.metadata.version("resamplers"),
    "native": F.native_available(),
}))
"""


def _run_example(python: Path, env: dict[str, str], cwd: Path) -> dict:
    script = cwd / "readme_example.py"
    script.write_text(_readme_example() + CHECKS)
    out = _run([str(python), str(script)], env=env, cwd=cwd).stdout
    return json.loads(out.strip().splitlines()[-1])


def _check_installed(info: dict, python: Path, env: dict[str, str], native: bool) -> None:
    version = _version()
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    assert Path(info["file"]).is_relative_to(site), f"resamplers imported from {info['file']}, not the new environment"
    assert info["version"] == info["metadata_version"] == version
    assert info["native"] is native
    # the console script, from the version's one place
    result = _run([str(python.parent / "resamplers"), "--version"], env=env)
    assert result.stdout.strip() == f"resamplers {version}"


def test_version_is_defined_once() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", _version())


def test_wheel_installs_without_a_compiler_and_carries_the_kernels(tmp_path: Path) -> None:
    if not any(shutil.which(compiler) for compiler in COMPILERS) and not os.environ.get("CC"):
        pytest.skip("no C compiler to build the wheel's kernels with")
    source = _copy_source(tmp_path)
    dist = tmp_path / "dist"
    # sdist, then the wheel built from that sdist: the sdist must hold what the kernels need
    _build(source, dist)
    version = _version()
    (wheel,) = dist.glob(f"resamplers-{version}-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(re.fullmatch(r"resamplers/_native\..*\.so", name) for name in names), "no compiled kernels in the wheel"
    assert "resamplers/py.typed" in names
    assert f"resamplers-{version}.dist-info/licenses/LICENSE" in names
    assert "resamplers/data/lists/foregrounds.txt" in names
    assert not any(name.endswith(".c") for name in names)
    metadata = zipfile.ZipFile(wheel).read(f"resamplers-{version}.dist-info/METADATA").decode()
    assert "License-Expression: Apache-2.0" in metadata
    assert "Provides-Extra: all" in metadata

    python = _fresh_venv(tmp_path)
    env = _no_compiler_env(python)
    _pip_install(python, wheel, env)
    info = _run_example(python, env, tmp_path)
    _check_installed(info, python, env, native=True)


def test_sdist_installs_without_a_compiler_on_the_torch_path(tmp_path: Path) -> None:
    source = _copy_source(tmp_path)
    # an in-place build of the kernels in the tree must stay out of the sdist
    (source / "src" / "resamplers" / f"_native{sysconfig.get_config_var('EXT_SUFFIX')}").write_bytes(b"not packed")
    dist = tmp_path / "dist"
    _build(source, dist, "--sdist")
    version = _version()
    (sdist,) = dist.glob(f"resamplers-{version}.tar.gz")
    top = f"resamplers-{version}/"
    with tarfile.open(sdist) as archive:
        names = {name.removeprefix(top) for name in archive.getnames()}
    for name in [*SOURCE_FILES, "src/resamplers/_native.c", "src/resamplers/py.typed"]:
        assert name in names, f"{name} is not in the sdist"
    assert not any(name.endswith((".so", ".pyc")) for name in names), "a binary in the sdist"

    python = _fresh_venv(tmp_path)
    env = _no_compiler_env(python)
    log = _pip_install(python, sdist, env)
    assert "Successfully installed resamplers" in log
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    assert not list((site / "resamplers").glob("_native*")), "kernels built although no compiler was reachable"
    info = _run_example(python, env, tmp_path)
    _check_installed(info, python, env, native=False)
