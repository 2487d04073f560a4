"""Sliding-window inference and input gradients with bounded memory (the idea of MONAI's
``sliding_window_inference``), as a functional core used by :class:`~art_seg.estimators.PyTorchSegmenter`.

A volume ``x (N, C, *spatial)`` too large for the model in one pass is covered by windows of ``roi_size``
voxels; the model runs on batches of ``windows_per_batch`` windows and their logits are stitched per voxel as

    L_v = sum_w b_w(v) * l_w(v) / sum_w b_w(v)

where ``l_w`` are window ``w``'s logits and ``b_w`` its blending weights: MONAI's Gaussian importance map
(``mode="gaussian"``), nnU-Net v2's (``mode="nnunet"``) or ones (``mode="constant"``), see
:func:`blending_weights`.

Three placements of the windows (``placement``):

- ``"monai"`` (MONAI's ``dense_patch_slices`` scan): along each spatial dimension windows start at 0 and step by
  ``floor(roi * (1 - overlap))`` voxels (at least 1); the last window is moved back to end flush with the
  volume. A window is never larger than the volume: along a dimension shorter than ``roi_size`` the window is
  clipped to the volume's size (one window spans it, as whole-volume inference would), so nothing is ever padded
  and memory is bounded by the volume whatever ``roi_size`` says (``roi_size=1000`` on a ``128^3`` volume is
  whole-volume inference, not a ``1000^3`` allocation). A model that needs sizes divisible by ``2**depth`` then
  needs the volume padded to such a multiple, as ``art_seg.data`` does.
- ``"monai_padded"``: MONAI's ``sliding_window_inference`` exactly: the same scan, but a volume shorter than
  ``roi_size`` along a dimension is zero-padded to ``roi_size`` there, centred (``(roi - size) // 2`` before,
  the rest after, MONAI's default ``padding_mode="constant"``, ``cval=0``), and the logits cropped back. On
  volumes at least ``roi_size`` long it is ``"monai"``.
- ``"nnunet"`` (nnU-Net v2's ``compute_steps_for_sliding_window`` with ``tile_step_size = 1 - overlap``): along
  each dimension ``n = ceil((size - roi) / (roi * (1 - overlap))) + 1`` windows whose starts
  ``round(i * (size - roi) / (n - 1))`` are evenly spaced from 0 to ``size - roi`` (a 155-voxel axis with
  ``roi=32``, ``overlap=0.5``: 0, 15, 31, ..., 123). Windows always have the full ``roi_size``: a volume
  shorter than it along a dimension is zero-padded to ``roi_size`` there, centred (the extra voxel of an odd
  difference after the volume), and the logits cropped back, as ``nnUNetPredictor`` does with
  ``acvl_utils``' ``pad_nd_image`` (the same padding as ``"monai_padded"``). With the padded placements memory
  grows with ``roi_size``, not with the volume.

Two ways to differentiate:

- :func:`sliding_window_logits` is differentiable end to end: with autograd enabled, ``torch.autograd.grad``
  of anything computed from its output gives the gradient of the stitched prediction, but the graph of every
  window is kept until the backward pass;
- :func:`sliding_window_gradients` gives the same gradients with the memory of one window batch: a no-grad
  pass computes ``L``, autograd gives ``dJ/dL`` of each objective ``J(L)``, and a second pass recomputes each
  window batch with autograd and back-propagates the vector-Jacobian product
  ``(b_w / sum_w b_w)[window] * dJ/dL[window]`` into the input. This is exact (the chain rule through the
  linear stitching), for any model.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter

from art_seg._checks import check_choice, check_number

ModelFn = Callable[[torch.Tensor], torch.Tensor]
Window = tuple[slice, ...]

BLEND_MODES = ("gaussian", "nnunet", "constant")
PLACEMENTS = ("monai", "monai_padded", "nnunet")
PADDED_PLACEMENTS = ("monai_padded", "nnunet")  # a volume shorter than the window is padded
MIN_WEIGHT = 1e-3  # the smallest weight of MONAI's Gaussian (``compute_importance_map``)


@dataclass(frozen=True)
class SlidingWindow:
    """How to cover a volume with windows and blend their logits. Validated at construction.

    Args:
        roi_size: window size in voxels, ``>= 1``: one int for every spatial dimension, or one int per spatial
            dimension (a list is stored as a tuple). Windows are this size, clipped to the volume along any
            dimension where the volume is shorter (see :func:`effective_roi_size`); the model must accept both
            (a UNet's ``2**depth`` divisibility, for example).
        overlap: fraction of a window shared with its neighbour along each dimension, in ``[0, 1)``; with
            ``placement="monai"`` the step is ``floor(roi * (1 - overlap))`` voxels, at least 1; with
            ``placement="nnunet"`` it is at most ``roi * (1 - overlap)`` (nnU-Net's ``tile_step_size``).
        mode: how window logits are weighted (:func:`blending_weights`): ``"gaussian"``, exactly MONAI's
            ``compute_importance_map(mode="gaussian", sigma_scale)`` (centre weighted over borders, which
            suppresses seams from the zero padding at window borders); ``"nnunet"``, exactly nnU-Net v2's
            ``compute_gaussian``; or ``"constant"`` (plain average).
        sigma_scale: Gaussian standard deviation as a fraction of ``roi_size`` (``> 0``), per dimension (MONAI's
            ``sigma_scale``; nnU-Net's predictor uses ``1/8``, the default); ignored by ``"constant"``.
        windows_per_batch: windows (across all samples of a batch) run through the model together, ``>= 1``.
            Peak memory grows with it.
        placement: where windows go (see the module docstring): ``"monai"`` (MONAI's scan, windows clipped to
            a smaller volume), ``"monai_padded"`` (MONAI's scan, a smaller volume zero-padded to ``roi_size`` as
            ``sliding_window_inference`` does) or ``"nnunet"`` (nnU-Net v2's evenly spaced steps, a smaller
            volume zero-padded to ``roi_size``).

    Raises:
        TypeError: a field of the wrong type.
        ValueError: a field out of range or an unknown ``mode`` or ``placement``; the message names the field
            and the value.

    Example:
        >>> window = SlidingWindow(roi_size=(128, 128, 128), overlap=0.5, windows_per_batch=2)
        >>> window.roi(3)
        (128, 128, 128)
    """

    roi_size: int | tuple[int, ...]
    overlap: float = 0.25
    mode: str = "gaussian"
    sigma_scale: float = 0.125
    windows_per_batch: int = 4
    placement: str = "monai"

    def __post_init__(self) -> None:
        roi = self.roi_size
        if isinstance(roi, (list, tuple)):
            if not 1 <= len(roi) <= 3:
                raise ValueError(f"roi_size must be an int or 1 to 3 ints (one per spatial dimension), got {roi!r}")
            for size in roi:
                check_number("roi_size", size, low=1, integer=True)
            object.__setattr__(self, "roi_size", tuple(int(s) for s in roi))
        else:
            check_number("roi_size", roi, low=1, integer=True)
            object.__setattr__(self, "roi_size", int(roi))
        check_number("overlap", self.overlap, low=0.0, high=1.0, high_inclusive=False)
        check_choice("mode", self.mode, BLEND_MODES)
        check_number("sigma_scale", self.sigma_scale, low=0.0, low_inclusive=False)
        check_number("windows_per_batch", self.windows_per_batch, low=1, integer=True)
        check_choice("placement", self.placement, PLACEMENTS)

    def roi(self, nb_spatial_dims: int) -> tuple[int, ...]:
        """``roi_size`` as one int per spatial dimension.

        Raises:
            ValueError: ``roi_size`` is a tuple of another length.
        """
        if isinstance(self.roi_size, int):
            return (self.roi_size,) * nb_spatial_dims
        if len(self.roi_size) != nb_spatial_dims:
            raise ValueError(
                f"roi_size {self.roi_size} has {len(self.roi_size)} dimension(s), the input has {nb_spatial_dims} "
                "spatial dimension(s)"
            )
        return self.roi_size


# ---------------------------------------------------------------------------------------------- geometry
def effective_roi_size(
    spatial_shape: Sequence[int], roi_size: int | Sequence[int], placement: str = "monai"
) -> tuple[int, ...]:
    """The window actually used on a volume, per dimension: ``roi_size`` clipped to ``spatial_shape`` with
    ``placement="monai"``; ``roi_size`` itself with ``"monai_padded"`` and ``"nnunet"`` (the volume is padded
    instead).

    Args:
        spatial_shape: the volume's spatial shape ``(*spatial)``, sizes ``>= 1``.
        roi_size: the requested window, one int or one per dimension, ``>= 1``.
        placement: ``"monai"``, ``"monai_padded"`` or ``"nnunet"``.

    Raises:
        TypeError, ValueError: a size that is not an int ``>= 1``, ``roi_size`` of another length, an unknown
            ``placement``.

    Example:
        >>> effective_roi_size((155, 240, 240), 1000)
        (155, 240, 240)
        >>> effective_roi_size((155, 240, 240), 1000, placement="nnunet")
        (1000, 1000, 1000)
    """
    for size in spatial_shape:
        check_number("spatial_shape", size, low=1, integer=True)
    roi = SlidingWindow(roi_size, placement=placement).roi(len(spatial_shape))
    if placement in PADDED_PLACEMENTS:
        return roi
    return tuple(min(int(s), r) for s, r in zip(spatial_shape, roi))


def padding(
    spatial_shape: Sequence[int], roi_size: int | Sequence[int], placement: str = "monai"
) -> tuple[tuple[int, int], ...]:
    """Zero padding ``(before, after)`` per dimension that ``placement`` applies to a volume before windowing.

    ``"monai"``: none (windows are clipped instead). ``"monai_padded"`` and ``"nnunet"``: a dimension shorter
    than ``roi_size`` is padded to it, ``before = (roi - size) // 2`` and the rest after (MONAI's
    ``sliding_window_inference`` and nnU-Net's ``pad_nd_image`` alike).

    Example:
        >>> padding((20, 40, 9), 32, placement="nnunet")
        ((6, 6), (0, 0), (11, 12))
    """
    roi = effective_roi_size(spatial_shape, roi_size, placement)
    missing = [max(0, r - int(s)) for s, r in zip(spatial_shape, roi)]
    return tuple((m // 2, m - m // 2) for m in missing)


def _starts(size: int, roi: int, overlap: float, placement: str) -> list[int]:
    """Window starts along one dimension of ``size >= roi`` voxels."""
    if placement == "nnunet":  # nnunetv2's compute_steps_for_sliding_window, tile_step_size = 1 - overlap
        count = math.ceil((size - roi) / (roi * (1.0 - overlap))) + 1
        step = (size - roi) / (count - 1) if count > 1 else 0.0
        return [int(round(step * i)) for i in range(count)]  # round half to even, as np.round
    step = max(1, int(roi * (1.0 - overlap)))
    count = 1 + max(0, math.ceil((size - roi) / step))
    return [min(i * step, size - roi) for i in range(count)]


def window_slices(
    spatial_shape: Sequence[int], roi_size: int | Sequence[int], overlap: float, placement: str = "monai"
) -> list[Window]:
    """The windows covering a volume.

    ``placement="monai"``: MONAI's scan, starts ``0, step, 2 step, ...`` with
    ``step = max(1, floor(roi * (1 - overlap)))``, the last one flush with the end, the window clipped to the
    volume (:func:`effective_roi_size`). ``"monai_padded"``: the same scan with the full window, on a volume at
    least ``roi_size`` long (pad it first, see :func:`padding`). ``placement="nnunet"``: nnU-Net v2's ``compute_steps_for_sliding_window``
    with ``tile_step_size = 1 - overlap``: ``n = ceil((size - roi) / (roi (1 - overlap))) + 1`` starts
    ``round(i (size - roi) / (n - 1))``; the volume must be at least ``roi_size`` long (pad it first, see
    :func:`padding`; :func:`sliding_window_logits` does).

    Args:
        spatial_shape: the volume's spatial shape ``(*spatial)``.
        roi_size: window size, one int or one per dimension.
        overlap: in ``[0, 1)``.
        placement: ``"monai"``, ``"monai_padded"`` or ``"nnunet"``.

    Returns:
        One tuple of slices per window (dimension order, last dimension fastest), each as long as the effective
        window, inside the volume. Together the windows cover every voxel.

    Raises:
        ValueError: a bad size, ``overlap`` or ``placement``, or with a padded placement a volume shorter than
            ``roi_size``.

    Example:
        >>> window_slices((10,), 4, 0.25)
        [(slice(0, 4, None),), (slice(3, 7, None),), (slice(6, 10, None),)]
        >>> window_slices((3,), 1000, 0.25)
        [(slice(0, 3, None),)]
        >>> [region[0].start for region in window_slices((155,), 32, 0.5, placement="nnunet")][:4]
        [0, 15, 31, 46]
    """
    roi = effective_roi_size(spatial_shape, roi_size, placement)
    check_number("overlap", overlap, low=0.0, high=1.0, high_inclusive=False)
    if any(int(s) < r for s, r in zip(spatial_shape, roi)):
        raise ValueError(
            f"placement={placement!r} needs a volume at least roi_size {roi} long in every dimension, got spatial shape "
            f"{tuple(spatial_shape)}: pad it first (see padding())"
        )
    per_dim = [
        [slice(start, start + r) for start in _starts(int(size), r, overlap, placement)]
        for size, r in zip(spatial_shape, roi)
    ]
    return list(itertools.product(*per_dim))


def blending_weights(
    roi_size: Sequence[int],
    mode: str = "gaussian",
    sigma_scale: float = 0.125,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Blending weights of one window, shape ``roi_size``.

    - ``"gaussian"``: MONAI's ``compute_importance_map(roi_size, mode="gaussian", sigma_scale)``, exactly:
      ``prod_d exp(-(i_d - (r_d - 1) / 2)^2 / (2 (sigma_scale r_d)^2))`` clamped below at ``1e-3`` and not
      renormalised (the centre of an even-sized window weighs less than 1).
    - ``"nnunet"``: nnU-Net v2's ``compute_gaussian(roi_size, sigma_scale)``, exactly: ``scipy.ndimage.
      gaussian_filter`` (``mode="constant"``, its default truncation at 4 sigma) of a unit impulse at
      ``r_d // 2`` with sigma ``sigma_scale r_d``, divided by its maximum, then (in ``dtype``) zeros replaced by
      the smallest non-zero weight. nnU-Net's predictor scales it by 10 (``value_scaling_factor``), which
      cancels in the stitching.
    - ``"constant"``: ones.

    Args:
        roi_size: window size, one int per spatial dimension (1 to 3).
        mode: ``"gaussian"``, ``"nnunet"`` or ``"constant"``.
        sigma_scale: Gaussian standard deviation as a fraction of the window size, ``> 0``.
        device, dtype: of the returned tensor (computed in float64 on the CPU, then converted).

    Returns:
        ``(*roi_size)`` weights in ``(0, 1]``: ``"gaussian"`` in ``[1e-3, 1]``, ``"nnunet"`` with maximum 1.

    Raises:
        ValueError: a bad ``roi_size``, ``mode`` or ``sigma_scale``.

    Example:
        >>> blending_weights((3,), "gaussian", sigma_scale=1.0, dtype=torch.float64)
        tensor([0.9460, 1.0000, 0.9460], dtype=torch.float64)
    """
    roi = SlidingWindow(tuple(roi_size)).roi(len(roi_size))
    check_choice("mode", mode, BLEND_MODES)
    check_number("sigma_scale", sigma_scale, low=0.0, low_inclusive=False)
    if mode == "constant":
        return torch.ones(roi, device=device, dtype=dtype)
    if mode == "nnunet":
        impulse = np.zeros(roi)
        impulse[tuple(r // 2 for r in roi)] = 1.0
        smoothed = gaussian_filter(impulse, [r * sigma_scale for r in roi], 0, mode="constant", cval=0)
        weights = torch.from_numpy(smoothed / smoothed.max()).to(device=device, dtype=dtype)
        zero = weights == 0
        weights[zero] = weights[~zero].min()
        return weights
    weights = torch.ones((), dtype=torch.float64)
    for r in roi:
        offset = torch.arange(r, dtype=torch.float64) - (r - 1) / 2
        weights = weights.unsqueeze(-1) * torch.exp(-(offset**2) / (2 * (sigma_scale * r) ** 2))
    return weights.clamp(min=MIN_WEIGHT).to(device=device, dtype=dtype)


@dataclass(frozen=True)
class _Plan:
    """Everything about the windows of one input shape: padding, slices (in the padded volume), weights and
    their sum."""

    pads: tuple[tuple[int, int], ...]  # (before, after) per spatial dimension
    slices: list[Window]
    weights: torch.Tensor  # (*effective roi)
    weight_sum: torch.Tensor  # (*padded spatial)
    windows_per_batch: int

    @classmethod
    def build(cls, x: torch.Tensor, window: SlidingWindow) -> _Plan:
        if not isinstance(window, SlidingWindow):
            raise TypeError(f"window must be a SlidingWindow, got {type(window).__name__}")
        spatial = tuple(int(s) for s in x.shape[2:])
        roi = effective_roi_size(spatial, window.roi(len(spatial)), window.placement)
        pads = padding(spatial, roi, window.placement)
        padded = tuple(s + before + after for s, (before, after) in zip(spatial, pads))
        slices = window_slices(padded, roi, window.overlap, window.placement)
        weights = blending_weights(roi, window.mode, window.sigma_scale, device=x.device, dtype=x.dtype)
        weight_sum = torch.zeros(padded, device=x.device, dtype=x.dtype)
        for region in slices:
            weight_sum[region] += weights
        return cls(pads, slices, weights, weight_sum, int(window.windows_per_batch))

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """``x (N, C, *spatial)`` zero-padded as planned (differentiable; ``x`` itself when there is nothing)."""
        if not any(before or after for before, after in self.pads):
            return x
        return F.pad(x, [n for before_after in reversed(self.pads) for n in before_after])

    def crop(self, t: torch.Tensor) -> torch.Tensor:
        """The unpadded part of a padded ``(N, K, *padded spatial)`` tensor (a view; ``t`` itself when there is
        no padding)."""
        if not any(before or after for before, after in self.pads):
            return t
        return t[(slice(None), slice(None), *(slice(b, t.shape[2 + d] - a) for d, (b, a) in enumerate(self.pads)))]

    def batches(self, n: int) -> Iterator[list[tuple[int, Window]]]:
        """``(sample, window)`` pairs, sample-major, in groups of ``windows_per_batch``."""
        pairs = [(i, region) for i in range(n) for region in self.slices]
        for start in range(0, len(pairs), self.windows_per_batch):
            yield pairs[start : start + self.windows_per_batch]


def _gather(x: torch.Tensor, batch: list[tuple[int, Window]]) -> torch.Tensor:
    return torch.stack([x[(i, slice(None), *region)] for i, region in batch])


def _scatter_add(target: torch.Tensor, values: torch.Tensor, batch: list[tuple[int, Window]]) -> None:
    for b, (i, region) in enumerate(batch):
        target[(i, slice(None), *region)] += values[b]


def _check_x(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim < 3:
        got = f"{x.dtype} tensor of shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be a floating tensor (N, C, *spatial), got {got}")


def _stitch(model_fn: ModelFn, x: torch.Tensor, plan: _Plan) -> torch.Tensor:
    """Stitched logits over the padded volume ``x``; differentiable when autograd is on."""
    out: torch.Tensor | None = None
    for batch in plan.batches(x.shape[0]):
        logits = model_fn(_gather(x, batch))
        if out is None:
            out = logits.new_zeros((x.shape[0], logits.shape[1], *x.shape[2:]))
        _scatter_add(out, logits * plan.weights, batch)
    return out / plan.weight_sum


# ---------------------------------------------------------------------------------------------- public
def sliding_window_logits(model_fn: ModelFn, x: torch.Tensor, window: SlidingWindow) -> torch.Tensor:
    """Stitched logits of ``model_fn`` over windows of ``x``.

    Args:
        model_fn: maps windows ``(B, C, *roi)`` to logits ``(B, K, *roi)`` (``B <= windows_per_batch``).
        x: the model's input ``(N, C, *spatial)`` (already preprocessed), any spatial size.
        window: the window size, overlap, blending, placement and batching.

    Returns:
        ``(N, K, *spatial)``: per voxel, ``sum_w b_w l_w / sum_w b_w`` over the windows holding it (with
        a padded placement, over ``x`` zero-padded to at least ``roi_size``, then cropped back). Under
        ``torch.no_grad()`` only one window batch's activations are alive at a time; with autograd on, the
        result is differentiable with respect to ``x`` (and the model's parameters) and keeps every window's
        graph (use :func:`sliding_window_gradients` for bounded memory).

    Raises:
        ValueError: ``x`` is not a floating ``(N, C, *spatial)`` tensor, or ``roi_size`` does not match its
            number of spatial dimensions.
        TypeError: ``window`` is not a :class:`SlidingWindow`.
    """
    _check_x(x)
    plan = _Plan.build(x, window)
    return plan.crop(_stitch(model_fn, plan.pad(x), plan))


class _ReplayRandomness:
    """Restores the random state of the CPU and of ``x``'s CUDA device, so a second pass over the windows
    draws the dropout masks the first one drew."""

    def __init__(self, device: torch.device) -> None:
        self._device = device if device.type == "cuda" else None
        self._cpu = torch.get_rng_state()
        self._cuda = torch.cuda.get_rng_state(self._device) if self._device is not None else None

    def replay(self) -> None:
        torch.set_rng_state(self._cpu)
        if self._device is not None:
            torch.cuda.set_rng_state(self._cuda, self._device)


def sliding_window_gradients(
    model_fn: ModelFn,
    x: torch.Tensor,
    window: SlidingWindow,
    objectives: Callable[[torch.Tensor], list[torch.Tensor]],
) -> list[torch.Tensor]:
    """Gradients with respect to ``x`` of scalar objectives of the stitched logits, window batch by window batch.

    Equal (up to floating-point rounding) to ``torch.autograd.grad(J(sliding_window_logits(model_fn, x,
    window)), x)`` for every objective ``J``, with the memory of one window batch's graph plus a few
    volume-sized tensors (``x``, the stitched logits and, per objective, ``dJ/dL`` and the gradient):

    1. a no-grad pass computes the stitched logits ``L``;
    2. autograd gives ``dJ/dL`` for every objective, with ``L`` as a leaf;
    3. a second pass recomputes each window batch's logits with autograd and back-propagates
       ``(b_w / sum_w b_w)[window] * dJ/dL[window]`` into the window's input, adding it into the gradient.

    The model is called twice per window (about 1.5x the compute of one forward and backward pass). The random
    state is restored before the second pass, so dropout draws the same masks in both; batch-norm layers in
    training mode see the same window batches twice (their running statistics are updated twice).

    Args:
        model_fn: maps windows ``(B, C, *roi)`` to logits ``(B, K, *roi)``.
        x: the model's input ``(N, C, *spatial)``; it is not differentiated through (gradients stop at ``x``).
        window: the window size, overlap, blending, placement and batching.
        objectives: ``L (N, K, *spatial) -> [scalar tensors]``, each depending on ``L``.

    Returns:
        One gradient per objective, each of ``x``'s shape and dtype.
    """
    _check_x(x)
    plan = _Plan.build(x, window)
    x = plan.pad(x.detach())
    randomness = _ReplayRandomness(x.device)
    with torch.no_grad():
        stitched = _stitch(model_fn, x, plan)
    with torch.enable_grad():
        leaf = stitched.requires_grad_(True)
        outputs = objectives(plan.crop(leaf))
        # dJ/dl_w = (b_w / sum b)[window] * dJ/dL[window]: divide by the weight sum once, multiply per window.
        scaled = [
            torch.autograd.grad(out, leaf, retain_graph=j < len(outputs) - 1)[0] / plan.weight_sum
            for j, out in enumerate(outputs)
        ]
    del outputs, leaf, stitched
    grads = [torch.zeros_like(x) for _ in scaled]
    randomness.replay()
    for batch in plan.batches(x.shape[0]):
        with torch.enable_grad():
            x_windows = _gather(x, batch).requires_grad_(True)
            logits = model_fn(x_windows)
            for j, upstream in enumerate(scaled):
                vector = _gather(upstream, batch) * plan.weights
                (grad,) = torch.autograd.grad(logits, x_windows, vector, retain_graph=j < len(scaled) - 1)
                _scatter_add(grads[j], grad, batch)
        del x_windows, logits
    return [plan.crop(grad).contiguous() for grad in grads]


__all__ = [
    "SlidingWindow",
    "blending_weights",
    "effective_roi_size",
    "padding",
    "sliding_window_gradients",
    "sliding_window_logits",
    "window_slices",
]
