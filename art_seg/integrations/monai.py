"""A MONAI bundle as a :class:`~art_seg.estimators.PyTorchSegmenter` whose prediction is the bundle's own inferer
and activation, differentiable end to end.

A bundle folder holds ``configs/inference.json`` (``network_def``, ``inferer``, ``postprocessing``),
``configs/metadata.json`` (``network_data_format``: the input and output channels) and ``models/model.pt`` (the
weights). :func:`load_bundle` parses the config with ``monai.bundle.ConfigParser``, as ``monai.bundle run`` does,
and builds:

============================  ==============================================================================
bundle                        art_seg
============================  ==============================================================================
``network_def``               the network, instantiated by the parser, weights from ``models/model.pt``
                              (``torch.load(weights_only=True)``; a ``{"model": state_dict}`` checkpoint, as
                              ``CheckpointLoader`` saves it, is unwrapped)
``SlidingWindowInferer``      ``SlidingWindow(roi_size, overlap, mode, sigma_scale, windows_per_batch=
                              sw_batch_size, placement="monai_padded")``: MONAI's scan, its Gaussian, its zero
                              padding of a volume shorter than the window; other padding modes are refused
``SimpleInferer``             whole-volume inference (no window); other inferers are refused
``Activations(d)`` in the     ``activation="sigmoid"`` for ``sigmoid=True``, else softmax (``softmax=True``,
postprocessing                ``argmax`` or nothing)
``ConvertToMultiChannelBased  the region spec ``"monai_brats"`` (channels TC, WT, ET), also when the metadata's
OnBratsClasses(d)``           output channels are named tumour core, whole tumour and enhancing tumour (in
                              MONAI's or art_seg's order); art_seg then scores and writes label maps in the
                              data's BraTS convention
metadata input channels       named BraTS series (``T1c``, ``T1``, ``T2``, ``FLAIR``, ...) are taken from
                              art_seg's ``t1, t1ce, t2, flair`` input in the bundle's order
                              (:attr:`BundleNetwork.modalities`, :attr:`BundleNetwork.channel_order`); other
                              names keep the input's channels as they are
``spatial_shape`` ``"8*n"``   inputs padded to a multiple of 8 (:attr:`BundleNetwork.subject_loading`)
============================  ==============================================================================

Not reproduced: the bundle's image preprocessing (art_seg's data layer z-scores over the brain, the voxels
non-zero in any channel; MONAI's ``NormalizeIntensityd(nonzero=True, channel_wise=True)`` over each channel's
non-zero voxels), resampling and orientation transforms, and ``amp`` (art_seg runs float32 unless asked for
``autocast``).
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from art_seg._checks import check_type
from art_seg._files import read_json_object
from art_seg.data.dataset_json import channel_modality
from art_seg.data.subject import DEFAULT_MODALITIES
from art_seg.estimators import PyTorchSegmenter, SlidingWindow

__all__ = ["BundleNetwork", "load_bundle"]

#: The files a bundle folder must hold, relative to it.
BUNDLE_FILES = ("configs/inference.json", "configs/metadata.json", "models/model.pt")
#: Output channel names (lower case, letters only) of the BraTS regions, and the region each stands for.
_REGION_NAMES = {
    "tc": "TC", "tumorcore": "TC", "tumourcore": "TC",
    "wt": "WT", "wholetumor": "WT", "wholetumour": "WT",
    "et": "ET", "enhancingtumor": "ET", "enhancingtumour": "ET",
}  # fmt: skip
#: art_seg's region presets by channel order.
_PRESET_BY_ORDER = {("TC", "WT", "ET"): "monai_brats", ("WT", "TC", "ET"): "brats"}


class BundleNetwork(nn.Module):
    """A bundle's network on art_seg's input channels: ``network(x[:, channel_order])``.

    Args:
        network: the bundle's network, logits ``(B, K, *spatial)``.
        channel_order: for each network input channel, the index of the art_seg input channel that holds it.
        modalities: art_seg names of the input channels (``("t1", "t1ce", "t2", "flair")`` for a BraTS bundle),
            or ``None`` where the metadata does not name BraTS series.
        multiple: every spatial size of the network's input must be a multiple of this (the metadata's
            ``spatial_shape`` ``"8*n"``), ``>= 1``.
    """

    def __init__(
        self, network: nn.Module, channel_order: Sequence[int], modalities: Sequence[str] | None, multiple: int
    ) -> None:
        super().__init__()
        self.network = network
        self.channel_order = tuple(int(c) for c in channel_order)
        self.modalities = None if modalities is None else tuple(modalities)
        #: ``load_subject`` options that give inputs this network accepts.
        self.subject_loading = {"multiple": int(multiple)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, K, *spatial)`` of art_seg inputs ``(B, C, *spatial)``."""
        if self.channel_order != tuple(range(x.shape[1])):
            x = x[:, list(self.channel_order)]
        return self.network(x)


def load_bundle(
    folder: str | os.PathLike,
    *,
    device: str | None = None,
    config: str = "configs/inference.json",
    weights: str = "models/model.pt",
) -> PyTorchSegmenter:
    """Load a MONAI bundle folder as a segmenter whose prediction is the bundle's inferer and activation.

    The segmenter takes art_seg's input ``(N, C, *spatial)`` float32 (for a bundle whose metadata names BraTS
    series: the ``t1, t1ce, t2, flair`` channels ``art_seg.data`` loads, z-scored) and returns the bundle's
    logits ``(N, K, *spatial)``; ``predict`` applies the activation of the bundle's postprocessing (module
    docstring). The network is put in eval mode (dropout off), as MONAI's evaluator does.

    Parsing runs the config's Python expressions (``"$..."`` entries), as MONAI does: load only bundles you trust
    (the weights themselves are read with ``weights_only=True``).

    Args:
        folder: the bundle folder (``configs/inference.json``, ``configs/metadata.json``, ``models/model.pt``).
        device: ``None`` or ``"gpu"`` (CUDA when available, else the CPU) or ``"cpu"``.
        config: the inference config, relative to ``folder``.
        weights: the weights file, relative to ``folder``.

    Returns:
        A :class:`~art_seg.estimators.PyTorchSegmenter` with ``model`` a :class:`BundleNetwork`, loss
        ``"dice_ce"``, no ``preprocessing`` or ``clip_values``, ``regions="monai_brats"`` for a BraTS region
        bundle.

    Raises:
        FileNotFoundError: ``folder`` is not a folder, or a bundle file is missing (naming it).
        ValueError: a config or metadata file that is not JSON or lacks an entry, a config the parser cannot
            instantiate, an unsupported inferer, weights that do not fit the network or that
            ``torch.load(weights_only=True)`` refuses; the message names the file.
        ImportError: MONAI is not installed (``pip install art-seg[monai]``).

    Example:
        >>> seg = load_bundle("brats_mri_segmentation", device="cpu")  # doctest: +SKIP
        >>> seg.activation, seg.regions.names, seg.sliding_window.roi_size  # doctest: +SKIP
        ('sigmoid', ('TC', 'WT', 'ET'), (240, 240, 160))
    """
    check_type("folder", folder, (str, os.PathLike))
    if device not in (None, "cpu", "gpu"):
        raise ValueError(f"device must be None, 'cpu' or 'gpu', got {device!r}")
    root = Path(folder)
    expected = f"a MONAI bundle holds {', '.join(BUNDLE_FILES)}"
    if not root.is_dir():
        raise FileNotFoundError(f"bundle {str(folder)!r} is not a folder ({expected})")
    for name in (config, "configs/metadata.json", weights):
        if not (root / name).is_file():
            raise FileNotFoundError(f"bundle {str(root)!r} has no {name} ({expected})")
    try:
        from monai.bundle import ConfigParser
    except ImportError as error:
        raise ImportError(f"load_bundle needs MONAI: pip install art-seg[monai] ({error})") from error

    config_path, metadata_path = root / config, root / "configs" / "metadata.json"
    raw = read_json_object(config_path)
    metadata = read_json_object(metadata_path)
    parser = ConfigParser(raw)
    parser["bundle_root"] = str(root)
    for key in ("network_def", "inferer"):
        if key not in raw:
            raise ValueError(f"{config_path}: no {key!r} entry (a bundle's inference config defines network_def, "
                             "inferer and postprocessing)")  # fmt: skip
    network = _parsed(parser, "network_def", config_path)
    if not isinstance(network, nn.Module):
        raise ValueError(f"{config_path}: network_def is a {type(network).__name__}, not a torch.nn.Module")
    network.load_state_dict(_weights(root / weights, network))
    window = _window(_parsed(parser, "inferer", config_path), config_path)
    sigmoid = _sigmoid(parser, raw.get("postprocessing"), config_path)

    inputs, outputs = _formats(metadata, metadata_path)
    modalities, channel_order = _channels(inputs, metadata_path)
    regions = _regions(root, outputs) if sigmoid else None
    spatial = inputs.get("spatial_shape") or []
    multiple = _multiple(spatial)
    model = BundleNetwork(network, channel_order, modalities, multiple)
    nb_outputs = _count(outputs, metadata_path)
    nb_dims = len(window.roi_size) if window and isinstance(window.roi_size, tuple) else len(spatial) or 3
    return PyTorchSegmenter(
        model,
        "dice_ce",
        input_shape=(len(modalities) if modalities else len(channel_order), *(multiple,) * nb_dims),
        nb_classes=nb_outputs,
        activation="sigmoid" if sigmoid else "softmax",
        regions=regions,
        sliding_window=window,
        device_type=device or "gpu",
        preprocessing=None,
        deep_supervision=None,
    )


# ---------------------------------------------------------------------------------------------- config parts
def _parsed(parser: Any, key: str, path: Path) -> Any:
    """``parser.get_parsed_content(key)``, its failures as a ``ValueError`` naming the file and the entry."""
    try:
        return parser.get_parsed_content(key)
    except Exception as error:  # the parser raises whatever the config's code raises
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"{path}: cannot instantiate {key!r}: {reason}") from error


def _weights(path: Path, network: nn.Module) -> Mapping[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        reason = str(error).strip().splitlines()[-1]
        raise ValueError(f"{path}: torch.load(weights_only=True) refuses these weights ({reason}); art_seg does "
                         "not unpickle arbitrary objects: save the network's state_dict") from None  # fmt: skip
    except (OSError, RuntimeError, EOFError) as error:
        raise ValueError(f"{path}: cannot read the weights ({type(error).__name__}: {error})") from None
    if isinstance(state, Mapping) and isinstance(state.get("model"), Mapping):
        state = state["model"]  # CheckpointLoader's {"model": state_dict}
    if not isinstance(state, Mapping):
        raise ValueError(f"{path}: expected a state_dict, got {type(state).__name__}")
    own = network.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        raise ValueError(f"{path}: the weights do not fit network_def (missing {missing[:3]}, unexpected "
                         f"{unexpected[:3]}, other shapes {wrong[:3]})")  # fmt: skip
    return state


def _window(inferer: Any, path: Path) -> SlidingWindow | None:
    """The art_seg window of a MONAI inferer, ``None`` for ``SimpleInferer``."""
    from monai.inferers import SimpleInferer, SlidingWindowInferer

    kind = type(inferer).__name__
    if type(inferer) is SimpleInferer:
        return None
    if type(inferer) is not SlidingWindowInferer:
        raise ValueError(f"{path}: inferer {kind} is not supported: art_seg reproduces SimpleInferer and "
                         "SlidingWindowInferer")  # fmt: skip
    roi = inferer.roi_size
    roi = tuple(roi) if isinstance(roi, Sequence) else roi
    if any(int(r) < 1 for r in (roi if isinstance(roi, tuple) else (roi,))):
        raise ValueError(f"{path}: SlidingWindowInferer roi_size {roi} has a non-positive size (the image's size "
                         "in MONAI); give the window's size")  # fmt: skip
    if str(inferer.padding_mode) not in ("constant", "PytorchPadMode.CONSTANT") or float(inferer.cval) != 0.0:
        raise ValueError(f"{path}: SlidingWindowInferer pads with {inferer.padding_mode!s} (cval {inferer.cval}); "
                         "art_seg pads with zeros, MONAI's default")  # fmt: skip
    if getattr(inferer, "with_coord", False):
        raise ValueError(f"{path}: SlidingWindowInferer with_coord=True is not supported")
    return SlidingWindow(
        roi_size=roi,
        overlap=_one("overlap", inferer.overlap, path),
        mode=str(getattr(inferer.mode, "value", inferer.mode)),
        sigma_scale=_one("sigma_scale", inferer.sigma_scale, path),
        windows_per_batch=int(inferer.sw_batch_size),
        placement="monai_padded",
    )


def _one(name: str, value: Any, path: Path) -> float:
    """A per-dimension MONAI option that art_seg takes as one number."""
    values = set(value) if isinstance(value, Sequence) else {value}
    if len(values) != 1:
        raise ValueError(f"{path}: SlidingWindowInferer {name} {value} differs between dimensions; art_seg takes one")
    return float(values.pop())


def _targets(node: Any, key: str) -> Iterator[tuple[str, str]]:
    """``(config id, class name)`` of every ``_target_`` under ``node`` (ids as ``ConfigParser`` writes them)."""
    if isinstance(node, Mapping):
        target = node.get("_target_")
        if isinstance(target, str):
            yield key, target.rsplit(".", 1)[-1]
        for child, value in node.items():
            yield from _targets(value, f"{key}#{child}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _targets(value, f"{key}#{i}")


def _sigmoid(parser: Any, postprocessing: Any, path: Path) -> bool:
    """Whether the postprocessing's ``Activations(d)`` applies a sigmoid."""
    for key, name in _targets(postprocessing, "postprocessing"):
        if name in ("Activations", "Activationsd"):
            sigmoid = getattr(_parsed(parser, key, path), "sigmoid", False)  # Activationsd: one flag per key
            if any(sigmoid) if isinstance(sigmoid, tuple) else sigmoid:
                return True
    return False


def _formats(metadata: dict, path: Path) -> tuple[dict, dict]:
    """The first input and output of the metadata's ``network_data_format``."""
    formats = metadata.get("network_data_format")
    try:
        inputs = next(iter(formats["inputs"].values()))
        outputs = next(iter(formats["outputs"].values()))
    except (TypeError, KeyError, AttributeError, StopIteration):
        raise ValueError(f"{path}: no network_data_format with inputs and outputs") from None
    if not isinstance(inputs, dict) or not isinstance(outputs, dict):
        raise ValueError(f"{path}: network_data_format inputs and outputs must be objects")
    return inputs, outputs


def _count(fmt: dict, path: Path) -> int:
    count = fmt.get("num_channels")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"{path}: network_data_format num_channels must be a positive int, got {count!r}")
    return count


def _channel_names(fmt: dict) -> list[str]:
    definitions = fmt.get("channel_def") or {}
    return [str(definitions[k]) for k in sorted(definitions, key=lambda k: int(k))] if definitions else []


def _channels(inputs: dict, path: Path) -> tuple[tuple[str, ...] | None, tuple[int, ...]]:
    """art_seg modalities of the input (``None`` if not all BraTS series) and, per network channel, the art_seg
    channel that holds it."""
    count = _count(inputs, path)
    names = _channel_names(inputs)
    modalities = [channel_modality(name) for name in names]
    if names and len(names) == count and None not in modalities and len(set(modalities)) == len(modalities):
        order = tuple(m for m in DEFAULT_MODALITIES if m in modalities)
        return order, tuple(order.index(m) for m in modalities)
    return None, tuple(range(count))


def _regions(root: Path, outputs: dict) -> str | None:
    """The region preset of a BraTS region bundle, from its configs or its output channel names."""
    names = tuple(_REGION_NAMES.get(re.sub(r"[^a-z]", "", name.lower())) for name in _channel_names(outputs))
    if names in _PRESET_BY_ORDER:
        return _PRESET_BY_ORDER[names]
    for config in sorted((root / "configs").glob("*.json")):
        if "ConvertToMultiChannelBasedOnBratsClasses" in config.read_text(encoding="utf-8", errors="replace"):
            return "monai_brats"
    return None


def _multiple(spatial_shape: Sequence[Any]) -> int:
    """The largest ``k`` of ``"k*n"`` sizes in the metadata's ``spatial_shape`` (1 without any)."""
    matches = [re.fullmatch(r"\s*(\d+)\s*\*\s*n\s*", s) for s in spatial_shape if isinstance(s, str)]
    return max((int(m.group(1)) for m in matches if m), default=1)
