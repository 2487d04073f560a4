"""Input checks shared by the metrics: masks, class-index maps and region definitions.

Every check converts torch tensors with ``.detach().cpu().numpy()``, never writes into its inputs, and raises
``ValueError`` (or ``TypeError``) naming the argument and the offending value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from art_seg._checks import check_number, check_type
from art_seg.data.labels import NB_CLASSES, REGION_CLASSES
from art_seg.data.regions import RegionSpec, region_spec

#: A mask or label map: numpy array or torch tensor, any shape (usually ``(D, H, W)`` or ``(H, W)``).
ArrayLike = np.ndarray | torch.Tensor
#: Region name -> class indices making up the region.
Regions = Mapping[str, Sequence[int]]


def to_numpy(name: str, value: ArrayLike) -> np.ndarray:
    """``value`` as a numpy array (torch tensors are detached and copied to the CPU)."""
    check_type(name, value, (np.ndarray, torch.Tensor))
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value


def check_same_shape(pred: np.ndarray, truth: np.ndarray) -> None:
    """Raise ``ValueError`` naming both shapes unless ``pred`` and ``truth`` have the same shape."""
    if pred.shape != truth.shape:
        raise ValueError(f"pred and truth must have the same shape, got pred {pred.shape} and truth {truth.shape}")


def as_mask(name: str, value: ArrayLike) -> np.ndarray:
    """A boolean mask from a bool array, or from a numeric array holding only 0 and 1."""
    array = to_numpy(name, value)
    if array.dtype == np.bool_:
        return array
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise ValueError(f"{name} must be a boolean mask, got dtype {array.dtype}")
    bad = (array != 0) & (array != 1)
    if bad.any():
        raise ValueError(
            f"{name} must be a boolean mask (bool, or only 0 and 1 values), got value(s) "
            f"{np.unique(array[bad])[:5].tolist()} (dtype {array.dtype})"
        )
    return array != 0


def mask_pair(pred: ArrayLike, truth: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Checked boolean masks ``pred`` and ``truth`` of the same shape."""
    pred, truth = as_mask("pred", pred), as_mask("truth", truth)
    check_same_shape(pred, truth)
    return pred, truth


def as_class_map(name: str, value: ArrayLike, nb_classes: int | None) -> np.ndarray:
    """An integer class-index map holding ``0 .. nb_classes - 1`` (any value ``>= 0`` when ``None``)."""
    array = to_numpy(name, value)
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must be an integer map of class indices, got dtype {array.dtype}")
    bad = array < 0 if nb_classes is None else (array < 0) | (array >= nb_classes)
    if bad.any():
        wanted = "non-negative class indices" if nb_classes is None else f"class indices 0..{nb_classes - 1}"
        raise ValueError(f"{name} must hold {wanted}, got value(s) {np.unique(array[bad])[:5].tolist()}")
    return array


def region_pair(
    pred: ArrayLike, truth: ArrayLike, regions: Regions | None
) -> tuple[np.ndarray, np.ndarray, dict[str, tuple[int, ...]]]:
    """Checked class maps and regions.

    ``regions=None`` means the BraTS regions :data:`~art_seg.data.labels.REGION_CLASSES`; the maps must then
    hold ``art_seg`` class indices ``0 .. 3`` (a BraTS label value 4 is an error, not a silent miss). Custom
    regions allow any non-negative class index.
    """
    nb_classes = NB_CLASSES if regions is None else None
    checked = _check_regions(REGION_CLASSES if regions is None else regions)
    pred, truth = as_class_map("pred", pred, nb_classes), as_class_map("truth", truth, nb_classes)
    check_same_shape(pred, truth)
    return pred, truth, checked


def _check_regions(regions: Regions) -> dict[str, tuple[int, ...]]:
    check_type("regions", regions, Mapping)
    if not regions:
        raise ValueError("regions must name at least one region, got an empty mapping")
    checked = {}
    for name, classes in regions.items():
        check_type(f"regions[{name!r}]", classes, (tuple, list))
        if not classes:
            raise ValueError(f"regions[{name!r}] must list at least one class index, got {classes!r}")
        for index in classes:
            check_number(f"regions[{name!r}] class index", index, low=0, integer=True)
        checked[name] = tuple(int(index) for index in classes)
    return checked


def region_masks(
    pred: ArrayLike, truth: ArrayLike, regions: Regions | str | RegionSpec | None
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{region name: (pred mask, truth mask)}`` from label maps or masks, for the lesion and instance metrics.

    - Boolean ``pred`` and ``truth`` with ``regions=None``: one mask each, returned under the name ``"mask"``.
    - Boolean ``pred`` and ``truth`` with ``regions`` a :class:`~art_seg.data.regions.RegionSpec` or a preset
      name (:data:`~art_seg.data.regions.REGION_PRESETS`): region masks ``(R, *spatial)``, one per region in
      the spec's channel order (a sigmoid model's thresholded output).
    - Integer class-index maps: ``regions`` ``None`` (BraTS WT, TC, ET), a mapping ``name -> classes``, a preset
      name or a spec; each region's mask is where the class is one of the region's classes.

    Raises:
        ValueError, TypeError: mixed or unsupported dtypes, shapes that differ, a region axis of the wrong
            length, or a bad region definition (as :func:`region_pair`).
    """
    pred, truth = to_numpy("pred", pred), to_numpy("truth", truth)
    if pred.dtype == np.bool_ or truth.dtype == np.bool_:
        pred, truth = mask_pair(pred, truth)
        if regions is None:
            return {"mask": (pred, truth)}
        if not isinstance(regions, (str, RegionSpec)):
            raise TypeError(
                f"regions for boolean region masks must be a RegionSpec or a preset name, got {type(regions).__name__}"
            )
        spec = region_spec(regions)
        if pred.ndim < 2 or pred.shape[0] != spec.nb_regions:
            raise ValueError(
                f"boolean pred and truth with regions {spec.names} must be region masks (R = {spec.nb_regions}, "
                f"*spatial), got shape {pred.shape}"
            )
        return {name: (pred[r], truth[r]) for r, name in enumerate(spec.names)}
    if isinstance(regions, (str, RegionSpec)):
        spec = region_spec(regions)
        regions = dict(zip(spec.names, spec.classes))
    pred, truth, checked = region_pair(pred, truth, regions)
    return {name: (np.isin(pred, classes), np.isin(truth, classes)) for name, classes in checked.items()}
