"""The Debian fetch with fake apt-get / dpkg-deb on PATH: idempotence, progress, checks, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("PIL")

from data_helpers import install_fake_apt, log_lines, write_fake_tree  # noqa: E402
from resamplers.cli import main  # noqa: E402
from resamplers.data import PACKAGES, DataError, DebianSource, default_root, fetch, listed_files  # noqa: E402


@pytest.fixture
def fake_apt(tmp_path, monkeypatch):
    """Fake tools first on PATH; they log to ``log`` and unpack a generated tree of every listed file."""
    tree = tmp_path / "fake-tree"
    write_fake_tree(tree)
    install_fake_apt(tmp_path / "bin")
    log = tmp_path / "apt.log"
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}")
    monkeypatch.setenv("FAKE_LOG", str(log))
    monkeypatch.setenv("FAKE_TREE", str(tree))
    return log


def test_shipped_lists():
    foregrounds, backgrounds = listed_files("foregrounds"), listed_files("backgrounds")
    assert len(foregrounds) == 188 and len(backgrounds) == 55
    assert len(set(foregrounds)) == 188 and len(set(backgrounds)) == 55
    assert all(path.startswith("usr/share/tuxpaint/stamps/") for path in foregrounds)
    with pytest.raises(ValueError, match="`kind`"):
        listed_files("fg")


def test_fetch_downloads_unpacks_checks_and_is_idempotent(fake_apt, tmp_path):
    root = tmp_path / "data"
    events = []
    report = fetch(root, progress=lambda stage, done, total, item: events.append((stage, done, total)))
    assert report.ok and report.checked == 188 + 55
    assert report.downloaded == list(PACKAGES) and report.unpacked == list(PACKAGES)
    assert sorted(p.name for p in (root / "debs").iterdir()) == sorted(f"{p}_1.0_all.deb" for p in PACKAGES)
    assert not list((root / "root").rglob("*.ogg"))  # spoken descriptions dropped
    assert ("download", 6, 6) in events and ("unpack", 6, 6) in events and ("check", 243, 243) in events
    calls = log_lines(fake_apt)
    assert len(calls) == 12

    again = fetch(root)
    assert again.ok and again.downloaded == [] and again.unpacked == []
    assert again.already_downloaded == list(PACKAGES) and again.already_unpacked == list(PACKAGES)
    assert log_lines(fake_apt) == calls  # no tool ran

    # An unpack that did not finish (no marker) is redone, and only that one.
    marker = next((root / ".unpacked").glob("mate-backgrounds_*"))
    marker.unlink()
    assert fetch(root).unpacked == ["mate-backgrounds"]
    assert log_lines(fake_apt)[-1] == "unpack mate-backgrounds_1.0_all.deb"


def test_missing_and_unreadable_files_are_reported_by_name(fake_apt, tmp_path, capsys):
    root = tmp_path / "data"
    fetch(root)
    gone, broken = listed_files("foregrounds")[3], listed_files("backgrounds")[5]
    (root / "root" / gone).unlink()
    (root / "root" / broken).write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    report = fetch(root)
    assert report.missing == [gone]
    assert [path for path, _ in report.unreadable] == [broken]
    assert main(["data", "fetch", "--root", str(root)]) == 1
    out = capsys.readouterr().out
    assert f"missing: {gone}" in out and f"unreadable: {broken}" in out


def test_without_apt_the_error_says_what_to_do(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(DataError) as info:
        fetch(tmp_path / "data")
    message = str(info.value)
    assert "apt-get" in message and "synthetic" in message and "folder:PATH" in message
    assert main(["data", "fetch", "--root", str(tmp_path / "data")]) == 1
    assert "was not found" in capsys.readouterr().err


def test_a_failed_download_names_the_package_and_leaves_no_partial_deb(fake_apt, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_FAIL", "mate-backgrounds")
    root = tmp_path / "data"
    with pytest.raises(DataError) as info:
        fetch(root)
    assert "apt-get download mate-backgrounds" in str(info.value) and "apt-get update" in str(info.value)
    assert "Unable to locate package" in str(info.value)
    assert not list((root / "debs").glob("mate-backgrounds*")) and not list((root / "debs").glob(".download-*"))
    monkeypatch.delenv("FAKE_FAIL")
    assert fetch(root).downloaded == ["mate-backgrounds", *PACKAGES[3:]]  # the rest, then done


def test_default_root_honours_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("RESAMPLERS_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_root() == tmp_path / "cache" / "resamplers" / "data"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_root() == Path.home() / ".cache" / "resamplers" / "data"
    monkeypatch.setenv("RESAMPLERS_DATA", str(tmp_path / "mine"))
    assert default_root() == tmp_path / "mine"


def test_debian_source_reads_the_fetched_tree(fake_apt, tmp_path):
    with pytest.raises(DataError, match="resamplers data fetch"):
        DebianSource(tmp_path / "data")
    fetch(tmp_path / "data")
    source = DebianSource(tmp_path / "data")
    train, test = source.foregrounds("train"), source.foregrounds("test")
    assert not set(train) & set(test) and len(train) + len(test) == 188
    assert not set(source.backgrounds("train")) & set(source.backgrounds("test"))
    fg = source.load_foreground(test[0])
    assert fg.color.shape == (20, 24, 3) and fg.alpha.max() == 1.0
    assert source.load_background(source.backgrounds("test")[0], 16).shape[:2] == (16, 19)
    (source.tree / test[1]).unlink()
    with pytest.raises(DataError, match=test[1].replace(".", r"\.")):
        source.load_foreground(test[1])
