"""SegCertify: randomized smoothing for segmentation (Fischer, Baader, Vechev, ICML 2021).

The smoothed segmenter labels voxel ``v`` of ``x`` with the class the base segmenter most often predicts there
under Gaussian noise ``x + N(0, sigma^2 I)``. SegCertify estimates it from ``n`` noisy copies: per voxel the
top class ``c_v`` has ``n_v`` votes, the one-sided binomial test of ``H0: p_v <= tau`` gives the p-value
``P[Bin(n, tau) >= n_v]``, Holm's method controls the family-wise error over all voxels of a sample at
``alpha``, and voxels whose adjusted p-value exceeds ``alpha`` abstain (label :data:`ABSTAIN`). With
probability at least ``1 - alpha`` every voxel that does not abstain has smoothed-class probability above
``tau``, so its smoothed class is constant within the L2 radius ``R = sigma * Phi^-1(tau)`` around ``x``
(Cohen et al., 2019, applied per voxel); ``R`` is the same for every certified voxel.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from art.estimators.pytorch import PyTorchEstimator
from scipy import stats
from tqdm.auto import tqdm

from art_seg._checks import check_number, check_type
from art_seg.estimators.conversion import ArrayLike, as_tensor, check_input
from art_seg.estimators.segmenter import SegmenterMixin
from art_seg.metrics import check_regions, dice_per_region
from art_seg.metrics._inputs import Regions, region_pair, to_numpy
from art_seg.stats import holm

__all__ = [
    "ABSTAIN",
    "SegmentationCertificate",
    "certified_dice",
    "certified_fraction_per_region",
    "certify_over_radii",
    "certify_segmentation",
]

#: Label of a voxel on which the smoothed segmenter abstains.
ABSTAIN = -1
#: What :func:`certify_segmentation` needs of an estimator: voxel-wise class scores, torch on a device.
ESTIMATOR_REQUIREMENTS = (SegmenterMixin, PyTorchEstimator)


@dataclass(frozen=True)
class SegmentationCertificate:
    """SegCertify's result for one sample ``(C, *spatial)``; its arrays are read-only.

    Attributes:
        labels: ``int64 (*spatial)`` smoothed prediction: class index ``0 .. K-1`` where certified,
            :data:`ABSTAIN` (-1) where the voxel abstains.
        counts: ``int32 (K, *spatial)`` votes per class among the ``n`` noisy copies used for the test
            (argmax of the predicted probabilities of each copy). The top-class count of voxel ``v`` is
            ``counts[c_v, v]`` with ``c_v`` the selected class (``counts.argmax(0)``, first class on ties, unless
            a separate selection set ``n0`` was used).
        p_values: ``float64 (*spatial)`` one-sided binomial p-values ``P[Bin(n, tau) >= n_v]`` of the top class,
            before correction.
        adjusted_p_values: ``float64 (*spatial)`` Holm-adjusted p-values over all voxels of the sample; a voxel
            is certified iff its adjusted p-value is ``<= alpha``.
        radius: certified L2 radius ``sigma * Phi^-1(tau)``, in the units of ``x`` (z-scored intensities).
        sigma: standard deviation of the Gaussian noise, in the units of ``x``.
        tau: probability threshold of the test, in ``(0.5, 1)``.
        n: number of noisy copies behind ``counts``.
        alpha: family-wise error level of the test over the sample's voxels.
    """

    labels: np.ndarray
    counts: np.ndarray
    p_values: np.ndarray
    adjusted_p_values: np.ndarray
    radius: float
    sigma: float
    tau: float
    n: int
    alpha: float

    def __post_init__(self) -> None:
        for name in ("labels", "counts", "p_values", "adjusted_p_values"):
            view = np.asarray(getattr(self, name)).view()  # read-only view: the caller's array keeps its flags
            view.setflags(write=False)
            object.__setattr__(self, name, view)
        spatial = self.labels.shape
        p_shapes = {self.p_values.shape, self.adjusted_p_values.shape}
        if self.counts.shape[1:] != spatial or p_shapes != {spatial}:
            raise ValueError(
                f"counts must be (K, *spatial) and p-values (*spatial) for labels of shape {spatial}, got counts "
                f"{self.counts.shape}, p_values {self.p_values.shape}, adjusted_p_values {self.adjusted_p_values.shape}"
            )

    @property
    def certified(self) -> np.ndarray:
        """``bool (*spatial)``: ``True`` where the voxel is certified (does not abstain)."""
        return self.labels != ABSTAIN

    @property
    def certified_fraction(self) -> float:
        """Fraction of the sample's voxels that are certified (do not abstain), in ``[0, 1]``."""
        return float(np.count_nonzero(self.certified) / self.labels.size)


def certify_segmentation(
    segmenter: SegmenterMixin,
    x: ArrayLike,
    *,
    sigma: float,
    n: int = 100,
    n0: int | None = None,
    tau: float = 0.75,
    alpha: float = 0.001,
    batch_size: int = 8,
    seed: int = 0,
    verbose: bool = False,
) -> list[SegmentationCertificate]:
    """Certify each sample of ``x`` with SegCertify (one Holm-corrected test per sample).

    For each sample, ``n`` copies ``x_i + sigma * N(0, I)`` are segmented (``batch_size`` copies per model call,
    noise drawn on the estimator's device) and the argmax class of each copy's probabilities votes per voxel.
    The top class ``c_v`` with ``n_v`` votes is tested against ``H0: p_v <= tau`` with the p-value
    ``scipy.stats.binom.sf(n_v - 1, n, tau)`` (= ``binomtest(n_v, n, tau, alternative="greater").pvalue``);
    Holm's method over the sample's voxels at ``alpha`` decides which voxels are certified, the others abstain.

    By default (``n0=None``) the class is selected and tested on the same ``n`` votes, as in Fischer et al.'s
    SegCertify. Since ``tau > 0.5`` only a strict majority class can be certified, so choosing the class after
    seeing the votes costs little, but the error level is bounded by the sum over classes of each class's
    chance of a false certificate rather than by ``alpha`` exactly.
    With ``n0`` set, the class of each voxel is selected from ``n0`` separate copies first (Cohen et al.'s
    split) and ``n_v`` counts that class among the ``n`` test copies: the test is exact at the price of ``n0``
    more model calls.

    Memory: one ``int32 (K, *spatial)`` vote array per sample plus one batch of ``batch_size`` noisy copies and
    their probabilities on the device. Inputs are not clipped to the estimator's ``clip_values`` (the noise is
    added to ``x`` as is), and ART preprocessing runs on each noisy copy inside ``predict``.
    Reproducibility: the noise of sample ``i`` comes from a torch generator on the estimator's device seeded
    from ``(seed, i)``, so it does not depend on the other samples of ``x``; the same ``seed`` with another
    ``sigma`` scales the same standard normal draws (common random numbers across radii). Results repeat
    exactly on the same device and torch version.

    Args:
        segmenter: an art_seg segmentation estimator (``SegmenterMixin`` and ART ``PyTorchEstimator``, e.g.
            :class:`~art_seg.estimators.PyTorchSegmenter`); with ``activation="sigmoid"`` the vote is still the
            argmax over the ``K`` channels.
        x: images ``(N, C, *spatial)``, numpy or torch, in the estimator's units (z-scored intensities); not
            modified.
        sigma: noise standard deviation ``> 0``, in the units of ``x``.
        n: noisy copies per sample for the test, ``>= 1``.
        n0: ``None`` (select on the test votes, SegCertify) or the number ``>= 1`` of separate selection copies.
        tau: probability threshold in ``(0.5, 1)``; larger ``tau`` gives a larger radius and more abstention.
        alpha: family-wise error level in ``(0, 1)`` over the voxels of one sample.
        batch_size: noisy copies per model call, ``>= 1``.
        seed: non-negative integer seed of the noise.
        verbose: show a tqdm progress bar over noise batches.

    Returns:
        One :class:`SegmentationCertificate` per sample, in the order of ``x``.

    Raises:
        TypeError: ``segmenter`` lacks a required capability, or an argument has the wrong type.
        ValueError: an argument out of range (the message names it and its value), or ``x`` of the wrong shape
            or with NaN/Inf values. All checks run before any model call.

    Warns:
        UserWarning: when ``n`` is too small for any voxel to be certified (``m * tau**n > alpha`` for ``m``
            voxels: even unanimous votes fail Holm's first step).

    Example:
        >>> import torch
        >>> from art_seg.estimators import PyTorchSegmenter
        >>> net = torch.nn.Conv3d(1, 2, 1)
        >>> seg = PyTorchSegmenter(net, "ce", input_shape=(1, 4, 4, 4), nb_classes=2, device_type="cpu")
        >>> cert = certify_segmentation(seg, np.zeros((1, 1, 4, 4, 4), np.float32), sigma=0.25)[0]
        >>> cert.labels.shape, round(cert.radius, 4)
        ((4, 4, 4), 0.1686)
    """
    _check_segmenter(segmenter)
    check_input(x, nb_channels=segmenter.input_shape[0], nb_spatial_dims=len(segmenter.input_shape) - 1)
    _check_test(sigma=sigma, n=n, tau=tau, alpha=alpha)
    if n0 is not None:
        check_number("n0", n0, low=1, integer=True)
    check_number("batch_size", batch_size, low=1, integer=True)
    check_number("seed", seed, low=0, integer=True)
    check_type("verbose", verbose, bool)
    _warn_if_hopeless(math.prod(x.shape[2:]), n=n, tau=tau, alpha=alpha)

    device, dtype = segmenter.device, segmenter.dtype
    batches_per_sample = math.ceil(n / batch_size) + (math.ceil(n0 / batch_size) if n0 is not None else 0)
    certificates = []
    with tqdm(total=x.shape[0] * batches_per_sample, desc="certify_segmentation", disable=not verbose) as progress:
        for i in range(x.shape[0]):
            x_i = as_tensor(x[i : i + 1], device=device, dtype=dtype)
            generator = torch.Generator(device=device)
            generator.manual_seed(int(np.random.SeedSequence([seed, i]).generate_state(1)[0]))
            draw = dict(
                segmenter=segmenter, x_i=x_i, sigma=sigma, batch_size=batch_size, generator=generator, progress=progress
            )
            selected = None if n0 is None else _vote_counts(n=n0, **draw).argmax(0)
            counts = _vote_counts(n=n, **draw)
            certificates.append(
                _certificate_from_counts(counts, sigma=sigma, n=n, tau=tau, alpha=alpha, selected=selected)
            )
    return certificates


def certified_dice(
    certificate: SegmentationCertificate, truth: ArrayLike, regions: Regions | None = None
) -> dict[str, float]:
    """Dice per region of the certified prediction, abstained voxels counting as wrong.

    An abstained voxel is in no predicted region: it is never a true positive, and a false negative wherever
    the ground truth has a region. Empty regions follow :func:`art_seg.metrics.dice_per_region` (1.0 if the
    prediction is empty there too, else 0.0).

    Args:
        certificate: a :class:`SegmentationCertificate` with labels ``(*spatial)``.
        truth: integer class-index map ``(*spatial)``, numpy or torch.
        regions: region name -> class indices; default BraTS
            :data:`~art_seg.data.labels.REGION_CLASSES` (``WT``, ``TC``, ``ET``, class indices ``0 .. 3``).

    Returns:
        ``{region name: Dice}`` in the order of ``regions``.

    Raises:
        ValueError: ``truth`` of another shape than the labels, not integer, or out of range; bad ``regions``.

    Example:
        >>> cert = SegmentationCertificate(np.array([3, -1, 0, 0]), np.zeros((4, 4), np.int32), np.zeros(4),
        ...                                np.zeros(4), radius=0.1, sigma=0.15, tau=0.75, n=10, alpha=0.01)
        >>> certified_dice(cert, np.array([3, 3, 0, 0]))
        {'WT': 0.6666666666666666, 'TC': 0.6666666666666666, 'ET': 0.6666666666666666}
    """
    check_type("certificate", certificate, SegmentationCertificate)
    labels = certificate.labels
    in_regions = {c for classes in check_regions(regions).values() for c in classes}
    outside = min(set(range(len(in_regions) + 1)) - in_regions)  # a class index in no region (0 for BraTS)
    prediction = np.where(labels == ABSTAIN, outside, labels)
    return dice_per_region(prediction, truth, regions)


def certified_fraction_per_region(
    certificate: SegmentationCertificate, truth: ArrayLike, regions: Regions | None = None
) -> dict[str, float]:
    """Fraction of each region's ground-truth voxels that are certified (do not abstain), right or wrong.

    A region absent from ``truth`` scores 1.0 (nothing to certify, as sensitivity with nothing to find).

    Args:
        certificate: a :class:`SegmentationCertificate` with labels ``(*spatial)``.
        truth: integer class-index map ``(*spatial)``, numpy or torch.
        regions: region name -> class indices; default BraTS :data:`~art_seg.data.labels.REGION_CLASSES`.

    Returns:
        ``{region name: fraction in [0, 1]}`` in the order of ``regions``.

    Raises:
        ValueError: ``truth`` of another shape than the labels, not integer, or out of range; bad ``regions``.

    Example:
        >>> cert = SegmentationCertificate(np.array([3, -1, 0, 0]), np.zeros((4, 4), np.int32), np.zeros(4),
        ...                                np.zeros(4), radius=0.1, sigma=0.15, tau=0.75, n=10, alpha=0.01)
        >>> certified_fraction_per_region(cert, np.array([3, 3, 0, 0]))
        {'WT': 0.5, 'TC': 0.5, 'ET': 0.5}
    """
    check_type("certificate", certificate, SegmentationCertificate)
    truth = to_numpy("truth", truth)
    if truth.shape != certificate.labels.shape:
        raise ValueError(f"truth must have the labels' shape {certificate.labels.shape}, got {truth.shape}")
    truth, _, checked = region_pair(truth, truth, regions)
    certified = certificate.certified
    fractions = {}
    for name, classes in checked.items():
        region = np.isin(truth, classes)
        size = np.count_nonzero(region)
        fractions[name] = 1.0 if size == 0 else float(np.count_nonzero(region & certified) / size)
    return fractions


def certify_over_radii(
    segmenter: SegmenterMixin,
    x: ArrayLike,
    y: ArrayLike,
    *,
    sigmas: Sequence[float],
    n: int = 100,
    tau: float = 0.75,
    alpha: float = 0.001,
    regions: Regions | None = None,
    seed: int = 0,
    n0: int | None = None,
    batch_size: int = 8,
    verbose: bool = False,
) -> list[dict]:
    """Certified Dice and certified fraction per region for several noise levels, one row per (sigma, subject).

    Each ``sigma`` gives the radius ``sigma * Phi^-1(tau)``; plot ``dice`` and ``certified_region_fraction``
    against ``radius``. The same ``seed`` is used for every ``sigma`` (common random numbers).

    Args:
        segmenter, x, n, tau, alpha, seed, n0, batch_size, verbose: as :func:`certify_segmentation`.
        y: integer class-index maps ``(N, *spatial)`` of the samples of ``x``, numpy or torch.
        sigmas: non-empty sequence of noise levels ``> 0``, in the units of ``x``.
        regions: region name -> class indices; default BraTS :data:`~art_seg.data.labels.REGION_CLASSES`.

    Returns:
        Rows ``{"sigma", "radius", "subject_index", "certified_fraction", "dice": {region: Dice},
        "certified_region_fraction": {region: fraction}}``, sigma-major in the order of ``sigmas``, then by
        subject.

    Raises:
        TypeError, ValueError: as :func:`certify_segmentation`, and for bad ``sigmas``, ``y`` or ``regions``;
            every argument is checked before any model call.
    """
    _check_segmenter(segmenter)
    check_input(x, nb_channels=segmenter.input_shape[0], nb_spatial_dims=len(segmenter.input_shape) - 1)
    check_type("sigmas", sigmas, (Sequence, np.ndarray))
    if isinstance(sigmas, str) or len(sigmas) == 0:
        raise ValueError(f"sigmas must be a non-empty sequence of noise levels, got {sigmas!r}")
    for sigma in sigmas:
        _check_test(sigma=sigma, n=n, tau=tau, alpha=alpha)
    check_array = to_numpy("y", y)
    if check_array.shape != (x.shape[0], *x.shape[2:]):
        raise ValueError(f"y must have shape (N, *spatial) = {(x.shape[0], *x.shape[2:])}, got {check_array.shape}")
    region_pair(check_array, check_array, regions)  # integer class indices in range, valid regions
    rows = []
    for sigma in sigmas:
        certificates = certify_segmentation(
            segmenter,
            x,
            sigma=sigma,
            n=n,
            n0=n0,
            tau=tau,
            alpha=alpha,
            batch_size=batch_size,
            seed=seed,
            verbose=verbose,
        )
        for i, certificate in enumerate(certificates):
            rows.append(
                {
                    "sigma": float(sigma),
                    "radius": certificate.radius,
                    "subject_index": i,
                    "certified_fraction": certificate.certified_fraction,
                    "dice": certified_dice(certificate, check_array[i], regions),
                    "certified_region_fraction": certified_fraction_per_region(certificate, check_array[i], regions),
                }
            )
    return rows


# ---------------------------------------------------------------------- internals
def _check_segmenter(segmenter: object) -> None:
    for requirement in ESTIMATOR_REQUIREMENTS:
        if not isinstance(segmenter, requirement):
            raise TypeError(
                f"segmenter must be a {requirement.__name__} (e.g. art_seg.estimators.PyTorchSegmenter), "
                f"got {type(segmenter).__name__}"
            )


def _check_test(*, sigma: float, n: int, tau: float, alpha: float) -> None:
    check_number("sigma", sigma, low=0, low_inclusive=False)
    check_number("n", n, low=1, integer=True)
    check_number("tau", tau, low=0.5, high=1, low_inclusive=False, high_inclusive=False)
    check_number("alpha", alpha, low=0, high=1, low_inclusive=False, high_inclusive=False)


def _warn_if_hopeless(nb_voxels: int, *, n: int, tau: float, alpha: float) -> None:
    if nb_voxels * float(tau) ** n > alpha:
        warnings.warn(
            f"n={n} is too small to certify any of the {nb_voxels} voxels at tau={tau}, alpha={alpha}: even "
            f"unanimous votes give a Holm-adjusted p-value of {nb_voxels} * tau**n = {nb_voxels * tau**n:.3g} > "
            f"alpha; every voxel will abstain",
            stacklevel=3,
        )


def _vote_counts(
    *,
    segmenter: SegmenterMixin,
    x_i: torch.Tensor,
    sigma: float,
    n: int,
    batch_size: int,
    generator: torch.Generator,
    progress: tqdm,
) -> np.ndarray:
    """``int32 (K, *spatial)`` argmax votes of ``n`` copies ``x_i + sigma * N(0, I)`` (``x_i`` is ``(1, C, ...)``)."""
    nb_classes = segmenter.nb_classes
    counts = torch.zeros((nb_classes, *x_i.shape[2:]), dtype=torch.int32, device=x_i.device)
    for start in range(0, n, batch_size):
        size = min(batch_size, n - start)
        noise = torch.randn((size, *x_i.shape[1:]), generator=generator, device=x_i.device, dtype=x_i.dtype)
        votes = segmenter.predict(x_i + sigma * noise, batch_size=size).argmax(1)
        for k in range(nb_classes):
            counts[k] += (votes == k).sum(0, dtype=torch.int32)
        progress.update()
    return counts.cpu().numpy()


def _binomial_p_values(top_counts: np.ndarray, n: int, tau: float) -> np.ndarray:
    """One-sided p-values ``P[Bin(n, tau) >= k]`` of ``H0: p <= tau`` for integer counts ``k`` in ``0 .. n``.

    Equal to ``scipy.stats.binomtest(k, n, tau, alternative="greater").pvalue``; computed once per possible
    count (``n + 1`` values) and looked up, so any number of voxels costs one table.
    """
    table = stats.binom.sf(np.arange(-1, n), n, tau)  # table[k] = sf(k - 1) = P[X >= k]
    return table[np.asarray(top_counts)]


def _certificate_from_counts(
    counts: np.ndarray, *, sigma: float, n: int, tau: float, alpha: float, selected: np.ndarray | None = None
) -> SegmentationCertificate:
    """SegCertify's test on vote counts ``(K, *spatial)`` of ``n`` copies (every voxel's counts sum to ``n``).

    ``selected`` (``(*spatial)`` class indices) replaces the per-voxel argmax of ``counts`` as the tested class.
    """
    counts = np.asarray(counts, dtype=np.int32)
    if (counts < 0).any() or (counts.sum(0) != n).any():
        raise ValueError(f"counts must be non-negative and sum to n={n} at every voxel")
    classes = counts.argmax(0) if selected is None else np.asarray(selected, dtype=np.int64)
    top_counts = np.take_along_axis(counts, classes[None], axis=0)[0]
    p_values = _binomial_p_values(top_counts, n, tau)
    adjusted = holm(p_values.ravel()).reshape(p_values.shape)
    labels = np.where(adjusted <= alpha, classes, ABSTAIN).astype(np.int64)
    radius = float(sigma * stats.norm.ppf(tau))
    return SegmentationCertificate(
        labels=labels,
        counts=counts,
        p_values=p_values,
        adjusted_p_values=adjusted,
        radius=radius,
        sigma=float(sigma),
        tau=float(tau),
        n=n,
        alpha=float(alpha),
    )
