"""Label values in files <-> class indices inside ``art_seg``, per label convention, and the tumour regions.

Inside ``art_seg`` a label map is ``(D, H, W)`` of class indices ``0 .. K-1``; a :class:`LabelConvention` says
which value a file stores for each class (values appear only when reading or writing files). The registered
conventions (:data:`CONVENTIONS`):

=====  ====================================  =============  =============  ==========================  =============
class  tissue                                ``brats2018``  ``brats2023``  ``brats2024``               ``msd_brats``
=====  ====================================  =============  =============  ==========================  =============
0      background (and healthy brain)        0              0              0                           0
1      necrotic and non-enhancing core       1              1              1 (NETC)                    2
2      peritumoural edema                    2              2              2 (SNFH)                    1
3      enhancing tumour                      4              3              3 (ET)                      3
4      resection cavity                      -              -              4 (RC)                      -
=====  ====================================  =============  =============  ==========================  =============

- ``brats2018``: BraTS 2018 to 2021 (values ``{0, 1, 2, 4}``); ``brats2023``: the BraTS 2023 challenges
  (``{0, 1, 2, 3}``); both have the four classes :data:`CLASS_NAMES` (:data:`NB_CLASSES` = 4).
- ``brats2024``: BraTS 2024 post-treatment glioma (GLI): 1 non-enhancing tumour core (NETC), 2 surrounding
  non-enhancing FLAIR hyperintensity (SNFH, edema), 3 enhancing tumour (ET), 4 resection cavity (RC). Five
  classes; the values are the class indices.
- ``msd_brats``: the Medical Segmentation Decathlon's Task01 BrainTumour and nnU-Net's BraTS datasets
  (``Dataset001_BrainTumour``, ``Dataset137_BraTS2021``): 1 edema, 2 non-enhancing / necrotic, 3 enhancing.
  Loaded into ``art_seg``'s classes (1 necrotic core, 2 edema, 3 enhancing) and written back as 1 edema, 2 core.

A dataset with labels of its own (an nnU-Net raw dataset that is not BraTS) gets a :class:`LabelConvention` of its
own (see :mod:`art_seg.data.dataset_json`); every function here accepts a registered name or such an object.

The evaluated regions overlap, so they are binary masks, not classes (class indices; :func:`region_labels` gives
the values): whole tumour ``"WT"`` = ``{1, 2, 3}``, tumour core ``"TC"`` = ``{1, 3}``, enhancing tumour
``"ET"`` = ``{3}`` in every BraTS convention; ``brats2024`` adds ``"NETC"`` = ``{1}``, ``"SNFH"`` = ``{2}`` and
``"RC"`` = ``{4}`` (the cavity is in no tumour region).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from art_seg._checks import check_choice, check_type

__all__ = [
    "CLASS_NAMES",
    "CONVENTIONS",
    "LABEL_CONVENTIONS",
    "LabelConvention",
    "LabelValueError",
    "NB_CLASSES",
    "REGIONS",
    "REGION_CLASSES",
    "classes_to_labels",
    "get_convention",
    "labels_to_classes",
    "region_labels",
    "region_masks",
]

#: Class names of the four-class conventions (``brats2018``, ``brats2023``, ``msd_brats``).
CLASS_NAMES: tuple[str, ...] = ("background", "necrotic_core", "edema", "enhancing_tumour")
NB_CLASSES = len(CLASS_NAMES)
#: Region names of the four-class conventions, in the order ``region_masks`` stacks them.
REGIONS: tuple[str, ...] = ("WT", "TC", "ET")
#: Class indices that make up each region (four-class conventions).
REGION_CLASSES: dict[str, tuple[int, ...]] = {"WT": (1, 2, 3), "TC": (1, 3), "ET": (3,)}


class LabelValueError(ValueError):
    """A label map holds values that are not labels of the expected convention."""


@dataclass(frozen=True)
class LabelConvention:
    """Which value a label file stores for each class index, the class names and the regions.

    Attributes:
        name: e.g. ``"brats2024"``, or a dataset's name for a dataset's own labels.
        values: the file value of class ``k`` at position ``k``; ``values[0]`` is 0 (background); distinct
            integers in ``0 .. 255`` (label maps are written as ``uint8``).
        class_names: one name per class.
        regions: ``((region name, class indices), ...)`` in the order :func:`region_masks` stacks them; class
            indices in ``1 .. K-1``. Empty when the dataset defines none.
        title: a short description used in messages, e.g. ``"BraTS 2018 to 2021"``.

    Example:
        >>> own = LabelConvention("Dataset004_Hippocampus", (0, 1, 2), ("background", "anterior", "posterior"))
        >>> own.nb_classes, labels_to_classes(np.array([0, 2]), own).tolist()
        (3, [0, 2])
    """

    name: str
    values: tuple[int, ...]
    class_names: tuple[str, ...]
    regions: tuple[tuple[str, tuple[int, ...]], ...] = ()
    title: str = ""

    def __post_init__(self) -> None:
        check_type("name", self.name, str)
        values = tuple(int(v) for v in self.values)
        if len(values) < 2:
            raise ValueError(f"values must hold background and at least one class, got {self.values!r}")
        if len(set(values)) != len(values):
            raise ValueError(f"values must be distinct, got {values}")
        if values[0] != 0:
            raise ValueError(f"values[0] must be 0 (background), got {values}")
        if min(values) < 0 or max(values) > 255:
            raise ValueError(f"values must be in 0..255 (label maps are written as uint8), got {values}")
        names = tuple(self.class_names)
        if len(names) != len(values) or not all(isinstance(n, str) for n in names):
            raise ValueError(f"class_names must have {len(values)} names (one per value), got {names!r}")
        regions = tuple((str(r), tuple(int(c) for c in classes)) for r, classes in self.regions)
        for region, classes in regions:
            bad = [c for c in classes if not 1 <= c < len(values)]
            if bad or not classes:
                first = bad[0] if bad else None
                raise ValueError(f"region {region!r} holds class {first}, outside 1..{len(values) - 1}")
        if len({r for r, _ in regions}) != len(regions):
            raise ValueError(f"region names must be distinct, got {[r for r, _ in regions]}")
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "class_names", names)
        object.__setattr__(self, "regions", regions)

    @property
    def nb_classes(self) -> int:
        """Number of classes ``K`` (background included)."""
        return len(self.values)

    @property
    def region_names(self) -> tuple[str, ...]:
        """Region names in order."""
        return tuple(r for r, _ in self.regions)

    @property
    def region_classes(self) -> dict[str, tuple[int, ...]]:
        """Region name -> class indices."""
        return dict(self.regions)

    def describe(self) -> str:
        """``"<title>: 1 necrotic core, 2 edema, 4 enhancing tumour"``: each foreground value and its class."""
        classes = ", ".join(f"{v} {n.replace('_', ' ')}" for v, n in zip(self.values[1:], self.class_names[1:]))
        return f"{self.title or self.name}: {classes}"


_BRATS_REGIONS = tuple(REGION_CLASSES.items())
#: The registered conventions, by name.
CONVENTIONS: dict[str, LabelConvention] = {
    "brats2018": LabelConvention("brats2018", (0, 1, 2, 4), CLASS_NAMES, _BRATS_REGIONS, "BraTS 2018 to 2021"),
    "brats2023": LabelConvention("brats2023", (0, 1, 2, 3), CLASS_NAMES, _BRATS_REGIONS, "BraTS 2023"),
    "brats2024": LabelConvention(
        "brats2024",
        (0, 1, 2, 3, 4),
        ("background", "NETC", "SNFH", "enhancing_tumour", "resection_cavity"),
        (*_BRATS_REGIONS, ("NETC", (1,)), ("SNFH", (2,)), ("RC", (4,))),
        "BraTS 2024 post-treatment glioma",
    ),
    "msd_brats": LabelConvention(
        "msd_brats", (0, 2, 1, 3), CLASS_NAMES, _BRATS_REGIONS, "MSD Task01 / nnU-Net BraTS"
    ),
}
#: The file value of each class index, per registered convention (``CONVENTIONS[name].values``).
LABEL_CONVENTIONS: dict[str, tuple[int, ...]] = {name: c.values for name, c in CONVENTIONS.items()}


def get_convention(convention: str | LabelConvention, name: str = "convention") -> LabelConvention:
    """The :class:`LabelConvention` for a registered name (or the object itself).

    Raises:
        ValueError: an unknown name (the message names ``name`` and the registered names).
        TypeError: neither a string nor a :class:`LabelConvention`.

    Example:
        >>> get_convention("brats2024").nb_classes
        5
    """
    check_type(name, convention, (str, LabelConvention))
    if isinstance(convention, LabelConvention):
        return convention
    check_choice(name, convention, CONVENTIONS)
    return CONVENTIONS[convention]


def _hint(present: list) -> str:
    """Which registered conventions hold every value present, the one with fewest classes first."""
    fits = [c for c in CONVENTIONS.values() if set(present) <= set(c.values)]
    if not fits:
        return ""
    fits.sort(key=lambda c: c.nb_classes)  # stable: registry order among equals
    first, others = fits[0], fits[1:]
    hint = f" (the values fit {first.name!r} ({first.describe()}): pass label_convention={first.name!r}"
    if others:
        also = "; ".join(f"label_convention={c.name!r} ({c.describe()})" for c in others)
        hint += f"; they also fit {also}"
    return hint + ")"


def labels_to_classes(
    values: np.ndarray,
    convention: str | LabelConvention = "brats2018",
    *,
    source: str | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Map label values to class indices ``0 .. K-1`` (``K`` = the convention's number of classes).

    Args:
        values: label map of any shape (usually ``(D, H, W)``), integer or integral float values.
        convention: a registered name (``"brats2018"``: values ``{0, 1, 2, 4}``; ``"brats2023"``:
            ``{0, 1, 2, 3}``; ``"brats2024"``: ``{0, 1, 2, 3, 4}``; ``"msd_brats"``) or a :class:`LabelConvention`.
        source: where the values came from (a file path), named in the error message.
        out: optional integer array of the same shape to write the classes into (no other full-size
            temporary than boolean masks is made).

    Returns:
        ``int64`` array (or ``out``) of the same shape with class indices ``0 .. K-1``.

    Raises:
        LabelValueError: if a value is not a label of ``convention`` (the message names ``source``, the unknown
            values and the registered conventions that hold every value present, with their meanings).

    Example:
        >>> labels_to_classes(np.array([0, 1, 2, 4])).tolist()
        [0, 1, 2, 3]
    """
    spec = get_convention(convention)
    values = np.asarray(values)
    where = f"{source}: " if source is not None else ""
    if not (np.issubdtype(values.dtype, np.integer) or np.issubdtype(values.dtype, np.floating)):
        raise LabelValueError(f"{where}label map must hold numbers, got dtype {values.dtype}")
    present = np.unique(values).tolist()
    allowed = spec.values
    unknown = [v for v in present if v not in allowed]
    if unknown:
        raise LabelValueError(
            f"{where}label map holds value(s) {unknown} that are not {spec.name} labels {sorted(allowed)}; "
            f"values present: {present}{_hint(present)}"
        )
    if out is None:
        out = np.zeros(values.shape, dtype=np.int64)
    elif out.shape != values.shape or not np.issubdtype(out.dtype, np.integer):
        raise ValueError(f"out must be an integer array of shape {values.shape}, got {out.dtype} {out.shape}")
    else:
        out[...] = 0
    for index, value in enumerate(allowed):
        if index and value in present:
            out[values == value] = index
    return out


def classes_to_labels(classes: np.ndarray, convention: str | LabelConvention = "brats2018") -> np.ndarray:
    """Map class indices ``0 .. K-1`` back to the convention's label values (for writing segmentations).

    Args:
        classes: integer array of class indices of any shape.
        convention: a registered name (``"brats2018"``: class 3 -> value 4; ``"brats2023"``: class 3 -> 3;
            ``"brats2024"``: the identity on ``0 .. 4``; ``"msd_brats"``: 1 -> 2, 2 -> 1) or a
            :class:`LabelConvention`.

    Returns:
        ``uint8`` array of label values, same shape.

    Raises:
        ValueError: if ``classes`` is not integer or holds an index outside ``0 .. K-1``.

    Example:
        >>> classes_to_labels(np.array([0, 1, 2, 3])).tolist()
        [0, 1, 2, 4]
    """
    spec = get_convention(convention)
    classes = np.asarray(classes)
    if not np.issubdtype(classes.dtype, np.integer):
        raise ValueError(f"classes must be an integer array of class indices, got dtype {classes.dtype}")
    k = spec.nb_classes
    if classes.size and (classes.min() < 0 or classes.max() >= k):
        raise ValueError(f"classes must be in 0..{k - 1}, got values in [{classes.min()}, {classes.max()}]")
    return np.asarray(spec.values, dtype=np.uint8)[classes]


def region_labels(region: str, convention: str | LabelConvention = "brats2018") -> tuple[int, ...]:
    """Label values that make up ``region`` in ``convention`` (``"WT"``, ``"TC"``, ``"ET"``; with
    ``"brats2024"`` also ``"NETC"``, ``"SNFH"``, ``"RC"``).

    Example:
        >>> region_labels("TC"), region_labels("TC", "brats2023"), region_labels("RC", "brats2024")
        ((1, 4), (1, 3), (4,))
    """
    spec = get_convention(convention)
    check_choice("region", region, spec.region_names)
    return tuple(spec.values[c] for c in spec.region_classes[region])


def region_masks(
    label_map: np.ndarray,
    convention: str | LabelConvention | None = None,
    *,
    regions: Sequence[str] | None = None,
    class_indices: bool = False,
) -> np.ndarray:
    """Binary masks of the tumour regions (whole tumour, tumour core, enhancing tumour, ...).

    Args:
        label_map: integer label map of any shape, e.g. ``(D, H, W)`` or ``(N, D, H, W)``.
        convention: ``None`` when ``label_map`` holds class indices ``0 .. 3`` of the four-class BraTS
            conventions (the ``art_seg`` default); else a registered name or :class:`LabelConvention` whose label
            values ``label_map`` holds (or whose class indices, with ``class_indices=True``).
        regions: region names to stack, in order; default all of the convention's regions (``("WT", "TC",
            "ET")``; ``brats2024`` adds ``"NETC"``, ``"SNFH"``, ``"RC"``).
        class_indices: ``label_map`` holds class indices ``0 .. K-1`` of ``convention``, not its label values
            (implied when ``convention`` is ``None``).

    Returns:
        ``bool`` array ``(R, *label_map.shape)``: one mask per region, in the order of ``regions``.

    Raises:
        ValueError: if ``label_map`` is not an integer array, or a region is not one of the convention's.
        LabelValueError: if it holds values outside the given convention, or class indices outside ``0 .. K-1``.

    Example:
        >>> region_masks(np.array([0, 1, 2, 3])).astype(int).tolist()
        [[0, 1, 1, 1], [0, 1, 0, 1], [0, 0, 0, 1]]
    """
    check_type("label_map", label_map, np.ndarray)
    check_type("class_indices", class_indices, bool)
    if not np.issubdtype(label_map.dtype, np.integer):
        raise ValueError(f"label_map must be an integer array, got dtype {label_map.dtype}")
    spec = get_convention("brats2018" if convention is None else convention)
    names = spec.region_names if regions is None else tuple(regions)
    for name in names:
        check_choice("region", name, spec.region_names)
    if convention is None or class_indices:
        k = spec.nb_classes
        if label_map.size and (label_map.min() < 0 or label_map.max() >= k):
            raise LabelValueError(
                f"label_map must hold class indices 0..{k - 1} (or pass convention= for label values), "
                f"got values in [{label_map.min()}, {label_map.max()}]"
            )
        classes = label_map
    else:
        classes = labels_to_classes(label_map, spec)
    region_classes = spec.region_classes
    return np.stack([np.isin(classes, region_classes[r]) for r in names])
