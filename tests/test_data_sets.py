"""Sources, training composites, the fixed test set and the benchmark-folder loaders."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("scipy")
pytest.importorskip("PIL")

from data_helpers import tiny_synthetic, write_image  # noqa: E402
from resamplers.cli import main  # noqa: E402
from resamplers.data import (  # noqa: E402
    DataError,
    FolderSource,
    MattingFolder,
    MattingTestSet,
    SyntheticSource,
    TrainingComposites,
    open_matting_folder,
    open_source,
    split_names,
    write_test_set,
)

KEYS = {"image", "alpha", "trimap", "fg", "bg", "name", "thin"}


def check_sample(sample: dict, size: tuple[int, int], own_trimap: bool = True) -> None:
    h, w = size
    assert sample["image"].shape == (3, h, w) and sample["image"].dtype == torch.float32
    assert sample["alpha"].shape == (1, h, w) and sample["trimap"].shape == (h, w)
    assert sample["trimap"].dtype == torch.uint8
    assert set(sample["trimap"].unique().tolist()) <= {0, 128, 255}
    for key in ("image", "alpha", "fg", "bg"):
        if key in sample:
            values = sample[key] * 255
            assert values.min() >= 0 and values.max() <= 255
            torch.testing.assert_close(values, values.round(), atol=1e-4, rtol=0)  # 8-bit values
    alpha8 = (sample["alpha"][0] * 255).round()
    if own_trimap:  # made by make_trimap: every fractional pixel is unknown
        fractional = (alpha8 > 0) & (alpha8 < 255)
        assert (sample["trimap"][fractional] == 128).all()
    if "fg" in sample:  # the composite is exactly the 8-bit composition of its layers
        a = alpha8.double()
        fg, bg = ((sample[k].double() * 255).round() for k in ("fg", "bg"))
        expected = torch.round((a * fg + (255 - a) * bg) / 255)
        torch.testing.assert_close((sample["image"].double() * 255).round(), expected, atol=0, rtol=0)


# ---- sources and splits ---------------------------------------------------------------------------


def test_split_is_disjoint_complete_and_stable():
    names = [f"item-{i}" for i in range(400)]
    train, test = split_names(names, "train"), split_names(names, "test")
    assert not set(train) & set(test) and sorted(train + test) == sorted(names)
    assert 0.18 < len(test) / len(names) < 0.32
    assert split_names(names[::-1], "test") == test[::-1]  # a name's part does not depend on the others
    with pytest.raises(ValueError, match="`part`"):
        split_names(names, "val")


def test_synthetic_source_is_deterministic_and_soft():
    a, b = tiny_synthetic(), tiny_synthetic()
    fg_a, fg_b = a.load_foreground("synthetic/fg-0004"), b.load_foreground("synthetic/fg-0004")
    np.testing.assert_array_equal(fg_a.alpha, fg_b.alpha)
    np.testing.assert_array_equal(
        a.load_background("synthetic/bg-0001", 64), b.load_background("synthetic/bg-0001", 64)
    )
    assert not np.array_equal(fg_a.alpha, tiny_synthetic(seed=1).load_foreground("synthetic/fg-0004").alpha)
    soft = [((f.alpha > 0) & (f.alpha < 1)).mean() for f in map(a.load_foreground, a.foregrounds())]
    assert min(soft) > 0.01
    assert a.load_background("synthetic/bg-0000", 32).shape == (64, 64, 3)
    with pytest.raises(ValueError, match="`name`"):
        a.load_foreground("synthetic/fg-0099")
    with pytest.raises(ValueError, match="`foregrounds`"):
        SyntheticSource(foregrounds=0)


def test_open_source_names():
    assert open_source("synthetic").id.startswith("synthetic(")
    with pytest.raises(ValueError, match="`--source`"):
        open_source("imagenet")


# ---- training composites --------------------------------------------------------------------------


def test_training_composites_contract_and_determinism():
    source = tiny_synthetic()
    data = TrainingComposites(source, size=40, per_foreground=3, seed=5)
    assert len(data) == 3 * len(source.foregrounds("train"))
    sample = data[4]
    assert set(sample) == KEYS
    check_sample(sample, (40, 40))
    again = TrainingComposites(tiny_synthetic(), size=40, per_foreground=3, seed=5)[4]
    for key in ("image", "alpha", "trimap", "fg", "bg"):
        assert torch.equal(sample[key], again[key])
    data.set_epoch(1)
    assert not torch.equal(data[4]["image"], sample["image"])
    with pytest.raises(IndexError):
        data[len(data)]
    train_foregrounds = set(source.foregrounds("train"))
    assert train_foregrounds.isdisjoint(source.foregrounds("test"))
    assert data.foregrounds == source.foregrounds("train") and data.backgrounds == source.backgrounds("train")


def test_training_composites_are_the_same_with_any_number_of_workers():
    data = TrainingComposites(tiny_synthetic(), size=32, length=6, seed=1)

    def images(workers):
        loader = torch.utils.data.DataLoader(data, batch_size=2, num_workers=workers)
        return torch.cat([batch["image"] for batch in loader])

    assert torch.equal(images(0), images(2))


def test_training_trimap_radius_varies_per_sample_or_is_fixed():
    source = tiny_synthetic()
    random_widths = {int((TrainingComposites(source, size=48, seed=s)[0]["trimap"] == 128).sum()) for s in range(6)}
    assert len(random_widths) > 1
    fixed = TrainingComposites(source, size=48, trimap_radius=0)[0]
    alpha8 = (fixed["alpha"][0] * 255).round()
    assert torch.equal(fixed["trimap"] == 128, (alpha8 > 0) & (alpha8 < 255))


# ---- the fixed test set -------------------------------------------------------------------------------


def test_write_test_set_reads_back_and_is_reused(tmp_path):
    source = tiny_synthetic()
    root = write_test_set(source, tmp_path / "set", size=32, seed=3, backgrounds_per_foreground=2)
    test_set = MattingTestSet(root)
    test_foregrounds = source.foregrounds("test")
    assert len(test_set) == 2 * len(test_foregrounds)
    assert {e["fg"] for e in test_set.entries} == set(test_foregrounds)
    assert {e["bg"] for e in test_set.entries} <= set(source.backgrounds("test"))
    assert len({(e["fg"], e["bg"]) for e in test_set.entries}) == len(test_set)  # distinct backgrounds per fg
    sample = test_set[0]
    assert set(sample) == KEYS
    check_sample(sample, (32, 32))
    assert (
        sample["thin"]
        == test_set.entries[0]["thin"]
        == (test_set.entries[0]["strands"] or test_set.entries[0]["defocus"])
    )
    assert test_set.parameters["trimap_radius"] == 1 and test_set.verify() == []
    stamp = (root / "manifest.json").stat().st_mtime_ns
    assert write_test_set(source, root, size=32, seed=3, backgrounds_per_foreground=2) == root
    assert (root / "manifest.json").stat().st_mtime_ns == stamp  # reused, not rewritten

    with pytest.raises(DataError, match="other parameters"):
        write_test_set(source, root, size=32, seed=4, backgrounds_per_foreground=2)
    name = test_set.entries[1]["name"]
    write_image(root / "alpha" / f"{name}.png", np.zeros((32, 32), np.uint8))
    assert test_set.verify() == [f"alpha/{name}.png"]
    (root / "trimap" / f"{name}.png").unlink()
    with pytest.raises(DataError, match=f"trimap/{name}.png"):
        MattingTestSet(root)


def test_test_set_is_identical_when_written_twice(tmp_path):
    one = write_test_set(tiny_synthetic(), tmp_path / "a", size=24, backgrounds_per_foreground=1)
    two = write_test_set(tiny_synthetic(), tmp_path / "b", size=24, backgrounds_per_foreground=1)
    assert json.loads((one / "manifest.json").read_text()) == json.loads((two / "manifest.json").read_text())


def test_write_test_set_refuses_foreign_folders_and_bad_arguments(tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="not a test set"):
        write_test_set(tiny_synthetic(), tmp_path / "busy", size=24)
    with pytest.raises(ValueError, match="`backgrounds_per_foreground`: at most"):
        write_test_set(tiny_synthetic(), tmp_path / "x", size=24, backgrounds_per_foreground=99)
    with pytest.raises(DataError, match="no manifest.json"):
        MattingTestSet(tmp_path / "busy")
    assert not (tmp_path / "x").exists() and not list(tmp_path.glob(".x.partial-*"))


def test_cli_writes_a_synthetic_test_set(tmp_path, capsys):
    out = tmp_path / "cli-set"
    assert (
        main(
            [
                "data",
                "testset",
                "--source",
                "synthetic",
                "--size",
                "24",
                "--per-foreground",
                "1",
                "--out",
                str(out),
                "--verify",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "pixels match the manifest" in text and len(MattingTestSet(out)) == len(
        SyntheticSource().foregrounds("test")
    )
    # without --out, the set goes under the data root
    assert (
        main(
            [
                "data",
                "testset",
                "--source",
                "synthetic",
                "--size",
                "24",
                "--per-foreground",
                "1",
                "--root",
                str(tmp_path / "data-root"),
            ]
        )
        == 0
    )
    (written,) = (tmp_path / "data-root" / "testsets").iterdir()
    assert written.name.startswith("synthetic-") and written.name.endswith("-24px-seed0-f1")
    assert main(["data", "testset", "--source", "nothing"]) == 2
    assert main(["data", "testset", "--size", "0"]) == 2


# ---- benchmark folders ----------------------------------------------------------------------------


def make_layers_tree(root, rng):
    """Composition-1k training layout: fg/ (jpg and png), alpha/ (same stems), bg/."""
    yy, xx = np.mgrid[:30, :36]
    for k, stem in enumerate(["cat", "dog_1", "plant"]):
        alpha = np.clip((9 + k - np.hypot(yy - 15, xx - 18)) * 100, 0, 255).astype(np.uint8)
        write_image(root / "fg" / f"{stem}.{'jpg' if k == 0 else 'png'}", rng.integers(0, 256, (30, 36, 3), np.uint8))
        write_image(root / "alpha" / f"{stem}.png", alpha)
    for stem in ["beach", "room", "street", "forest"]:
        write_image(root / "bg" / f"{stem}.jpg", rng.integers(0, 256, (50, 70, 3), np.uint8))


def test_folder_source_composites_on_the_fly(tmp_path):
    make_layers_tree(tmp_path / "Training_set", np.random.default_rng(0))
    source = open_matting_folder(tmp_path / "Training_set")
    assert isinstance(source, FolderSource)
    assert source.foreground_names() == ["cat", "dog_1", "plant"] and len(source.background_names()) == 4
    sample = TrainingComposites(source, size=32, part="all", per_foreground=1)[2]
    check_sample(sample, (32, 32))
    root = write_test_set(source, tmp_path / "set", size=32, part="all", backgrounds_per_foreground=2)
    assert len(MattingTestSet(root)) == 6
    # as a MattingFolder, a written test set reads back the same samples
    folder = MattingFolder(root)
    for key in ("image", "alpha", "trimap", "fg", "bg"):
        assert torch.equal(folder[3][key], MattingTestSet(root)[3][key])


def test_folder_source_reports_missing_and_broken_files(tmp_path):
    make_layers_tree(tmp_path, np.random.default_rng(1))
    (tmp_path / "alpha" / "plant.png").unlink()
    with pytest.raises(DataError, match="without an alpha.*plant.png"):
        FolderSource(tmp_path)
    write_image(tmp_path / "alpha" / "plant.png", np.zeros((10, 10), np.uint8))
    with pytest.raises(DataError, match="alpha .*plant.png.* is 10 x 10 but its foreground plant.png is 36 x 30"):
        FolderSource(tmp_path).load_foreground("plant")
    (tmp_path / "fg" / "cat.jpg").write_bytes(b"garbage")
    with pytest.raises(DataError, match="cat.jpg"):
        FolderSource(tmp_path).load_foreground("cat")
    with pytest.raises(DataError, match="no fg folder"):
        FolderSource(tmp_path / "alpha")


def make_merged_tree(root, rng):
    """Composition-1k test layout: merged/<fg>_<k>.png, alpha/<fg>.png, trimaps/<fg>_<k>.png."""
    for stem in ["hair", "glass"]:
        alpha = rng.integers(0, 256, (20, 26), np.uint8)
        write_image(root / "alpha" / f"{stem}.png", alpha)
        for k in range(2):
            write_image(root / "merged" / f"{stem}_{k}.png", rng.integers(0, 256, (20, 26, 3), np.uint8))
            trimap = np.where(alpha > 200, 255, np.where(alpha < 50, 0, 128)).astype(np.uint8)
            write_image(root / "Trimaps" / f"{stem}_{k}.png", trimap)


def test_matting_folder_pairs_merged_images_with_alpha_and_trimaps(tmp_path):
    make_merged_tree(tmp_path, np.random.default_rng(2))
    folder = open_matting_folder(tmp_path)
    assert isinstance(folder, MattingFolder) and len(folder) == 4
    sample = folder[1]
    assert sample["name"] == "glass_1" and set(sample) == {"image", "alpha", "trimap", "name", "thin"}
    check_sample(sample, (20, 26), own_trimap=False)
    batch = next(iter(torch.utils.data.DataLoader(folder, batch_size=2)))
    assert batch["image"].shape == (2, 3, 20, 26)


def test_matting_folder_errors_name_the_files(tmp_path):
    make_merged_tree(tmp_path, np.random.default_rng(3))
    write_image(tmp_path / "merged" / "extra_0.png", np.zeros((20, 26, 3), np.uint8))
    with pytest.raises(DataError, match="alpha for extra_0.png, trimap for extra_0.png"):
        MattingFolder(tmp_path)
    (tmp_path / "merged" / "extra_0.png").unlink()
    write_image(tmp_path / "Trimaps" / "hair_1.png", np.full((20, 26), 100, np.uint8))
    with pytest.raises(DataError, match=r"trimap .*hair_1.png.*\[100\]"):
        MattingFolder(tmp_path)[3]
    snapped = MattingFolder(tmp_path, snap_trimap=True)[3]["trimap"]
    assert snapped.unique().tolist() == [128]
    write_image(tmp_path / "Trimaps" / "hair_1.png", np.zeros((21, 26), np.uint8))
    with pytest.raises(DataError, match="trimap .*hair_1.png.* is 26 x 21 but image hair_1.png is 26 x 20"):
        MattingFolder(tmp_path)[3]


@pytest.mark.parametrize(
    "argv", [["data", "--help"], ["data", "fetch", "--help"], ["data", "testset", "--help"], ["data", "info", "--help"]]
)
def test_data_help(argv):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0


def test_data_info_runs(tmp_path, capsys):
    assert main(["data", "info", "--root", str(tmp_path / "nothing")]) == 0
    assert "not fetched" in capsys.readouterr().out


def test_real_data_composites_when_fetched():
    """Runs only where `resamplers data fetch` has been run (no network in tests)."""
    from resamplers.data import DebianSource

    try:
        source = DebianSource()
    except DataError:
        pytest.skip("the real data is not fetched")
    assert len(source.foregrounds("test")) == 35 and len(source.backgrounds("test")) == 14
    sample = TrainingComposites(source, size=64, per_foreground=1)[0]
    check_sample(sample, (64, 64))


def test_real_foregrounds_are_cached_read_only_and_compose_the_same():
    """The decoded stamps are kept (the composites cycle through them in order) and shared,
    so they are read-only; a composite is the same with and without the cache."""
    from resamplers.data import DebianSource

    try:
        cached, uncached = DebianSource(), DebianSource(cache_foregrounds=0)
    except DataError:
        pytest.skip("the real data is not fetched")
    name = cached.foregrounds("train")[0]
    first = cached.load_foreground(name)
    assert cached.load_foreground(name) is first
    assert not first.color.flags.writeable and not first.alpha.flags.writeable
    again = TrainingComposites(cached, size=64, per_foreground=2)
    plain = TrainingComposites(uncached, size=64, per_foreground=2)
    for index in (0, 1, len(cached.foregrounds("train"))):  # the last one from the cache
        a, b = again[index], plain[index]
        assert all(torch.equal(a[key], b[key]) for key in a if isinstance(a[key], torch.Tensor))
