"""Semantic-segmentation scores over a whole test set: mIoU as mmsegmentation, and Boundary IoU.

Inputs are integer label maps: ``pred`` and ``target`` are each one numpy array (``H x W`` for one
image, ``N x H x W`` for ``N`` images of one size), a list of ``H x W`` arrays (sizes may differ
between images; each prediction has the shape of its target), or the same as torch tensors (moved
to the CPU).  Values are class indices in ``[0, num_classes)``; ``ignore_index`` (255 by default)
is also allowed in both.

**Region scores** (mmsegmentation's ``IoUMetric``): one set of per-class counts is accumulated over
all pixels of all images whose *target* is not ``ignore_index``:

* ``TP_c``: pixels with ``target == pred == c``; ``area_label_c``: pixels with ``target == c``;
  ``area_pred_c``: pixels with ``pred == c``.  A prediction equal to ``ignore_index`` (or any
  other non-class value) at a counted pixel is simply wrong: it is a false negative of its target
  class and a false positive of no class, as mmsegmentation's histogram counts it.
* ``IoU_c = TP_c / (TP_c + FP_c + FN_c) = TP_c / (area_pred_c + area_label_c - TP_c)``, NaN when
  the union is 0 (class absent from both prediction and ground truth); ``miou`` is the mean over
  the classes that are not NaN.
* ``acc = sum_c TP_c / #counted pixels`` (mmsegmentation's ``aAcc``); ``class_acc_c = TP_c /
  area_label_c`` (NaN when class ``c`` is absent from the ground truth), ``macc`` its NaN-mean.

**Boundary IoU** (Cheng et al., "Boundary IoU: Improving Object-Centric Image Segmentation
Evaluation", CVPR 2021), per image and per class ``c``:

* ``d = max(1, round(boundary_fraction * sqrt(H^2 + W^2)))`` pixels (Python ``round``).
* The boundary band of a binary mask ``M`` is ``M`` minus its erosion by a ``(2d+1) x (2d+1)``
  *square* structuring element, computed with :func:`scipy.ndimage.minimum_filter` (a separable
  binary erosion).  Equivalently: the pixels of ``M`` whose chessboard distance (``max(|dy|,
  |dx|)``) to the nearest pixel not in ``M`` is at most ``d``.  This is what the reference code of
  the paper computes (``d`` iterations of a 3 x 3 erosion).  The band is a subset of ``M``, so it is
  the paper's ``G_d ∩ G`` (and ``P_d ∩ P``).
* Image border: with ``border_is_contour=True`` (the default, as the paper's reference code,
  which pads the mask with one ring of zeros before eroding "so mask truncated by the image border
  is also considered as boundary"), pixels outside the image count as not-mask, so the ``d`` rows
  and columns along the image border are in the band of any mask touching them.  With
  ``border_is_contour=False`` pixels outside the image count as mask, and only contours inside the
  image make a band (a mask covering the whole image has an empty band).
* The masks are ``pred == c`` and ``target == c`` of the full label maps (pixels whose target is
  ``ignore_index`` are in neither ground-truth mask, so a ground-truth contour runs along an ignored
  region).  Then, with ``valid = target != ignore_index``, ``P = band(pred == c) & valid`` and
  ``G = band(target == c) & valid``; ``|P & G|`` and ``|P | G|`` are summed per class over the test
  set.  ``boundary_iou_per_class[c]`` is their ratio (NaN when the union is 0) and
  ``boundary_iou`` the NaN-mean over classes.

Boundary IoU needs SciPy (the ``data`` extra).

Example:
    >>> import numpy as np
    >>> target = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [255, 255, 1, 1]])
    >>> pred = np.array([[0, 0, 0, 1], [0, 0, 1, 1], [1, 1, 1, 1]])
    >>> scores = segmentation_metrics(pred, target, num_classes=3)
    >>> [round(v, 4) for v in scores["iou"][:2]], round(scores["miou"], 4), scores["iou"][2]
    ([0.8, 0.8333], 0.8167, nan)
    >>> round(scores["acc"], 4)
    0.9
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

__all__ = ["boundary_band", "boundary_width", "segmentation_metrics"]


def _as_label_map(x: Any, name: str, index: int | None) -> np.ndarray:
    """``x`` (numpy array or torch tensor) as a numpy integer array; raise naming ``name`` otherwise."""
    where = f"argument `{name}`" + ("" if index is None else f", image {index}")
    if hasattr(x, "detach"):  # a torch.Tensor, on any device
        x = x.detach().cpu().numpy()
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{where}: expected a numpy array or a torch.Tensor, got {type(x).__name__}")
    if not np.issubdtype(x.dtype, np.integer):
        raise ValueError(f"{where}: expected an integer label map (class indices), got dtype {x.dtype}")
    return x


def _as_images(x: Any, name: str) -> list[np.ndarray]:
    """``x`` (``H x W`` or ``N x H x W`` array/tensor, or a sequence of ``H x W`` ones) as a list of ``H x W`` arrays."""
    if isinstance(x, np.ndarray) or hasattr(x, "detach"):
        array = _as_label_map(x, name, None)
        if array.ndim == 2:
            return [array]
        if array.ndim == 3:
            if array.shape[0] == 0:
                raise ValueError(f"argument `{name}`: expected at least one image, got shape {tuple(array.shape)}")
            return list(array)
        raise ValueError(f"argument `{name}`: expected an H x W or N x H x W label map, got shape {tuple(array.shape)}")
    if not isinstance(x, Sequence) or isinstance(x, str | bytes):
        raise TypeError(
            f"argument `{name}`: expected a numpy array, a torch.Tensor or a list of them, got {type(x).__name__}"
        )
    if len(x) == 0:
        raise ValueError(f"argument `{name}`: expected at least one image, got an empty {type(x).__name__}")
    images = [_as_label_map(item, name, i) for i, item in enumerate(x)]
    for i, image in enumerate(images):
        if image.ndim != 2:
            raise ValueError(f"argument `{name}`, image {i}: expected an H x W label map, got shape {image.shape}")
    return images


def _check_values(labels: np.ndarray, name: str, index: int, num_classes: int, ignore_index: int) -> None:
    """Raise naming the first value outside ``[0, num_classes)`` that is not ``ignore_index``."""
    bad = ((labels < 0) | (labels >= num_classes)) & (labels != ignore_index)
    if bad.any():
        value = int(labels[bad].flat[0])
        raise ValueError(
            f"argument `{name}`, image {index}: value {value} is outside [0, {num_classes}) "
            f"(num_classes={num_classes}) and is not the ignore index {ignore_index}"
        )


def _check_pairs(preds: list[np.ndarray], targets: list[np.ndarray], num_classes: int, ignore_index: int) -> None:
    if len(preds) != len(targets):
        raise ValueError(f"argument `pred`: expected {len(targets)} images (as many as `target`), got {len(preds)}")
    for i, (pred, target) in enumerate(zip(preds, targets)):
        if pred.shape != target.shape:
            raise ValueError(
                f"argument `pred`, image {i}: expected shape {target.shape} (the shape of `target`), got {pred.shape}"
            )
        _check_values(target, "target", i, num_classes, ignore_index)
        _check_values(pred, "pred", i, num_classes, ignore_index)


def _check_options(num_classes: Any, ignore_index: Any, boundary_fraction: Any) -> None:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int | np.integer) or num_classes < 1:
        raise ValueError(f"argument `num_classes`: expected an integer >= 1, got {num_classes!r}")
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int | np.integer):
        raise ValueError(f"argument `ignore_index`: expected an integer, got {ignore_index!r}")
    if not isinstance(boundary_fraction, int | float) or not math.isfinite(boundary_fraction) or boundary_fraction < 0:
        raise ValueError(
            f"argument `boundary_fraction`: expected a finite number >= 0 (0.02 in the paper), got {boundary_fraction!r}"
        )


def boundary_width(height: int, width: int, boundary_fraction: float = 0.02) -> int:
    """The band width ``d = max(1, round(boundary_fraction * sqrt(height^2 + width^2)))`` in pixels.

    Example:
        >>> boundary_width(512, 512), boundary_width(24, 32), boundary_width(24, 32, 0.1)
        (14, 1, 4)
    """
    return max(1, int(round(boundary_fraction * math.hypot(height, width))))


def boundary_band(mask: np.ndarray, d: int, border_is_contour: bool = True) -> np.ndarray:
    """The inner boundary band of a boolean ``H x W`` mask: ``mask`` minus its erosion by a ``(2d+1)`` square.

    A pixel is in the band when it is in ``mask`` and some pixel within chessboard distance ``d``
    is not.  With ``border_is_contour`` pixels outside the image count as not-mask (as the Boundary
    IoU reference code), otherwise as mask.

    Example:
        >>> band = boundary_band(np.ones((4, 5), bool), 1)
        >>> band.astype(int)
        array([[1, 1, 1, 1, 1],
               [1, 0, 0, 0, 1],
               [1, 0, 0, 0, 1],
               [1, 1, 1, 1, 1]])
        >>> bool(boundary_band(np.ones((4, 5), bool), 1, border_is_contour=False).any())
        False
    """
    from scipy.ndimage import minimum_filter

    mask = np.asarray(mask, dtype=bool)
    band = np.zeros(mask.shape, bool)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return band
    # Erode only the bounding box grown by one not-mask pixel where the image has room: beyond that
    # ring nothing changes the result, and at a side without room the crop edge is the image edge.
    y0, y1 = max(rows[0] - 1, 0), min(rows[-1] + 2, mask.shape[0])
    x0, x1 = max(cols[0] - 1, 0), min(cols[-1] + 2, mask.shape[1])
    crop = mask[y0:y1, x0:x1]
    eroded = minimum_filter(crop.view(np.uint8), size=2 * d + 1, mode="constant", cval=0 if border_is_contour else 1)
    band[y0:y1, x0:x1] = crop & (eroded == 0)
    return band


def _region_counts(pred: np.ndarray, target: np.ndarray, num_classes: int, ignore_index: int) -> np.ndarray:
    """``num_classes x num_classes`` counts of (target, pred) over pixels whose target is a class and pred a class,
    plus one extra column for predictions that are not a class: shape ``num_classes x (num_classes + 1)``."""
    valid = target != ignore_index
    t = target[valid].astype(np.int64)
    p = pred[valid].astype(np.int64)
    p = np.where((p >= 0) & (p < num_classes), p, num_classes)  # a non-class prediction (e.g. 255)
    counts = np.bincount(t * (num_classes + 1) + p, minlength=num_classes * (num_classes + 1))
    return counts.reshape(num_classes, num_classes + 1)


def _boundary_counts(
    pred: np.ndarray, target: np.ndarray, num_classes: int, ignore_index: int, d: int, border_is_contour: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Per-class ``(intersection, union)`` of the boundary bands of one image, on pixels with a valid target."""
    inter = np.zeros(num_classes, np.int64)
    union = np.zeros(num_classes, np.int64)
    valid = target != ignore_index
    present = np.union1d(np.unique(pred), np.unique(target))
    for c in present[(present >= 0) & (present < num_classes)]:
        p = boundary_band(pred == c, d, border_is_contour) & valid
        g = boundary_band(target == c, d, border_is_contour) & valid
        inter[c] = np.count_nonzero(p & g)
        union[c] = np.count_nonzero(p | g)
    return inter, union


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator`` as float64, NaN where the denominator is 0."""
    out = np.full(numerator.shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def _nanmean(values: Iterable[float]) -> float:
    """Mean of the non-NaN values; NaN (without a warning) when there are none."""
    array = np.asarray(list(values), dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmean(array)) if array.size else math.nan


def segmentation_metrics(
    pred: Any,
    target: Any,
    num_classes: int,
    ignore_index: int = 255,
    boundary_fraction: float = 0.02,
    *,
    border_is_contour: bool = True,
) -> dict[str, Any]:
    """mIoU, pixel accuracy and Boundary IoU of predicted label maps over a whole test set.

    See the module docstring for every convention (mmsegmentation's accumulation over the test set,
    the square-erosion boundary band, the image border, ignored pixels).

    Args:
        pred: predicted class indices: an integer ``H x W`` or ``N x H x W`` numpy array or torch
            tensor, or a list of ``H x W`` ones (sizes may differ between images).
        target: ground-truth class indices, in the same form; each image has the shape of its
            prediction.  Pixels equal to ``ignore_index`` are not counted.
        num_classes: the number of classes ``K``; labels are in ``[0, K)`` or ``ignore_index``.
        ignore_index: the label of pixels to ignore (in ``target``; in ``pred`` it is a wrong label).
        boundary_fraction: band width of Boundary IoU as a fraction of the image diagonal (0.02 in
            the paper), rounded, at least one pixel.
        border_is_contour: whether the image border is a contour for the boundary band (the
            paper's reference code: True).

    Returns:
        A dict with ``miou``, ``acc``, ``macc`` and ``boundary_iou`` (floats, NaN when no class
        counts), ``iou``, ``class_acc`` and ``boundary_iou_per_class`` (lists of ``K`` floats, NaN
        for a class that does not count), ``confusion_matrix`` (int64 ``K x K``, rows = target,
        columns = prediction, over the counted pixels whose prediction is a class),
        ``num_images`` and ``num_pixels`` (the counted pixels).

    Raises:
        ValueError: empty input, different numbers of images or shapes (naming the image and both
            shapes), a non-integer dtype, ``num_classes < 1``, or a label outside ``[0, K)`` that is
            not ``ignore_index`` (naming the value and the image).
        TypeError: an input that is not an array, a tensor or a list of them.
    """
    _check_options(num_classes, ignore_index, boundary_fraction)
    targets = _as_images(target, "target")
    preds = _as_images(pred, "pred")
    _check_pairs(preds, targets, num_classes, ignore_index)

    counts = np.zeros((num_classes, num_classes + 1), np.int64)
    b_inter = np.zeros(num_classes, np.int64)
    b_union = np.zeros(num_classes, np.int64)
    for p, t in zip(preds, targets):
        counts += _region_counts(p, t, num_classes, ignore_index)
        d = boundary_width(t.shape[0], t.shape[1], boundary_fraction)
        inter, union = _boundary_counts(p, t, num_classes, ignore_index, d, border_is_contour)
        b_inter += inter
        b_union += union

    confusion = counts[:, :num_classes]
    tp = np.diag(confusion)
    area_label = counts.sum(axis=1)
    area_pred = confusion.sum(axis=0)
    iou = _ratio(tp, area_label + area_pred - tp)
    class_acc = _ratio(tp, area_label)
    boundary = _ratio(b_inter, b_union)
    total = int(area_label.sum())
    return {
        "miou": _nanmean(iou),
        "iou": [float(v) for v in iou],
        "intersection": [int(v) for v in tp],
        "union": [int(v) for v in area_label + area_pred - tp],
        "acc": float(tp.sum() / total) if total else math.nan,
        "macc": _nanmean(class_acc),
        "class_acc": [float(v) for v in class_acc],
        "boundary_iou": _nanmean(boundary),
        "boundary_iou_per_class": [float(v) for v in boundary],
        "confusion_matrix": np.ascontiguousarray(confusion),
        "num_images": len(targets),
        "num_pixels": total,
    }
