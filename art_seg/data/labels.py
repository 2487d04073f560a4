"""BraTS label values <-> class indices, and the three BraTS tumour regions.

Inside ``art_seg`` a label map is ``(D, H, W)`` of class indices:

=====  ====================================  ===================  ===================
class  tissue                                value, ``brats2018``  value, ``brats2023``
=====  ====================================  ===================  ===================
0      background (and healthy brain)        0                    0
1      necrotic and non-enhancing core       1                    1
2      peritumoural edema                    2                    2
3      enhancing tumour                      4                    3
=====  ====================================  ===================  ===================

``brats2018`` is the convention of BraTS 2018 to 2021 (values ``{0, 1, 2, 4}``); ``brats2023`` that of the
BraTS 2023 GLI challenge (values ``{0, 1, 2, 3}``). BraTS values appear only when reading or writing files.

The evaluated regions overlap, so they are binary masks, not classes:

- whole tumour ``"WT"``: classes ``{1, 2, 3}`` (values ``{1, 2, 4}``, or ``{1, 2, 3}`` in 2023);
- tumour core ``"TC"``: classes ``{1, 3}`` (values ``{1, 4}``, or ``{1, 3}``);
- enhancing tumour ``"ET"``: class ``{3}`` (value ``{4}``, or ``{3}``).
"""

from __future__ import annotations

import numpy as np

from art_seg._checks import check_choice, check_type

__all__ = [
    "CLASS_NAMES",
    "LABEL_CONVENTIONS",
    "LabelValueError",
    "NB_CLASSES",
    "REGIONS",
    "REGION_CLASSES",
    "classes_to_labels",
    "labels_to_classes",
    "region_labels",
    "region_masks",
]

#: BraTS label value of each class index, per convention.
LABEL_CONVENTIONS: dict[str, tuple[int, ...]] = {
    "brats2018": (0, 1, 2, 4),
    "brats2023": (0, 1, 2, 3),
}
CLASS_NAMES: tuple[str, ...] = ("background", "necrotic_core", "edema", "enhancing_tumour")
NB_CLASSES = len(CLASS_NAMES)
#: Region names, in the order ``region_masks`` stacks them.
REGIONS: tuple[str, ...] = ("WT", "TC", "ET")
#: Class indices that make up each region.
REGION_CLASSES: dict[str, tuple[int, ...]] = {"WT": (1, 2, 3), "TC": (1, 3), "ET": (3,)}


class LabelValueError(ValueError):
    """A label map holds values that are not BraTS labels of the expected convention."""


def labels_to_classes(
    values: np.ndarray,
    convention: str = "brats2018",
    *,
    source: str | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Map BraTS label values to class indices ``0 .. 3``.

    Args:
        values: label map of any shape (usually ``(D, H, W)``), integer or integral float values.
        convention: ``"brats2018"`` (values ``{0, 1, 2, 4}``, BraTS 2018 to 2021) or ``"brats2023"``
            (values ``{0, 1, 2, 3}``).
        source: where the values came from (a file path), named in the error message.
        out: optional integer array of the same shape to write the classes into (no other full-size
            temporary than boolean masks is made).

    Returns:
        ``int64`` array (or ``out``) of the same shape with class indices ``0 .. 3``.

    Raises:
        LabelValueError: if a value is not a label of ``convention`` (the message names ``source`` and the
            unknown values).

    Example:
        >>> labels_to_classes(np.array([0, 1, 2, 4])).tolist()
        [0, 1, 2, 3]
    """
    check_choice("convention", convention, LABEL_CONVENTIONS)
    values = np.asarray(values)
    where = f"{source}: " if source is not None else ""
    if not (np.issubdtype(values.dtype, np.integer) or np.issubdtype(values.dtype, np.floating)):
        raise LabelValueError(f"{where}label map must hold numbers, got dtype {values.dtype}")
    present = np.unique(values).tolist()
    allowed = LABEL_CONVENTIONS[convention]
    unknown = [v for v in present if v not in allowed]
    if unknown:
        hint = ""
        fits = [name for name, vals in LABEL_CONVENTIONS.items() if set(present) <= set(vals)]
        if fits:
            hint = f" (the values fit the {fits[0]!r} convention: pass label_convention={fits[0]!r})"
        raise LabelValueError(
            f"{where}label map holds value(s) {unknown} that are not {convention} labels {sorted(allowed)}; "
            f"values present: {present}{hint}"
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


def classes_to_labels(classes: np.ndarray, convention: str = "brats2018") -> np.ndarray:
    """Map class indices ``0 .. 3`` back to BraTS label values (for writing segmentations).

    Args:
        classes: integer array of class indices of any shape.
        convention: ``"brats2018"`` (class 3 -> value 4) or ``"brats2023"`` (class 3 -> value 3).

    Returns:
        ``uint8`` array of BraTS label values, same shape.

    Raises:
        ValueError: if ``classes`` is not integer or holds an index outside ``0 .. 3``.

    Example:
        >>> classes_to_labels(np.array([0, 1, 2, 3])).tolist()
        [0, 1, 2, 4]
    """
    check_choice("convention", convention, LABEL_CONVENTIONS)
    classes = np.asarray(classes)
    if not np.issubdtype(classes.dtype, np.integer):
        raise ValueError(f"classes must be an integer array of class indices, got dtype {classes.dtype}")
    if classes.size and (classes.min() < 0 or classes.max() >= NB_CLASSES):
        raise ValueError(f"classes must be in 0..{NB_CLASSES - 1}, got values in [{classes.min()}, {classes.max()}]")
    return np.asarray(LABEL_CONVENTIONS[convention], dtype=np.uint8)[classes]


def region_labels(region: str, convention: str = "brats2018") -> tuple[int, ...]:
    """BraTS label values that make up ``region`` (``"WT"``, ``"TC"`` or ``"ET"``) in ``convention``.

    Example:
        >>> region_labels("TC"), region_labels("TC", "brats2023")
        ((1, 4), (1, 3))
    """
    check_choice("region", region, REGIONS)
    check_choice("convention", convention, LABEL_CONVENTIONS)
    return tuple(LABEL_CONVENTIONS[convention][c] for c in REGION_CLASSES[region])


def region_masks(label_map: np.ndarray, convention: str | None = None) -> np.ndarray:
    """Binary masks of the BraTS regions whole tumour, tumour core and enhancing tumour.

    Args:
        label_map: integer label map of any shape, e.g. ``(D, H, W)`` or ``(N, D, H, W)``.
        convention: ``None`` when ``label_map`` holds class indices ``0 .. 3`` (the ``art_seg`` convention);
            ``"brats2018"`` or ``"brats2023"`` when it holds BraTS label values of that convention.

    Returns:
        ``bool`` array ``(3, *label_map.shape)``: masks in the order of ``REGIONS`` = ``("WT", "TC", "ET")``.

    Raises:
        ValueError: if ``label_map`` is not an integer array.
        LabelValueError: if it holds values outside the given convention.

    Example:
        >>> region_masks(np.array([0, 1, 2, 3])).astype(int).tolist()
        [[0, 1, 1, 1], [0, 1, 0, 1], [0, 0, 0, 1]]
    """
    check_type("label_map", label_map, np.ndarray)
    if not np.issubdtype(label_map.dtype, np.integer):
        raise ValueError(f"label_map must be an integer array, got dtype {label_map.dtype}")
    if convention is None:
        if label_map.size and (label_map.min() < 0 or label_map.max() >= NB_CLASSES):
            raise LabelValueError(
                f"label_map must hold class indices 0..{NB_CLASSES - 1} (or pass convention= for BraTS values), "
                f"got values in [{label_map.min()}, {label_map.max()}]"
            )
        classes = label_map
    else:
        classes = labels_to_classes(label_map, convention)
    return np.stack([np.isin(classes, REGION_CLASSES[r]) for r in REGIONS])
