"""segmentation_metrics: mIoU / accuracy against a per-pixel loop, Boundary IoU against a brute-force band."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import binary_erosion

from resamplers.metrics import segmentation_metrics
from resamplers.metrics.segmentation import boundary_band, boundary_width

IGNORE = 255


# ---------------------------------------------------------------- independent references


def slow_counts(preds, targets, num_classes, ignore=IGNORE):
    """Per-pixel loop: (tp, area_pred, area_label, confusion) over pixels whose target is not ignored."""
    tp = [0] * num_classes
    area_pred = [0] * num_classes
    area_label = [0] * num_classes
    confusion = np.zeros((num_classes, num_classes), np.int64)
    for pred, target in zip(preds, targets):
        for y in range(target.shape[0]):
            for x in range(target.shape[1]):
                t, p = int(target[y, x]), int(pred[y, x])
                if t == ignore:
                    continue
                area_label[t] += 1
                if 0 <= p < num_classes:
                    area_pred[p] += 1
                    confusion[t, p] += 1
                if p == t:
                    tp[t] += 1
    return tp, area_pred, area_label, confusion


def nan_ratio(a, b):
    return a / b if b else math.nan


def nan_mean(values):
    values = [v for v in values if not math.isnan(v)]
    return sum(values) / len(values) if values else math.nan


def brute_band(mask, d, border_is_contour=True):
    """Mask pixels whose chessboard distance to the nearest non-mask pixel (or the outside) is <= d."""
    h, w = mask.shape
    outside = np.argwhere(~mask)
    band = np.zeros_like(mask)
    for y, x in np.argwhere(mask):
        nearest = math.inf
        if len(outside):
            nearest = np.maximum(np.abs(outside[:, 0] - y), np.abs(outside[:, 1] - x)).min()
        if border_is_contour:
            nearest = min(nearest, y + 1, x + 1, h - y, w - x)
        band[y, x] = nearest <= d
    return band


def paper_band(mask, d):
    """The paper's procedure: pad one ring of zeros, erode d times with a 3 x 3 square, crop, subtract."""
    padded = np.pad(mask, 1, constant_values=False)
    eroded = binary_erosion(padded, np.ones((3, 3), bool), iterations=d, border_value=1)[1:-1, 1:-1]
    return mask & ~eroded


def brute_boundary_iou(preds, targets, num_classes, fraction, border_is_contour=True, ignore=IGNORE):
    inter = [0] * num_classes
    union = [0] * num_classes
    for pred, target in zip(preds, targets):
        h, w = target.shape
        d = max(1, round(fraction * math.sqrt(h * h + w * w)))
        valid = target != ignore
        for c in range(num_classes):
            p = brute_band(pred == c, d, border_is_contour) & valid
            g = brute_band(target == c, d, border_is_contour) & valid
            inter[c] += int((p & g).sum())
            union[c] += int((p | g).sum())
    per_class = [nan_ratio(i, u) for i, u in zip(inter, union)]
    return per_class, nan_mean(per_class)


def blocky_labels(rng, shape, num_classes, ignore_fraction=0.0):
    """Piecewise-constant labels (blocks of 2-4 pixels), with some ignored pixels."""
    block = int(rng.integers(2, 5))
    coarse = rng.integers(0, num_classes, (shape[0] // block + 1, shape[1] // block + 1))
    labels = np.kron(coarse, np.ones((block, block), np.int64))[: shape[0], : shape[1]]
    if ignore_fraction:
        labels[rng.random(shape) < ignore_fraction] = IGNORE
    return labels


def assert_nan_equal(actual, expected):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert (math.isnan(a) and math.isnan(e)) or a == pytest.approx(e, rel=1e-12, abs=1e-12), (actual, expected)


# ---------------------------------------------------------------- hand-checkable cases


def halves(shift=0):
    """6 x 6: class 0 on columns < 3 + shift, class 1 on the rest."""
    labels = np.ones((6, 6), np.int64)
    labels[:, : 3 + shift] = 0
    return labels


def test_perfect_prediction_scores_one():
    rng = np.random.default_rng(0)
    targets = [blocky_labels(rng, s, 3, 0.1) for s in [(9, 11), (16, 7)]]
    scores = segmentation_metrics([t.copy() for t in targets], targets, num_classes=3)
    assert scores["miou"] == 1.0 and scores["acc"] == 1.0 and scores["macc"] == 1.0
    assert scores["boundary_iou"] == 1.0
    assert scores["iou"] == [1.0, 1.0, 1.0] and scores["boundary_iou_per_class"] == [1.0, 1.0, 1.0]


def test_hand_computed_halves():
    # target: class 0 on columns 0-2, class 1 on 3-5; prediction: class 0 on columns 0-3
    # IoU_0 = 18 / 24, IoU_1 = 12 / 18; acc = 30 / 36
    # d = round(0.25 * sqrt(72)) = 2.  Border is a contour: every pixel of the 3-wide target regions
    # and of both predicted regions is within 2 of a contour -> B_0 = 18 / 24, B_1 = 12 / 18.
    # Border not a contour: G_0 = cols 1-2, P_0 = cols 2-3 -> 6 / 18; G_1 = cols 3-4, P_1 = cols 4-5 -> 6 / 18.
    scores = segmentation_metrics(halves(1), halves(0), num_classes=2, boundary_fraction=0.25)
    assert scores["iou"] == pytest.approx([0.75, 2 / 3])
    assert scores["miou"] == pytest.approx((0.75 + 2 / 3) / 2)
    assert scores["acc"] == pytest.approx(30 / 36)
    assert scores["class_acc"] == pytest.approx([1.0, 2 / 3])
    assert scores["macc"] == pytest.approx((1 + 2 / 3) / 2)
    assert scores["confusion_matrix"].tolist() == [[18, 0], [6, 12]]
    assert scores["boundary_iou_per_class"] == pytest.approx([0.75, 2 / 3])
    inner = segmentation_metrics(halves(1), halves(0), 2, boundary_fraction=0.25, border_is_contour=False)
    assert inner["boundary_iou_per_class"] == pytest.approx([1 / 3, 1 / 3])
    assert inner["boundary_iou"] == pytest.approx(1 / 3)
    assert inner["miou"] == scores["miou"]  # the border convention only touches Boundary IoU


def test_small_example_with_ignore():
    target = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [255, 255, 1, 1]])
    pred = np.array([[0, 0, 0, 1], [0, 0, 1, 1], [1, 1, 1, 1]])
    scores = segmentation_metrics(pred, target, num_classes=3)
    # class 0: TP 4, pred 5 (the ignored row does not count), label 4; class 1: TP 5, pred 5, label 6
    assert scores["iou"][:2] == pytest.approx([4 / 5, 5 / 6]) and math.isnan(scores["iou"][2])
    assert scores["miou"] == pytest.approx((4 / 5 + 5 / 6) / 2)
    assert scores["acc"] == pytest.approx(9 / 10) and scores["num_pixels"] == 10
    # whatever is predicted on ignored pixels does not change the region scores
    other = pred.copy()
    other[2, :2] = [2, 255]
    again = segmentation_metrics(other, target, num_classes=3)
    for key in ("miou", "acc", "macc"):
        assert again[key] == scores[key]


def test_absent_class_is_excluded_but_false_positive_class_counts():
    target = np.array([[0, 0, 1, 1]] * 3)
    scores = segmentation_metrics(target.copy(), target, num_classes=5)
    assert scores["miou"] == 1.0 and scores["boundary_iou"] == 1.0
    assert all(math.isnan(v) for v in scores["iou"][2:] + scores["boundary_iou_per_class"][2:])
    pred = target.copy()
    pred[0, 0] = 3  # class 3 only in the prediction: IoU 0, and it counts
    scores = segmentation_metrics(pred, target, num_classes=5)
    assert scores["iou"][3] == 0.0 and scores["iou"][0] == pytest.approx(5 / 6)
    assert scores["miou"] == pytest.approx((5 / 6 + 1 + 0) / 3)
    assert math.isnan(scores["class_acc"][3]) and scores["macc"] == pytest.approx((5 / 6 + 1) / 2)


def test_prediction_of_ignore_value_is_wrong_but_no_false_positive():
    target = np.array([[0, 0, 1, 1]])
    pred = np.array([[0, 255, 1, 1]])
    scores = segmentation_metrics(pred, target, num_classes=2)
    assert scores["iou"] == pytest.approx([0.5, 1.0]) and scores["acc"] == pytest.approx(3 / 4)
    assert scores["confusion_matrix"].tolist() == [[1, 0], [0, 2]]


def test_ignored_pixels_in_boundary():
    # 8 x 8, everything class 0 except an ignored 2 x 2 hole; d = 1.  The ground-truth mask has a contour
    # around the hole (a ring of 12 valid pixels); the prediction (all 0) has none.
    target = np.zeros((8, 8), np.int64)
    target[3:5, 3:5] = IGNORE
    pred = np.zeros((8, 8), np.int64)
    inner = segmentation_metrics(pred, target, num_classes=1, border_is_contour=False)
    assert inner["boundary_iou_per_class"] == [0.0]  # P empty, G = 12 pixels
    border = segmentation_metrics(pred, target, num_classes=1)
    assert border["boundary_iou"] == pytest.approx(28 / 40)  # the outer ring is in both, the inner ring in G only
    assert border["miou"] == 1.0


def test_band_of_full_mask_and_border_convention():
    full = np.ones((5, 7), bool)
    assert boundary_band(full, 1, border_is_contour=False).sum() == 0
    band = boundary_band(full, 2)
    assert band.sum() == 5 * 7 - 1 * 3  # only the centre row's 3 middle pixels are deeper than 2
    assert not band[2, 2:5].any()
    assert np.array_equal(band, brute_band(full, 2)) and np.array_equal(band, paper_band(full, 2))


def test_boundary_width():
    assert boundary_width(512, 512) == 14  # 0.02 * 724.1
    assert boundary_width(24, 32) == 1  # 0.8 rounds to 1
    assert boundary_width(3, 4, 0.0) == 1  # at least one pixel
    assert boundary_width(24, 32, 0.1) == 4


# ---------------------------------------------------------------- random cases against the references


@pytest.mark.parametrize("seed", range(4))
def test_band_matches_brute_force_and_paper_procedure(seed):
    rng = np.random.default_rng(seed)
    for shape in [(7, 9), (12, 5), (10, 10)]:
        labels = blocky_labels(rng, shape, 3)
        for d in (1, 2, 3):
            for c in range(3):
                mask = labels == c
                assert np.array_equal(boundary_band(mask, d), brute_band(mask, d))
                assert np.array_equal(boundary_band(mask, d), paper_band(mask, d))
                assert np.array_equal(boundary_band(mask, d, False), brute_band(mask, d, False))


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("border_is_contour", [True, False])
def test_random_test_sets_match_references(seed, border_is_contour):
    rng = np.random.default_rng(seed)
    num_classes = 4
    shapes = [(7, 9), (12, 5), (10, 10), (13, 16)]
    targets = [blocky_labels(rng, s, num_classes, ignore_fraction=0.1) for s in shapes]
    preds = []
    for target in targets:
        pred = np.where(target == IGNORE, rng.integers(0, num_classes, target.shape), target)
        flip = rng.random(target.shape) < 0.25
        pred[flip] = rng.integers(0, num_classes, int(flip.sum()))
        pred[rng.random(target.shape) < 0.03] = IGNORE
        preds.append(pred.astype(rng.choice([np.uint8, np.int32, np.int64])))
    fraction = 0.15
    scores = segmentation_metrics(
        preds, targets, num_classes, boundary_fraction=fraction, border_is_contour=border_is_contour
    )

    tp, area_pred, area_label, confusion = slow_counts(preds, targets, num_classes)
    iou = [nan_ratio(tp[c], area_pred[c] + area_label[c] - tp[c]) for c in range(num_classes)]
    class_acc = [nan_ratio(tp[c], area_label[c]) for c in range(num_classes)]
    assert_nan_equal(scores["iou"], iou)
    assert scores["miou"] == pytest.approx(nan_mean(iou))
    assert scores["acc"] == pytest.approx(sum(tp) / sum(area_label))
    assert_nan_equal(scores["class_acc"], class_acc)
    assert scores["macc"] == pytest.approx(nan_mean(class_acc))
    assert np.array_equal(scores["confusion_matrix"], confusion)
    assert scores["num_pixels"] == sum(area_label) and scores["num_images"] == len(shapes)

    per_class, mean = brute_boundary_iou(preds, targets, num_classes, fraction, border_is_contour)
    assert_nan_equal(scores["boundary_iou_per_class"], per_class)
    assert scores["boundary_iou"] == pytest.approx(mean)


def test_array_stack_list_and_tensors_agree():
    rng = np.random.default_rng(7)
    targets = np.stack([blocky_labels(rng, (9, 12), 3, 0.05) for _ in range(3)])
    preds = np.where(rng.random(targets.shape) < 0.2, rng.integers(0, 3, targets.shape), targets)
    reference = segmentation_metrics(list(preds), list(targets), 3)
    for p, t in [
        (preds, targets),
        (torch.from_numpy(preds), torch.from_numpy(targets)),
        (list(torch.from_numpy(preds)), targets),
    ]:
        scores = segmentation_metrics(p, t, 3)
        assert scores["miou"] == reference["miou"] and scores["boundary_iou"] == reference["boundary_iou"]
    single = segmentation_metrics(preds[0], targets[0], 3)
    listed = segmentation_metrics([preds[0]], [targets[0]], 3)
    assert single["miou"] == listed["miou"] and single["boundary_iou"] == listed["boundary_iou"]


# ---------------------------------------------------------------- errors


def test_errors_name_the_argument():
    ok = np.zeros((4, 5), np.int64)
    with pytest.raises(ValueError, match=r"`pred`, image 1: expected shape \(4, 5\).*got \(5, 4\)"):
        segmentation_metrics([ok, np.zeros((5, 4), np.int64)], [ok, ok], 2)
    with pytest.raises(ValueError, match=r"`pred`: expected 2 images"):
        segmentation_metrics([ok], [ok, ok], 2)
    with pytest.raises(ValueError, match=r"`target`.*dtype float32"):
        segmentation_metrics(ok, ok.astype(np.float32), 2)
    with pytest.raises(ValueError, match=r"`pred`, image 1.*dtype bool"):
        segmentation_metrics([ok, ok.astype(bool)], [ok, ok], 2)
    with pytest.raises(ValueError, match="`num_classes`"):
        segmentation_metrics(ok, ok, 0)
    bad = ok.copy()
    bad[1, 2] = 7
    with pytest.raises(ValueError, match=r"`target`, image 1: value 7 is outside \[0, 3\)"):
        segmentation_metrics([ok, ok], [ok, bad], 3)
    with pytest.raises(ValueError, match=r"`pred`, image 0: value -1"):
        segmentation_metrics(ok - 1, ok, 3)
    with pytest.raises(ValueError, match=r"`target`: expected at least one image"):
        segmentation_metrics([], [], 3)
    with pytest.raises(ValueError, match=r"`target`: expected an H x W or N x H x W"):
        segmentation_metrics(ok[None, None], ok[None, None], 3)
    with pytest.raises(ValueError, match="`boundary_fraction`"):
        segmentation_metrics(ok, ok, 3, boundary_fraction=-0.1)
    with pytest.raises(TypeError, match="`pred`"):
        segmentation_metrics("labels", ok, 3)
