"""Region specifications: ordered, possibly overlapping regions, each a named set of classes, and the exact way
between class-index label maps and one binary mask per region.

Region-based models (nnU-Net's BraTS setup, MONAI's BraTS bundle) predict one sigmoid channel per region, e.g.
whole tumour, tumour core and enhancing tumour. A :class:`RegionSpec` says which art_seg classes make up each
channel's region, and how to turn region masks back into a label map (for writing NIfTI files):

- ``to_masks``: channel ``r`` is on where the class is in ``classes[r]``;
- ``to_label_map``: start from background 0 and, for each region in ``paint_order``, paint ``class_order[r]``
  where channel ``r`` is on; later regions overwrite earlier ones. ``class_order`` is nnU-Net's
  ``regions_class_order`` (one class per region, in channel order) and the default ``paint_order`` is the channel
  order, which is nnU-Net's ``convert_probabilities_to_segmentation`` exactly. A preset whose channel order
  paints a large region last (MONAI's TC, WT, ET) sets ``paint_order`` so that the conversion stays exact.

Class indices are art_seg's (:mod:`art_seg.data.labels`): ``0`` background, ``1`` necrotic core, ``2`` edema,
``3`` enhancing tumour; BraTS 2024's post-treatment glioma labels add ``4`` resection cavity.

Presets (:data:`REGION_PRESETS`), each exact (``to_label_map(to_masks(y)) == y`` for every label map ``y`` with
classes in ``[0, nb_classes)``):

================  ====================================================  ==================  ==================
name              regions (channel order), art_seg classes              ``class_order``     ``paint_order``
================  ====================================================  ==================  ==================
``brats``         WT {1,2,3}, TC {1,3}, ET {3}                          (2, 1, 3)           channel order
``nnunet_brats``  the same: nnU-Net's BraTS ``dataset.json`` (whole     (2, 1, 3)           channel order
                  tumour, tumour core, enhancing tumour), its
                  ``regions_class_order`` (1, 2, 3) in nnU-Net's labels
                  (1 edema, 2 necrosis, 3 enhancing) in art_seg classes
``monai_brats``   TC {1,3}, WT {1,2,3}, ET {3} (MONAI's                 (1, 2, 3)           WT, TC, ET
                  ``ConvertToMultiChannelBasedOnBratsClasses``)
``brats2024``     ET {3}, NETC {1}, SNFH {2}, RC {4}, TC {1,3},         (3, 1, 2, 4, 1, 2)  WT, TC, ET, NETC,
                  WT {1,2,3} (post-treatment GLI: 1 NETC, 2 SNFH,                           SNFH, RC
                  3 ET, 4 RC)
================  ====================================================  ==================  ==================

Example:
    >>> spec = region_spec("brats")
    >>> masks = spec.to_masks(np.array([[0, 1, 2, 3]]), spatial_dims=1)
    >>> masks.astype(int).tolist()
    [[[0, 1, 1, 1], [0, 1, 0, 1], [0, 0, 0, 1]]]
    >>> spec.to_label_map(masks, spatial_dims=1).tolist()
    [[0, 1, 2, 3]]
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import torch

from art_seg._checks import check_choice, check_number
from art_seg.data.labels import CONVENTIONS

ArrayLike = np.ndarray | torch.Tensor

__all__ = ["REGION_PRESETS", "RegionSpec", "region_spec"]


@dataclass(frozen=True)
class RegionSpec:
    """Ordered regions, each a named set of classes; validated at construction.

    Args:
        names: one name per region (channel), unique, e.g. ``("WT", "TC", "ET")``.
        classes: per region, the art_seg class indices (``>= 1``; 0 is background) that make it up.
        class_order: per region (in channel order), the class painted where it is on when masks are turned back
            into a label map: nnU-Net's ``regions_class_order`` in art_seg classes.
        paint_order: the order in which regions are painted, a permutation of ``range(R)``; ``None`` (the
            default) for channel order, nnU-Net's rule. Stored as a tuple.

    Raises:
        TypeError, ValueError: a field of the wrong type, empty, of the wrong length, a duplicate name, a class
            below 1, or a ``paint_order`` that is not a permutation; the message names the field and the value.
    """

    names: tuple[str, ...]
    classes: tuple[tuple[int, ...], ...]
    class_order: tuple[int, ...]
    paint_order: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        names = _tuple("names", self.names)
        if not names or not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
            raise ValueError(f"names must be unique non-empty strings, at least one, got {self.names!r}")
        classes = tuple(_classes(f"classes[{n!r}]", c) for n, c in zip(names, _tuple("classes", self.classes)))
        if len(classes) != len(names):
            raise ValueError(f"classes must hold one class set per region ({len(names)}), got {self.classes!r}")
        class_order = _classes("class_order", self.class_order, unique=False)
        if len(class_order) != len(names):
            raise ValueError(f"class_order must hold one class per region ({len(names)}), got {self.class_order!r}")
        paint_order = tuple(range(len(names))) if self.paint_order is None else _tuple("paint_order", self.paint_order)
        if sorted(paint_order) != list(range(len(names))) or not all(type(i) is int for i in paint_order):
            raise ValueError(f"paint_order must be a permutation of range({len(names)}), got {self.paint_order!r}")
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "classes", classes)
        object.__setattr__(self, "class_order", class_order)
        object.__setattr__(self, "paint_order", paint_order)

    @property
    def nb_regions(self) -> int:
        """Number of regions ``R`` (the model's channels)."""
        return len(self.names)

    @property
    def nb_classes(self) -> int:
        """Number of classes of the label maps this spec converts: the largest class named, plus one."""
        return max(max(max(c) for c in self.classes), max(self.class_order)) + 1

    @property
    def exact(self) -> bool:
        """Whether ``to_label_map(to_masks(y)) == y`` for every label map with classes in ``[0, nb_classes)``."""
        y = np.arange(self.nb_classes)
        return bool(np.array_equal(self.to_label_map(self.to_masks(y, spatial_dims=1), spatial_dims=1), y))

    def to_masks(self, label_map: ArrayLike, spatial_dims: int = 3) -> ArrayLike:
        """One binary mask per region from a class-index label map.

        Args:
            label_map: integer (or bool) class indices ``(..., *spatial)`` in ``[0, nb_classes)``, numpy or torch.
            spatial_dims: how many trailing axes are spatial (1 to 3); the region axis goes before them.

        Returns:
            ``bool (..., R, *spatial)``, numpy for numpy input, a tensor on the input's device otherwise.

        Raises:
            TypeError: not an integer array or tensor.
            ValueError: fewer than ``spatial_dims`` axes, or classes outside ``[0, nb_classes)``.
        """
        _check_spatial_dims(spatial_dims, label_map)
        table = np.zeros((self.nb_classes, self.nb_regions), dtype=bool)
        for r, members in enumerate(self.classes):
            table[list(members), r] = True
        if isinstance(label_map, torch.Tensor):
            _check_integral("label_map", label_map.dtype == torch.bool or not label_map.is_floating_point())
            _check_range(label_map, self.nb_classes)
            lut = torch.as_tensor(table, device=label_map.device)
            return lut[label_map.long()].movedim(-1, -spatial_dims - 1).contiguous()
        label_map = np.asarray(label_map)
        _check_integral("label_map", label_map.dtype == bool or np.issubdtype(label_map.dtype, np.integer))
        _check_range(label_map, self.nb_classes)
        return np.ascontiguousarray(np.moveaxis(table[label_map.astype(np.intp)], -1, -spatial_dims - 1))

    def to_label_map(self, masks: ArrayLike, spatial_dims: int = 3) -> ArrayLike:
        """A class-index label map from region masks: background 0, then ``class_order[r]`` painted where region
        ``r`` is on, regions taken in ``paint_order`` (later ones overwrite).

        Args:
            masks: ``(..., R, *spatial)``, bool or integers 0/1 (threshold probabilities or logits first, e.g.
                with :meth:`art_seg.estimators.PyTorchSegmenter.predict_labels`), numpy or torch.
            spatial_dims: how many trailing axes are spatial (1 to 3).

        Returns:
            ``int64 (..., *spatial)``, numpy for numpy input, a tensor on the input's device otherwise.

        Raises:
            TypeError: floating masks.
            ValueError: the region axis does not have ``R`` entries, or values other than 0 and 1.
        """
        _check_spatial_dims(spatial_dims, masks, extra=1)
        axis = masks.ndim - spatial_dims - 1
        if masks.shape[axis] != self.nb_regions:
            raise ValueError(
                f"masks must have R = {self.nb_regions} regions {self.names} on axis {axis} (before the "
                f"{spatial_dims} spatial axes), got shape {tuple(masks.shape)}"
            )
        if isinstance(masks, torch.Tensor):
            _check_integral("masks", masks.dtype == torch.bool or not masks.is_floating_point())
            _check_range(masks, 2, what="masks must hold 0 or 1")
            out = torch.zeros(masks.shape[:axis] + masks.shape[axis + 1 :], dtype=torch.long, device=masks.device)
            for r in self.paint_order:
                out.masked_fill_(masks.select(axis, r).bool(), self.class_order[r])
            return out
        masks = np.asarray(masks)
        _check_integral("masks", masks.dtype == bool or np.issubdtype(masks.dtype, np.integer))
        _check_range(masks, 2, what="masks must hold 0 or 1")
        out = np.zeros(masks.shape[:axis] + masks.shape[axis + 1 :], dtype=np.int64)
        for r in self.paint_order:
            out[np.take(masks, r, axis=axis).astype(bool)] = self.class_order[r]
        return out


# ---------------------------------------------------------------------------------------------- checks
def _tuple(name: str, value: object) -> tuple:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TypeError(f"{name} must be a sequence, got {value!r}")
    return tuple(value)


def _classes(name: str, value: object, unique: bool = True) -> tuple[int, ...]:
    values = _tuple(name, value)
    if not values:
        raise ValueError(f"{name} must name at least one class, got {value!r}")
    for c in values:
        if not isinstance(c, numbers.Integral) or isinstance(c, bool):
            raise TypeError(f"{name} must hold class indices (ints), got {value!r}")
        check_number(name, c, low=1, integer=True)
    if unique and len(set(values)) != len(values):
        raise ValueError(f"{name} names a class twice: {value!r}")
    return tuple(int(c) for c in values)


def _check_spatial_dims(spatial_dims: int, array: object, extra: int = 0) -> None:
    """``spatial_dims`` in 1..3, ``array`` an array or tensor with at least ``spatial_dims + extra`` axes."""
    check_number("spatial_dims", spatial_dims, low=1, high=3, integer=True)
    min_ndim = spatial_dims + extra
    if not isinstance(array, (np.ndarray, torch.Tensor)):
        raise TypeError(f"expected a numpy array or a torch tensor, got {type(array).__name__}")
    if array.ndim < min_ndim:
        raise ValueError(f"expected at least {min_ndim} axes, got shape {tuple(array.shape)}")


def _check_integral(name: str, ok: bool) -> None:
    if not ok:
        raise TypeError(f"{name} must be a bool or integer array (class indices or 0/1 masks), not floating")


def _check_range(values: ArrayLike, high: int, what: str | None = None) -> None:
    if values.size == 0 if isinstance(values, np.ndarray) else values.numel() == 0:
        return
    low, top = int(values.min()), int(values.max())
    if low < 0 or top >= high:
        message = what or f"label_map must hold classes in [0, {high})"
        raise ValueError(f"{message}, got values in [{low}, {top}]")


# ---------------------------------------------------------------------------------------------- presets
def _preset(
    convention: str, names: tuple[str, ...], class_order: tuple[int, ...], paint_order: tuple[int, ...] | None = None
) -> RegionSpec:
    """A preset over the regions of a label convention (:data:`art_seg.data.labels.CONVENTIONS`, where their classes
    are defined), in a tool's channel order."""
    classes = CONVENTIONS[convention].region_classes
    return RegionSpec(names, tuple(classes[name] for name in names), class_order, paint_order)


#: The region conventions users meet, by name (see the module docstring).
REGION_PRESETS: dict[str, RegionSpec] = {
    "brats": _preset("brats2023", ("WT", "TC", "ET"), (2, 1, 3)),
    "nnunet_brats": _preset("msd_brats", ("WT", "TC", "ET"), (2, 1, 3)),
    "monai_brats": _preset("brats2023", ("TC", "WT", "ET"), (1, 2, 3), paint_order=(1, 0, 2)),
    "brats2024": _preset(
        "brats2024", ("ET", "NETC", "SNFH", "RC", "TC", "WT"), (3, 1, 2, 4, 1, 2), paint_order=(5, 4, 0, 1, 2, 3)
    ),
}


def region_spec(spec: str | RegionSpec | Mapping[str, Iterable[int]]) -> RegionSpec:
    """A :class:`RegionSpec` from a preset name, a spec, or a mapping ``name -> classes`` in channel order.

    For a mapping, regions are painted from the largest (most classes) to the smallest, ties in channel order,
    and each region paints the class it is the last painted region of (the smallest such class, or its smallest
    class when none): exact whenever every class has a region of its own to be painted last, as in every BraTS
    convention (check :attr:`RegionSpec.exact`).

    Raises:
        ValueError: an unknown preset name, or a bad mapping (see :class:`RegionSpec`).
        TypeError: ``spec`` is none of these.

    Example:
        >>> region_spec({"TC": (1, 3), "WT": (1, 2, 3), "ET": (3,)}) == REGION_PRESETS["monai_brats"]
        True
    """
    if isinstance(spec, RegionSpec):
        return spec
    if isinstance(spec, str):
        check_choice("regions", spec, REGION_PRESETS)
        return REGION_PRESETS[spec]
    if not isinstance(spec, Mapping):
        raise TypeError(f"regions must be a preset name {tuple(REGION_PRESETS)}, a RegionSpec or a mapping "
                        f"name -> classes, got {type(spec).__name__} ({spec!r})")  # fmt: skip
    names = tuple(spec)
    classes = tuple(_classes(f"regions[{n!r}]", spec[n]) for n in names)
    paint_order = tuple(sorted(range(len(names)), key=lambda r: -len(classes[r])))
    last = {c: r for r in paint_order for c in classes[r]}  # the region painted last over each class
    class_order = tuple(min([c for c in classes[r] if last[c] == r] or classes[r]) for r in range(len(names)))
    return RegionSpec(names, classes, class_order, None if paint_order == tuple(range(len(names))) else paint_order)
