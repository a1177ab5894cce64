"""Segmentation folders: Pascal VOC, ADE20K (mmsegmentation layout) and generic trees made with Pillow."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from resamplers.data import (
    ADE20K_CLASSES,
    VOC_CLASSES,
    ADESegmentation,
    DataError,
    GenericSegmentation,
    VOCSegmentation,
    open_segmentation_folder,
)

H, W = 24, 32


def save_rgb(path: Path, rng: np.random.Generator, size=(H, W)) -> np.ndarray:
    pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return pixels


def save_palette(path: Path, labels: np.ndarray) -> None:
    """A palette PNG whose indices are ``labels``; the colours differ from the indices on purpose."""
    image = Image.frombytes("P", (labels.shape[1], labels.shape[0]), labels.astype(np.uint8).tobytes())
    image.putpalette([channel for k in range(256) for channel in ((k * 37) % 256, 255 - k, (k * 11) % 256)])
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def save_gray(path: Path, labels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(labels.astype(np.uint8)).save(path)


def voc_labels(rng: np.random.Generator, size=(H, W)) -> np.ndarray:
    labels = np.zeros(size, np.uint8)
    y, x = int(rng.integers(2, 8)), int(rng.integers(2, 10))
    labels[y : y + 10, x : x + 12] = rng.integers(1, 21)
    labels[y - 1, x : x + 12] = 255  # the VOC object border
    labels[y + 10, x : x + 12] = 255
    return labels


def make_voc(
    root: Path, train=("2007_000032", "2007_000039", "2008_000003", "2008_000008"), val=("2009_000001", "2010_000002")
):
    rng = np.random.default_rng(0)
    masks = {}
    for i in train + val:
        save_rgb(root / "JPEGImages" / f"{i}.jpg", rng)
        masks[i] = voc_labels(rng)
        save_palette(root / "SegmentationClass" / f"{i}.png", masks[i])
    save_rgb(root / "JPEGImages" / "2011_000000.jpg", rng)  # an image in no list (VOC has many): fine
    lists = root / "ImageSets" / "Segmentation"
    lists.mkdir(parents=True)
    (lists / "train.txt").write_text("\n".join(train) + "\n")
    (lists / "val.txt").write_text("\n".join(val) + "\n\n")
    return masks


def make_ade(root: Path, counts=(("training", 4), ("validation", 2))):
    rng = np.random.default_rng(1)
    masks = {}
    for folder, count in counts:
        for k in range(count):
            stem = f"ADE_{folder[:5]}_{k:08d}"
            save_rgb(root / "images" / folder / f"{stem}.jpg", rng)
            labels = rng.integers(0, 151, (H, W)).astype(np.uint8)
            labels[0, :4] = [0, 1, 150, 255]
            masks[stem] = labels
            save_gray(root / "annotations" / folder / f"{stem}.png", labels)
    return masks


GENERIC_STEMS = [f"photo_{i:02d}" for i in range(10)]
GENERIC_CLASSES = ("sky", "tree", "road", "car")


def make_generic(root: Path, subfolders: dict[str, int] | None = None):
    rng = np.random.default_rng(2)
    images, masks = {}, {}
    groups = (
        {f"{split}/": [f"{split}_{k}" for k in range(n)] for split, n in subfolders.items()}
        if subfolders
        else {"": GENERIC_STEMS}
    )
    for prefix, stems in groups.items():
        for stem in stems:
            images[stem] = save_rgb(root / "images" / f"{prefix}{stem}.png", rng)
            masks[stem] = rng.integers(0, 4, (H, W)).astype(np.uint8)
            masks[stem][5, 5] = 255
            save_gray(root / "masks" / f"{prefix}{stem}.png", masks[stem])
    (root / "classes.txt").write_text("\n".join(GENERIC_CLASSES) + "\n")
    return images, masks


def check_sample(sample: dict, num_classes: int) -> None:
    assert sample["image"].shape == (3, H, W) and sample["image"].dtype == torch.float32
    assert 0.0 <= sample["image"].min() and sample["image"].max() <= 1.0
    assert sample["mask"].shape == (H, W) and sample["mask"].dtype == torch.int64
    values = sample["mask"].unique()
    assert bool(((values >= 0) & (values < num_classes) | (values == 255)).all())
    assert isinstance(sample["name"], str)


# ---------------------------------------------------------------- layouts


def test_voc(tmp_path):
    masks = make_voc(tmp_path)
    train = open_segmentation_folder(tmp_path, "voc", "train")
    val = open_segmentation_folder(tmp_path, "voc", "val")
    assert isinstance(train, VOCSegmentation) and (len(train), len(val)) == (4, 2)
    assert train.class_names == VOC_CLASSES and train.num_classes == 21 and train.ignore_index == 255
    assert VOC_CLASSES[0] == "background" and VOC_CLASSES[15] == "person" and VOC_CLASSES[20] == "tvmonitor"
    for dataset in (train, val):
        for sample in dataset:
            check_sample(sample, 21)
            # the palette indices, not the colours; 255 border pixels kept as 255
            assert np.array_equal(sample["mask"].numpy(), masks[sample["name"]])
            assert (sample["mask"] == 255).any()
    assert val.names == ["2009_000001", "2010_000002"]


def test_ade_reduce_zero_label(tmp_path):
    masks = make_ade(tmp_path)
    train = open_segmentation_folder(tmp_path, "ade", "train")
    val = open_segmentation_folder(tmp_path, "ade", "validation")
    assert isinstance(train, ADESegmentation) and (len(train), len(val)) == (4, 2)
    assert train.num_classes == 150 and train.class_names == ADE20K_CLASSES and len(set(ADE20K_CLASSES)) == 150
    assert ADE20K_CLASSES[0] == "wall" and ADE20K_CLASSES[149] == "flag"
    sample = train[0]
    check_sample(sample, 150)
    raw = masks[sample["name"]].astype(np.int64)
    expected = np.where(raw == 0, 255, np.where(raw == 255, 255, raw - 1))
    assert np.array_equal(sample["mask"].numpy(), expected)
    assert sample["mask"][0, :4].tolist() == [255, 0, 149, 255]

    plain = open_segmentation_folder(tmp_path, "ade", "val", reduce_zero_label=False)
    assert plain.num_classes == 151 and plain.class_names[1:] == ADE20K_CLASSES
    assert np.array_equal(plain[1]["mask"].numpy(), masks[plain[1]["name"]])


def test_ade_classes_file(tmp_path):
    make_ade(tmp_path, counts=(("training", 1),))
    (tmp_path / "classes.txt").write_text("\n".join(f"c{k}" for k in range(150)) + "\n")
    assert open_segmentation_folder(tmp_path, "ade", "train").class_names[:2] == ("c0", "c1")


def test_generic_hash_split(tmp_path):
    images, masks = make_generic(tmp_path)
    val_stems = [s for s in GENERIC_STEMS if zlib.crc32(s.encode("utf-8")) % 100 < 20]
    assert 0 < len(val_stems) < len(GENERIC_STEMS)  # the fixture exercises both parts
    train = open_segmentation_folder(tmp_path, "generic", "train")
    val = open_segmentation_folder(tmp_path, "generic", "val")
    every = open_segmentation_folder(tmp_path, "generic", "all")
    assert isinstance(train, GenericSegmentation)
    assert val.names == val_stems and sorted(train.names + val.names) == GENERIC_STEMS == every.names
    assert train.class_names == GENERIC_CLASSES and train.num_classes == 4
    for sample in val:
        check_sample(sample, 4)
        assert np.array_equal(sample["mask"].numpy(), masks[sample["name"]])
        assert np.array_equal((sample["image"] * 255).round().byte().permute(1, 2, 0).numpy(), images[sample["name"]])
    batch = next(iter(torch.utils.data.DataLoader(train, batch_size=2)))
    assert batch["image"].shape == (2, 3, H, W) and batch["mask"].shape == (2, H, W)


def test_generic_split_folders_and_reduce(tmp_path):
    _, masks = make_generic(tmp_path, {"train": 3, "val": 2})
    assert (len(GenericSegmentation(tmp_path, "train")), len(GenericSegmentation(tmp_path, "val"))) == (3, 2)
    with pytest.raises(ValueError, match=r"`split`.*\['train', 'val'\]"):
        GenericSegmentation(tmp_path, "test")
    reduced = open_segmentation_folder(tmp_path, "generic", "val", reduce_zero_label=True)
    raw = masks[reduced[0]["name"]].astype(np.int64)
    assert np.array_equal(reduced[0]["mask"].numpy(), np.where((raw == 0) | (raw == 255), 255, raw - 1))


# ---------------------------------------------------------------- errors


def test_unknown_layout(tmp_path):
    with pytest.raises(ValueError, match=r"`--layout`: expected one of 'voc', 'ade', 'generic', got 'coco'"):
        open_segmentation_folder(tmp_path, "coco", "train")


def test_missing_partners_are_named(tmp_path):
    make_ade(tmp_path)
    (tmp_path / "annotations" / "training" / "ADE_train_00000002.png").unlink()
    with pytest.raises(DataError, match=r"images without a mask.*ADE_train_00000002\.jpg"):
        open_segmentation_folder(tmp_path, "ade", "train")
    assert len(open_segmentation_folder(tmp_path, "ade", "val")) == 2  # the other split is fine

    generic = tmp_path / "generic"
    make_generic(generic)
    save_gray(generic / "masks" / "orphan.png", np.zeros((H, W), np.uint8))
    with pytest.raises(DataError, match=r"masks without an image.*orphan\.png"):
        open_segmentation_folder(generic, "generic", "train")


def test_voc_missing_files_and_split(tmp_path):
    make_voc(tmp_path)
    (tmp_path / "SegmentationClass" / "2008_000003.png").unlink()
    (tmp_path / "JPEGImages" / "2008_000008.jpg").unlink()
    with pytest.raises(DataError, match=r"SegmentationClass/2008_000003\.png, JPEGImages/2008_000008\.jpg"):
        open_segmentation_folder(tmp_path, "voc", "train")
    with pytest.raises(DataError, match=r"no split list 'trainaug' \(available: \['train', 'val'\]\)"):
        open_segmentation_folder(tmp_path, "voc", "trainaug")
    with pytest.raises(ValueError, match="`reduce_zero_label`"):
        open_segmentation_folder(tmp_path, "voc", "val", reduce_zero_label=True)


def test_unreadable_image_is_named(tmp_path):
    make_ade(tmp_path)
    (tmp_path / "images" / "validation" / "ADE_valid_00000001.jpg").write_bytes(b"not a jpeg at all")
    dataset = open_segmentation_folder(tmp_path, "ade", "val")
    dataset[0]
    with pytest.raises(DataError, match=r"image '.*ADE_valid_00000001\.jpg': cannot read it"):
        dataset[1]


def test_size_mismatch_is_named(tmp_path):
    make_generic(tmp_path)
    save_gray(tmp_path / "masks" / "photo_04.png", np.zeros((H, W - 2), np.uint8))
    dataset = open_segmentation_folder(tmp_path, "generic", "val")
    with pytest.raises(
        DataError, match=r"mask '.*photo_04\.png' is 30 x 24 but its image '.*photo_04\.png' is 32 x 24"
    ):
        dataset[dataset.names.index("photo_04")]


def test_out_of_range_mask_value_is_named(tmp_path):
    masks = make_voc(tmp_path)
    labels = masks["2009_000001"].copy()
    labels[3, 3] = 21
    save_palette(tmp_path / "SegmentationClass" / "2009_000001.png", labels)
    with pytest.raises(DataError, match=r"mask '.*2009_000001\.png': values \[21\] are not class indices in \[0, 21\)"):
        open_segmentation_folder(tmp_path, "voc", "val")[0]

    ade = tmp_path / "ade"
    masks = make_ade(ade, counts=(("training", 1),))
    labels = masks["ADE_train_00000000"].copy()
    labels[2, 2] = 151  # 150 after reduce_zero_label: out of [0, 150)
    save_gray(ade / "annotations" / "training" / "ADE_train_00000000.png", labels)
    with pytest.raises(DataError, match=r"ADE_train_00000000\.png': values \[151\] \(before reduce_zero_label\)"):
        open_segmentation_folder(ade, "ade", "train")[0]


def test_colour_mask_and_missing_classes_file(tmp_path):
    make_generic(tmp_path)
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(tmp_path / "masks" / "photo_08.png")
    dataset = open_segmentation_folder(tmp_path, "generic", "val")
    with pytest.raises(DataError, match=r"photo_08\.png': expected a single-channel .* got mode RGB"):
        dataset[dataset.names.index("photo_08")]
    (tmp_path / "classes.txt").unlink()
    with pytest.raises(DataError, match=r"classes\.txt'.*no class-names file"):
        open_segmentation_folder(tmp_path, "generic", "val")
