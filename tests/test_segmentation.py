"""Segmentation end to end: the built-in composites, the network, the compare task on
synthetic data and on a user's VOC-layout folder."""

from __future__ import annotations

import json

import pytest
import torch

from data_helpers import tiny_synthetic
from resamplers.cli import main
from resamplers.data import (
    SEGMENTATION_CLASSES,
    SegmentationComposites,
    SegmentationTestSet,
    class_counts,
    stamp_class,
    write_segmentation_test_set,
)
from resamplers.data.fetch import listed_files
from resamplers.data.sources import split_names
from resamplers.models.segmentation import SegmentationConfig, create_segmentation_model
from resamplers.training.segmentation import (
    RandomCrops,
    class_pixel_counts,
    initial_segmentation_network,
    inverse_sqrt_frequency_weights,
    segmentation_batch_loss,
)
from test_segmentation_folders import make_voc


def test_stamp_classes_follow_the_folders():
    stamps = "usr/share/tuxpaint/stamps"
    assert SEGMENTATION_CLASSES[stamp_class(f"{stamps}/animals/mammals/cat.png")] == "animal"
    assert SEGMENTATION_CLASSES[stamp_class(f"{stamps}/animals/fish/seahorse.png")] == "animal"
    assert SEGMENTATION_CLASSES[stamp_class(f"{stamps}/plants/flowers/daffodil.png")] == "plant or food"
    assert SEGMENTATION_CLASSES[stamp_class(f"{stamps}/food/fruit/kiwi.png")] == "plant or food"
    assert SEGMENTATION_CLASSES[stamp_class(f"{stamps}/seasonal/christmas/Mince_Pie.png")] == "plant or food"
    assert SEGMENTATION_CLASSES[stamp_class(f"{stamps}/seasonal/halloween/grave-a.png")] == "man-made"
    assert SEGMENTATION_CLASSES[stamp_class(f"{stamps}/military/vehicles/tank.png")] == "man-made"
    assert SEGMENTATION_CLASSES[stamp_class(f"{stamps}/hobbies/music/string/cello.png")] == "man-made"
    assert SEGMENTATION_CLASSES[stamp_class("cello.png")] == "man-made"
    assert {stamp_class(f"synthetic/fg-{k:04d}") for k in range(3)} == set(range(1, 4))


def test_every_class_has_enough_real_foregrounds_in_both_parts():
    """The shipped stamp list gives each class at least 8 test and 20 training foregrounds
    (read from the names and the split rule: no data needed)."""
    names = listed_files("foregrounds")
    for part, least in (("train", 20), ("test", 8)):
        classes = [stamp_class(name) for name in split_names(names, part)]
        counts = {SEGMENTATION_CLASSES[c]: classes.count(c) for c in range(1, len(SEGMENTATION_CLASSES))}
        assert min(counts.values()) >= least, (part, counts)


def test_composites_are_deterministic_and_labelled_by_the_topmost_object():
    source = tiny_synthetic()
    data = SegmentationComposites(source, 48, seed=3)
    a, b = data[5], SegmentationComposites(source, 48, seed=3)[5]
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])
    assert not torch.equal(a["image"], data[6]["image"])
    assert a["image"].shape == (3, 48, 48) and a["mask"].dtype == torch.int64
    labels = torch.cat([data[i]["mask"].flatten() for i in range(12)])
    assert labels.min() >= 0 and labels.max() < len(SEGMENTATION_CLASSES)
    assert (labels == 0).any() and (labels > 0).any()  # objects and background both occur
    counts = class_counts(source)
    assert sum(c["train"] for c in counts.values()) == len(source.foregrounds("train"))


def test_test_set_is_written_once_and_verifies(tmp_path):
    source = tiny_synthetic()
    root = write_segmentation_test_set(source, tmp_path / "set", size=32, count=5)
    test = SegmentationTestSet(root)
    assert len(test) == 5 and test.verify() == []
    first = [test[i]["mask"] for i in range(5)]
    again = SegmentationTestSet(write_segmentation_test_set(source, tmp_path / "set", size=32, count=5))
    assert all(torch.equal(m, again[i]["mask"]) for i, m in enumerate(first))  # reused, not rewritten
    other = SegmentationTestSet(write_segmentation_test_set(source, tmp_path / "other", size=32, count=5))
    assert all(torch.equal(m, other[i]["mask"]) for i, m in enumerate(first))  # same seed, same pixels


@pytest.mark.parametrize("pair", ["bilinear", "carafe", "a2u", "indexnet_m2o", "maxunpool", "fade", "sapa", "dysample"])
def test_every_pair_builds_a_network_of_the_right_shape(pair):
    net = create_segmentation_model(SegmentationConfig(pair, num_classes=5, width=0.5)).eval()  # 0.25: 6 channels
    with torch.no_grad():
        assert net(torch.zeros(1, 3, 64, 96)).shape == (1, 5, 64, 96)
    with pytest.raises(ValueError, match="divisible by 32"):
        net(torch.zeros(1, 3, 60, 64))


def test_shared_parts_start_equal_across_operators():
    def start(pair):
        torch.manual_seed(1)
        return initial_segmentation_network(SegmentationConfig(pair, width=0.25, init_like="bilinear")).state_dict()

    a, b = start("carafe"), start("indexnet_m2o")
    shared = [k for k in a if k in b and a[k].shape == b[k].shape]
    assert len(shared) > 100 and all(torch.equal(a[k], b[k]) for k in shared)


def test_random_crops_pad_small_images_with_the_ignore_index():
    sample = {"image": torch.rand(3, 10, 12), "mask": torch.ones(10, 12, dtype=torch.int64), "name": "x"}
    crop = RandomCrops([sample], 16, seed=0)[0]
    assert crop["image"].shape == (3, 16, 16) and crop["mask"].shape == (16, 16)
    assert (crop["mask"] == 255).sum() == 16 * 16 - 10 * 12
    with pytest.raises(ValueError, match="samples"):
        RandomCrops([], 16)


def test_bad_config_names_the_argument():
    with pytest.raises(ValueError, match="num_classes"):
        SegmentationConfig("bilinear", num_classes=1).validate()
    with pytest.raises(ValueError, match="backbone"):
        SegmentationConfig("bilinear", backbone="resnet50").validate()


def test_class_weights_are_inverse_sqrt_frequency_with_unit_mean_weight():
    # frequencies 0.64, 0.32, 0.04: 1/sqrt(f) = 1.25, 1.768, 5; expected weight sum f w = 0.8 + 0.566 + 0.2
    weights = inverse_sqrt_frequency_weights([64, 32, 4]).double()
    raw = torch.tensor([1.25, 2**0.5 * 1.25, 5.0], dtype=torch.float64)
    torch.testing.assert_close(weights, raw / (0.64 * 1.25 + 0.32 * 2**0.5 * 1.25 + 0.04 * 5.0), rtol=1e-6, atol=1e-6)
    assert float((torch.tensor([0.64, 0.32, 0.04], dtype=torch.float64) * weights).sum()) == pytest.approx(1.0)
    torch.testing.assert_close(inverse_sqrt_frequency_weights([5, 5]), torch.ones(2))  # balanced: all ones
    unseen = inverse_sqrt_frequency_weights([90, 10, 0])
    assert unseen[2] == unseen[1] == unseen.max()
    for bad in ([0, 0], [-1, 3], []):
        with pytest.raises(ValueError, match="argument `counts`"):
            inverse_sqrt_frequency_weights(bad)


def test_class_pixel_counts_skip_the_ignore_index_and_name_bad_values():
    masks = [torch.tensor([[0, 1], [255, 2]]), torch.tensor([[2, 2], [0, 255]])]
    samples = [{"mask": m, "name": f"m{i}"} for i, m in enumerate(masks)]
    assert class_pixel_counts(samples, 3, count=10).tolist() == [2, 1, 3]
    assert class_pixel_counts(samples, 3, count=1).tolist() == [1, 1, 1]
    with pytest.raises(ValueError, match=r"'m0'.*value 2 outside the 2 classes"):
        class_pixel_counts(samples, 2, count=2)


def test_the_weighted_loss_is_the_weighted_cross_entropy():
    model = torch.nn.Identity()
    logits = torch.randn(2, 3, 4, 4)
    mask = torch.randint(0, 3, (2, 4, 4))
    mask[0, 0, 0] = 255
    weights = torch.tensor([0.5, 1.0, 3.0])
    batch = {"image": logits, "mask": mask}
    import resamplers.training.segmentation as module

    original = module.segmentation_inputs
    module.segmentation_inputs = lambda image: image  # the loss on the logits themselves
    try:
        loss, _ = segmentation_batch_loss(model, batch, class_weights=weights)
        plain, _ = segmentation_batch_loss(model, batch)
    finally:
        module.segmentation_inputs = original
    keep = mask != 255
    nll = -torch.log_softmax(logits, 1).gather(1, mask.clamp(max=2)[:, None])[:, 0]
    w = weights[mask.clamp(max=2)]
    torch.testing.assert_close(loss, (w * nll)[keep].sum() / w[keep].sum())
    torch.testing.assert_close(plain, nll[keep].mean())


@pytest.mark.slow
def test_segmentation_smoke_on_synthetic_data(tmp_path, capsys):
    out = tmp_path / "cmp"
    args = ["compare", "--task", "segmentation", "--preset", "smoke", "--ops", "bilinear,a2u"]
    assert main([*args, "--data", "synthetic", "--out", str(out), "--no-progress"]) == 0
    record = json.loads((out / "runs" / "segmentation" / "a2u" / "seed-0" / "result.json").read_text())
    assert set(record["metrics"]["overall"]) == {"miou", "boundary_iou", "acc"}
    assert len(record["train"]["class_weights"]) == record["preset"].get(
        "num_classes", len(record["train"]["class_weights"])
    )
    per_image = json.loads((out / "runs" / "segmentation" / "a2u" / "seed-0" / "per_image.json").read_text())
    assert len(per_image) == 2 and all(0.0 <= row["miou"] <= 100.0 for row in per_image)
    report = (out / "report.md").read_text()
    assert "| *background* |" in report.split("## Paired comparison")[1] and "Boundary IoU" in report
    assert (out / "visual_sheet.png").is_file() and (out / "learning_curves.png").is_file()


@pytest.mark.slow
def test_a_voc_folder_trains_and_evaluates_end_to_end(tmp_path, capsys):
    root = tmp_path / "VOC"
    make_voc(root)
    out = tmp_path / "cmp"
    args = ["compare", "--task", "segmentation", "--preset", "smoke", "--ops", "bilinear", "--out", str(out)]
    assert main([*args, "--data", f"folder:{root}", "--layout", "voc", "--no-progress"]) == 0
    per_image = json.loads((out / "runs" / "segmentation" / "bilinear" / "seed-0" / "per_image.json").read_text())
    assert [row["name"] for row in per_image] == ["2009_000001", "2010_000002"]  # the val split, in order
    assert json.loads((out / "compare.json").read_text())["layout"] == "voc"
    capsys.readouterr()
    assert main([*args, "--data", f"folder:{root}", "--no-progress"]) == 2  # folder data needs its layout
    assert "--layout" in capsys.readouterr().err
    assert main([*args, "--data", f"folder:{tmp_path / 'nowhere'}", "--layout", "voc"]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_matting_reads_no_folder_data(tmp_path, capsys):
    args = ["compare", "--task", "matting", "--preset", "smoke", "--out", str(tmp_path / "m")]
    assert main([*args, "--data", f"folder:{tmp_path}"]) == 2
    assert "reads no folder data" in capsys.readouterr().err
