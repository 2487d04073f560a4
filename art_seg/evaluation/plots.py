"""Plots of a robustness evaluation: Dice against eps per model and attack, and one subject's overlay.

matplotlib's object API only (a ``Figure`` on an Agg canvas): no pyplot, no global backend change, so an
interactive session's backend is left alone. matplotlib is imported inside the functions, when a plot is drawn,
so importing this module (or :mod:`art_seg.evaluation`) does not import it. Files are written atomically
(:func:`art_seg._files.atomic_savefig`).
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from art_seg._checks import check_choice, check_finite, check_number, check_type
from art_seg.data.labels import CLASS_NAMES
from art_seg._files import atomic_savefig
from art_seg.evaluation.summary import ConditionSummary, check_summaries

__all__ = ["figure_png", "plot_overlay", "plot_robustness_curves", "robustness_curves_figure"]

EPS_LABEL = "eps (z-scored intensity)"
DPI = 100
def _new_figure(**kwargs: Any) -> Any:
    """A matplotlib ``Figure`` on an Agg canvas (no pyplot, the session's backend untouched)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("art_seg's report plots need matplotlib: pip install matplotlib") from error
    figure = Figure(**kwargs)
    FigureCanvasAgg(figure)
    return figure


def figure_png(figure: Any) -> bytes:
    """``figure`` as PNG bytes (at the resolution of every art_seg plot), for writing with other files at once."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def robustness_curves_figure(summaries: Sequence[ConditionSummary], *, region: str = "WT") -> Any:
    """The figure of :func:`plot_robustness_curves`, not saved (a ``matplotlib.figure.Figure``).

    Raises:
        TypeError: if ``summaries`` holds something other than :class:`ConditionSummary`.
        ValueError: if ``summaries`` is empty or ``region`` is not one of its regions.
    """
    summaries = check_summaries(summaries)
    check_type("region", region, str)
    check_choice("region", region, list(dict.fromkeys(s.region for s in summaries)))
    selected = [s for s in summaries if s.region == region]
    models = list(dict.fromkeys(s.model for s in selected))
    colours = {attack: f"C{i % 10}" for i, attack in enumerate(dict.fromkeys(s.attack for s in selected))}

    figure = _new_figure(figsize=(1.0 + 4.0 * len(models), 3.8), layout="constrained")
    axes = figure.subplots(1, len(models), sharey=True, squeeze=False)[0]
    for ax, model in zip(axes, models):
        for attack in dict.fromkeys(s.attack for s in selected if s.model == model):
            curve = sorted((s for s in selected if s.model == model and s.attack == attack), key=lambda s: s.eps)
            eps = np.array([0.0] + [s.eps for s in curve])
            mean = np.array([curve[0].clean_mean] + [s.mean for s in curve])
            sd = np.array([curve[0].clean_sd] + [s.sd for s in curve])
            ax.plot(eps, mean, marker="o", markersize=3.5, color=colours[attack], label=attack)
            ax.fill_between(eps, mean - sd, mean + sd, color=colours[attack], alpha=0.15, linewidth=0)
        ax.set_title(model)
        ax.set_xlabel(EPS_LABEL)
        ax.set_ylim(0.0, 1.0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", loc="lower left")
    axes[0].set_ylabel(f"Dice {region} (mean ± sd)")
    return figure


def plot_robustness_curves(
    summaries: Sequence[ConditionSummary], path: str | os.PathLike[str], *, region: str = "WT"
) -> Path:
    """Mean Dice (± sd band) of ``region`` against eps, one line per attack, one subplot per model.

    Each attack's curve starts at eps = 0 with the clean mean Dice (of the subjects of its smallest eps), so all
    curves of a model share their first point. Subplots share the y axis, 0 to 1; an attack has the same colour
    in every subplot.

    Args:
        summaries: output of :func:`~art_seg.evaluation.summary.summarise`.
        path: PNG file to write (atomically: temporary file in the same folder, then ``os.replace``).
        region: region to plot, one of the summaries' regions.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        TypeError: if ``summaries`` holds something other than :class:`ConditionSummary`.
        ValueError: if ``summaries`` is empty or ``region`` is not one of its regions.
        OSError: if ``path`` cannot be written.
    """
    return atomic_savefig(robustness_curves_figure(summaries, region=region), path, format="png", dpi=DPI)
def _as_array(name: str, value: Any, ndim: int, what: str) -> np.ndarray:
    array = np.asarray(value.detach().cpu() if hasattr(value, "detach") else value)
    if array.ndim != ndim:
        raise ValueError(f"{name} must be {what}, got shape {array.shape}")
    return array


def _label_map(name: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
    labels = _as_array(name, value, 3, "a (D, H, W) label map of class indices")
    if labels.shape != shape:
        raise ValueError(f"{name} must have the image's spatial shape {shape}, got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class indices, got dtype {labels.dtype}")
    if labels.size and labels.min() < 0:
        raise ValueError(f"{name} must hold class indices >= 0, got minimum {labels.min()}")
    return labels


def _display_range(plane: np.ndarray) -> tuple[float, float]:
    low, high = (float(v) for v in np.percentile(plane, [0.5, 99.5]))
    if high <= low:
        low, high = float(plane.min()), float(plane.max())
    if high <= low:
        low, high = low - 0.5, high + 0.5
    return low, high


def plot_overlay(
    image: Any,
    truth: Any,
    clean_prediction: Any,
    adversarial_prediction: Any,
    perturbation: Any,
    path: str | os.PathLike[str],
    *,
    channel: int = -1,
    slice_index: int | None = None,
    magnify: float | None = None,
    title: str | None = None,
    class_names: Sequence[str] | None = None,
) -> Path:
    """One subject on one axial slice: image, ground truth, clean and adversarial prediction, perturbation.

    Five panels in a row, all the plane ``[:, :, slice_index]`` (``D`` across, ``H`` up, origin lower left):
    the image channel in grey (0.5 to 99.5 percentile of the slice), then the ground truth, the clean prediction
    and the adversarial prediction overlaid on it (a colour per class, background transparent), then the
    perturbation of that channel times ``magnify`` on a diverging colour map centred on 0 whose ends are
    ``± (display range of the image)``; the factor is in the panel's title.

    Args:
        image: ``(C, D, H, W)`` float, z-scored intensities (numpy array or CPU tensor).
        truth: ``(D, H, W)`` int class indices ``0 .. K-1``, 0 = background.
        clean_prediction: ``(D, H, W)`` int, the prediction on ``image``.
        adversarial_prediction: ``(D, H, W)`` int, the prediction on ``image + perturbation``.
        perturbation: ``(C, D, H, W)`` float, adversarial minus clean image, same units as ``image``.
        path: PNG file to write (atomically).
        channel: image channel to show (negative counts from the end; default the last, FLAIR in BraTS order).
        slice_index: index along the last axis; default the slice with the most foreground in ``truth`` (the
            middle one of equally good slices), or the middle slice when ``truth`` has none.
        magnify: factor for the perturbation, ``> 0``; default such that the largest ``|perturbation|`` on the
            slice (else in the channel) equals the image's display range (1.0 when the perturbation is zero).
        title: figure title, or ``None``.
        class_names: names of classes ``0 .. K-1`` for the legend (at least as many as the largest class + 1);
            default :data:`art_seg.data.labels.CLASS_NAMES` when the labels fit them, else ``"class <k>"``.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: if a shape, dtype or value does not fit (the message names the argument and its shape), or
            ``channel``, ``slice_index`` or ``magnify`` is out of range.
        TypeError: if an option has the wrong type.
    """
    image = _as_array("image", image, 4, "(C, D, H, W)")
    if not np.issubdtype(image.dtype, np.floating):
        raise ValueError(f"image must be a float array, got dtype {image.dtype}")
    check_finite("image", image)
    spatial = image.shape[1:]
    truth = _label_map("truth", truth, spatial)
    clean_prediction = _label_map("clean_prediction", clean_prediction, spatial)
    adversarial_prediction = _label_map("adversarial_prediction", adversarial_prediction, spatial)
    perturbation = _as_array("perturbation", perturbation, 4, "(C, D, H, W)")
    if perturbation.shape != image.shape:
        raise ValueError(f"perturbation must have the image's shape {image.shape}, got shape {perturbation.shape}")
    if not np.issubdtype(perturbation.dtype, np.floating):
        raise ValueError(f"perturbation must be a float array, got dtype {perturbation.dtype}")
    check_finite("perturbation", perturbation)
    channels = image.shape[0]
    check_number("channel", channel, low=-channels, high=channels - 1, integer=True)
    if slice_index is None:
        foreground = (truth > 0).sum(axis=(0, 1))
        best = np.flatnonzero(foreground == foreground.max())  # ties: the middle one of the best slices
        slice_index = int(best[len(best) // 2]) if foreground.max() > 0 else spatial[2] // 2
    check_number("slice_index", slice_index, low=0, high=spatial[2] - 1, integer=True)
    if magnify is not None:
        check_number("magnify", magnify, low=0, low_inclusive=False)
    if title is not None:
        check_type("title", title, str)
    nb_classes = 1 + int(max(truth.max(), clean_prediction.max(), adversarial_prediction.max()))
    if class_names is None:
        class_names = CLASS_NAMES if nb_classes <= len(CLASS_NAMES) else [f"class {k}" for k in range(nb_classes)]
    elif isinstance(class_names, str) or not isinstance(class_names, Sequence):
        raise TypeError(f"class_names must be a sequence of str, got {type(class_names).__name__} ({class_names!r})")
    class_names = list(class_names)
    for name in class_names:
        check_type("class_names item", name, str)
    if len(class_names) < nb_classes:
        raise ValueError(f"class_names must name classes 0..{nb_classes - 1}, got {len(class_names)} name(s)")

    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    plane = image[channel, :, :, slice_index].astype(np.float64)
    low, high = _display_range(plane)
    width = high - low
    shift = perturbation[channel, :, :, slice_index].astype(np.float64)
    if magnify is None:
        largest = float(np.abs(shift).max()) or float(np.abs(perturbation[channel]).max())
        magnify = width / largest if largest > 0 else 1.0
    palette = [(0, 0, 0, 0)] + [(*_class_colour(k), 0.55) for k in range(1, len(class_names))]
    class_map = ListedColormap(palette)

    figure = _new_figure(figsize=(15.0, 3.9), layout="constrained")
    axes = figure.subplots(1, 5)
    panels = [
        ("image", None),
        ("ground truth", truth),
        ("clean prediction", clean_prediction),
        ("adversarial prediction", adversarial_prediction),
    ]
    show = {"origin": "lower", "interpolation": "nearest"}
    for ax, (name, labels) in zip(axes, panels):
        ax.imshow(plane.T, cmap="gray", vmin=low, vmax=high, **show)
        if labels is not None:
            ax.imshow(labels[:, :, slice_index].T, cmap=class_map, vmin=-0.5, vmax=len(class_names) - 0.5, **show)
        ax.set_title(name if labels is not None else f"image, channel {channel % channels}", fontsize="medium")
    shown = axes[4].imshow((magnify * shift).T, cmap="RdBu_r", vmin=-width, vmax=width, **show)
    axes[4].set_title(f"perturbation × {magnify:.3g}", fontsize="medium")
    figure.colorbar(shown, ax=axes[4], shrink=0.8, label="z-scored intensity × factor")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    handles = [Patch(color=palette[k], label=class_names[k]) for k in range(1, len(class_names))]
    if handles:
        figure.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize="small", frameon=False)
    figure.suptitle((title + " — " if title else "") + f"slice {slice_index} of {spatial[2]} (last axis)")
    return atomic_savefig(figure, path, format="png", dpi=DPI)


def _class_colour(k: int) -> tuple[float, float, float]:
    """Colour of class ``k >= 1``: red, green, yellow for the BraTS classes 1-3, then tab10."""
    fixed = {1: (0.90, 0.10, 0.10), 2: (0.10, 0.75, 0.20), 3: (1.00, 0.85, 0.00)}
    if k in fixed:
        return fixed[k]
    from matplotlib import colormaps

    return tuple(colormaps["tab10"]((k - 4) % 10)[:3])
