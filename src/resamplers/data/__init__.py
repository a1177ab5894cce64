"""Matting data: real composites from Debian packages, a synthetic source, benchmark folders.

Needs the ``data`` extra (Pillow, SciPy).  The pieces:

* :func:`fetch` downloads the real foregrounds (Tux Paint photo stamps with hand-made alpha) and
  backgrounds (wallpaper photographs) with ``apt-get download`` into a cache directory
  (``--root``, ``$RESAMPLERS_DATA``, or ``~/.cache/resamplers/data``); :class:`DebianSource` reads
  them.  :class:`SyntheticSource` needs nothing; :class:`FolderSource` / :class:`MattingFolder`
  read Composition-1k-style folders.  Every source splits foregrounds and backgrounds disjointly
  into ``train`` and ``test`` by ``crc32`` of their names.
* :func:`make_composite` composites a foreground on a background (premultiplied resizing,
  optional strands and defocus, I = aF + (1 - a)B in 8 bits); :func:`make_trimap` makes DIM
  trimaps.
* :func:`write_test_set` writes the fixed test set once; :class:`MattingTestSet` reads it;
  :class:`TrainingComposites` makes training composites on the fly.
* :class:`SegmentationComposites` and :func:`write_segmentation_test_set` make the built-in
  segmentation data (cut-and-paste composites of the same foregrounds, classes from the stamps'
  folders; :mod:`resamplers.data.segmentation`).
* :func:`open_segmentation_folder` reads semantic-segmentation datasets in their distributed layouts
  (Pascal VOC, ADE20K / mmsegmentation, a generic ``images/`` + ``masks/`` + ``classes.txt``),
  yielding ``image`` / ``mask`` (int64 class indices, 255 ignored) / ``name`` dicts; see
  :mod:`resamplers.data.segmentation_folders`.

The sample contract (every dataset here yields it; the default collate batches it):

==========  =======================================  ======================================
key         type                                      meaning
==========  =======================================  ======================================
``image``   float32 ``3 x H x W`` in [0, 1]           the composite (8-bit values / 255)
``alpha``   float32 ``1 x H x W`` in [0, 1]           ground-truth alpha (8-bit / 255)
``trimap``  uint8 ``H x W``, values 0 / 128 / 255     background / unknown / foreground
``fg``      float32 ``3 x H x W``                     foreground colour, defined everywhere
``bg``      float32 ``3 x H x W``                     background
``name``    str                                       a unique name of the sample
``thin``    bool                                      procedural soft layers were added
==========  =======================================  ======================================

``fg``/``bg`` are absent for merged-image benchmark folders that do not ship them.  Within a
composite, ``image == rint(255 (alpha fg + (1 - alpha) bg)) / 255`` exactly.

Example:
    >>> from resamplers.data import SyntheticSource, TrainingComposites
    >>> source = SyntheticSource(foregrounds=6, backgrounds=6, foreground_size=32, background_size=64)
    >>> batch = next(iter(torch.utils.data.DataLoader(TrainingComposites(source, size=32), batch_size=2)))
    >>> batch["image"].shape, batch["trimap"].dtype
    (torch.Size([2, 3, 32, 32]), torch.uint8)
"""

from .compositor import Composite, Recipe, make_composite
from .errors import DataError
from .fetch import PACKAGES, FetchReport, check_files, default_root, fetch, listed_files
from .folders import FolderSource, MattingFolder, open_matting_folder
from .samples import make_sample
from .segmentation import (
    IGNORE_INDEX,
    SEGMENTATION_CLASSES,
    SegmentationComposites,
    SegmentationTestSet,
    class_counts,
    stamp_class,
    write_segmentation_test_set,
)
from .segmentation_folders import (
    ADE20K_CLASSES,
    VOC_CLASSES,
    ADESegmentation,
    GenericSegmentation,
    SegmentationFolder,
    VOCSegmentation,
    open_segmentation_folder,
)
from .soft_layers import StrandStyle
from .sources import DebianSource, Foreground, Source, split_names
from .specs import open_source
from .synthetic import SyntheticSource
from .testset import MattingTestSet, default_test_set_dir, write_test_set
from .training import TrainingComposites
from .trimap import default_radius, make_trimap, random_radius

__all__ = [
    "ADE20K_CLASSES",
    "IGNORE_INDEX",
    "SEGMENTATION_CLASSES",
    "SegmentationComposites",
    "SegmentationTestSet",
    "class_counts",
    "stamp_class",
    "write_segmentation_test_set",
    "PACKAGES",
    "VOC_CLASSES",
    "ADESegmentation",
    "Composite",
    "DataError",
    "DebianSource",
    "FetchReport",
    "FolderSource",
    "Foreground",
    "GenericSegmentation",
    "MattingFolder",
    "MattingTestSet",
    "Recipe",
    "SegmentationFolder",
    "Source",
    "StrandStyle",
    "SyntheticSource",
    "TrainingComposites",
    "VOCSegmentation",
    "check_files",
    "default_radius",
    "default_root",
    "default_test_set_dir",
    "fetch",
    "listed_files",
    "make_composite",
    "make_sample",
    "make_trimap",
    "open_matting_folder",
    "open_segmentation_folder",
    "open_source",
    "random_radius",
    "split_names",
    "write_test_set",
]
