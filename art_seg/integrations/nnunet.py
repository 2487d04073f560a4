"""An nnU-Net v2 trained-model folder as a :class:`~art_seg.estimators.PyTorchSegmenter` whose prediction is
``nnUNetPredictor``'s, differentiable end to end (attacks optimise what the deployment runs).

A folder holds ``plans.json``, ``dataset.json`` and ``fold_X/checkpoint_final.pth``. :func:`load_nnunet` builds
the network from the plans through nnU-Net's own builder (the trainer's ``build_network_architecture``, deep
supervision off, as the predictor does), loads each fold's weights with ``torch.load(weights_only=True)`` and
wraps them in :class:`NnUNetModel`, which does per window what ``nnUNetPredictor`` does per window; the
segmenter's :class:`~art_seg.estimators.SlidingWindow` in nnU-Net mode places the windows and blends them with
nnU-Net's Gaussian (``tile_step_size`` 0.5, the predictor's default, is ``overlap=0.5``).

What nnU-Net does at inference, and where it happens here:

============================  ==============================================================================
nnU-Net                       art_seg
============================  ==============================================================================
reader axes ``(C, z, y, x)``  the segmenter takes art_seg's ``(N, C, x, y, z)`` (nibabel order); the model
then ``transpose_forward``    permutes to nnU-Net's network axes and back (:attr:`NnUNetModel.to_nnunet`)
channels in file order        the segmenter takes art_seg's channel order (``t1, t1ce, t2, flair`` for BraTS
                              series, :attr:`NnUNetModel.modalities`); the model reorders them
crop to the non-zero box,     the caller's data loading: ``art_seg.data`` with ``margin=0, multiple=1``
background outside it         (:attr:`NnUNetModel.subject_loading`) crops to the same box, and writing
                              predictions back fills background outside it
``ZScoreNormalization`` with  what ``art_seg.data`` does: z-score over the voxels non-zero in any channel, 0
``use_mask_for_norm``         outside. nnU-Net also counts holes enclosed by the mask (``binary_fill_holes``);
                              a scan with such holes differs there. Other schemes are refused.
resampling to the plans'      refused: :meth:`NnUNetModel.check_spacing` raises where nnU-Net would resample
spacing                       (resample the data to :attr:`NnUNetModel.spacing` first)
pad to the patch size,        ``SlidingWindow(mode="nnunet", placement="nnunet")``
window placement, Gaussian
mirroring TTA per window      the model, per window, in nnU-Net's order: ``(net(x) + sum_axes flip(net(flip(x))))
                              / (1 + number of axis combinations)``
folds averaged as logits      the model averages the folds' (mirrored) window logits; blending is linear, so
                              this equals nnU-Net's average of stitched logits up to rounding
float16 accumulation          float32 (nnU-Net's half-precision sums move logits by up to about 0.5)
softmax / regions             ``activation`` and a :class:`~art_seg.data.RegionSpec` from the label manager
label values                  output channels are art_seg classes of the ``dataset.json``'s label convention
                              (nnU-Net's BraTS 1 edema, 2 necrosis, 3 enhancing -> art_seg's 1 necrosis, 2
                              edema, 3 enhancing), so predictions written back use the data's convention
============================  ==============================================================================

Refused with a message naming the folder: 2D and cascade configurations, reorienting readers, normalisation
other than z-scoring over the non-zero mask, nnU-Net's ignore label.
"""

from __future__ import annotations

import copy
import inspect
import itertools
import os
import pickle
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from art_seg._checks import check_type
from art_seg._files import read_json_object
from art_seg.data.dataset_json import DatasetDescription, read_dataset_json
from art_seg.data.labels import get_convention
from art_seg.data.regions import REGION_PRESETS, RegionSpec
from art_seg.estimators import PyTorchSegmenter, SlidingWindow

__all__ = ["NnUNetModel", "load_nnunet"]

#: nnUNetPredictor's default ``tile_step_size`` (``overlap = 1 - tile_step_size``).
TILE_STEP_SIZE = 0.5
#: Readers whose arrays are ``(C, z, y, x)`` of the file (no reorientation).
READERS = ("SimpleITKIO", "NibabelIO")
_SCALAR = np._core.multiarray.scalar
#: Numpy scalars nnU-Net's checkpoints hold in their training log (loaded by ``weights_only=True`` when allowed);
#: checkpoints saved under numpy 1 name the scalar constructor ``numpy.core.multiarray.scalar``.
_NUMPY_SAFE_GLOBALS = [
    np.dtype,
    _SCALAR,
    (_SCALAR, "numpy.core.multiarray.scalar"),
    np.dtypes.Float64DType,
    np.dtypes.Float32DType,
    np.dtypes.Int64DType,
    np.dtypes.Int32DType,
    np.dtypes.BoolDType,
]


class NnUNetModel(nn.Module):
    """nnU-Net's per-window inference as one differentiable module, on art_seg's axes, channels and classes.

    Maps art_seg windows ``(B, C, x, y, z)`` (channels in :attr:`modalities` order, z-scored as
    ``art_seg.data`` does) to logits ``(B, K, x, y, z)``: ``K`` art_seg classes of :attr:`label_convention`
    (softmax) or one channel per region of :attr:`regions` (sigmoid). Inside: input channels reordered to the
    ``dataset.json``'s file order, axes permuted to nnU-Net's network axes (:attr:`to_nnunet`), each fold's
    network run with mirroring over :attr:`mirror_axes` and averaged as
    ``nnUNetPredictor._internal_maybe_mirror_and_predict``, the folds averaged, classes reordered, axes permuted
    back. Windows are the patch size (the segmenter's nnU-Net sliding window pads a smaller volume as nnU-Net
    does).

    Args:
        networks: one network per fold (same architecture), returning logits ``(B, K, *spatial)`` in nnU-Net's
            axes and label order; deep supervision off.
        transpose_forward: the plans' ``transpose_forward`` (network axis ``d`` is reader axis
            ``transpose_forward[d]``; reader axes are ``(z, y, x)``).
        patch_size: the configuration's patch size, in network axes.
        mirror_axes: network spatial axes to mirror over (nnU-Net's ``inference_allowed_mirroring_axes``), or
            ``()`` for no mirroring.
        channel_order: for each network input channel (file order), the art_seg input channel that holds it.
        class_order: for each art_seg class, the network output channel (its nnU-Net label value); ``None`` to
            keep the channels (region models).
        spacing: the configuration's target spacing, in network axes (mm).
        modalities: art_seg names of the input channels, in art_seg's order.
        label_convention: the label convention of the output classes (a name or a ``LabelConvention``).
        regions: the region spec of a region model, else ``None``.
    """

    def __init__(
        self,
        networks: Sequence[nn.Module],
        *,
        transpose_forward: Sequence[int],
        patch_size: Sequence[int],
        mirror_axes: Sequence[int],
        channel_order: Sequence[int],
        class_order: Sequence[int] | None,
        spacing: Sequence[float],
        modalities: Sequence[str],
        label_convention: Any,
        regions: RegionSpec | None,
    ) -> None:
        super().__init__()
        if not networks:
            raise ValueError("networks must hold at least one network (one per fold)")
        if sorted(transpose_forward) != [0, 1, 2]:
            raise ValueError(f"transpose_forward must be a permutation of (0, 1, 2), got {tuple(transpose_forward)}")
        self.networks = nn.ModuleList(networks)
        tf = tuple(int(a) for a in transpose_forward)
        #: ``x_art.permute(to_nnunet)`` is the input in nnU-Net's network axes.
        self.to_nnunet = (0, 1, *(2 + (2 - a) for a in tf))
        #: ``logits_nnunet.permute(to_art)`` is the output in art_seg's axes.
        self.to_art = tuple(int(i) for i in np.argsort(self.to_nnunet))
        self.patch_size = tuple(int(p) for p in patch_size)
        self.mirror_axes = tuple(int(a) for a in mirror_axes)
        self.channel_order = tuple(int(c) for c in channel_order)
        self.class_order = None if class_order is None else tuple(int(c) for c in class_order)
        #: the target spacing in art_seg's axes ``(x, y, z)``, mm.
        self.spacing = tuple(float(spacing[self.to_nnunet.index(2 + a) - 2]) for a in range(3))
        #: the patch size in art_seg's axes ``(x, y, z)``.
        self.roi_size = tuple(self.patch_size[self.to_nnunet.index(2 + a) - 2] for a in range(3))
        self.modalities = tuple(modalities)
        self.label_convention = label_convention
        self.regions = regions
        #: ``load_subject`` options that give nnU-Net's crop (the non-zero bounding box, no padding).
        self.subject_loading = {"margin": 0, "multiple": 1}
        combos = [c for k in range(len(self.mirror_axes)) for c in itertools.combinations(self.mirror_axes, k + 1)]
        self._flips = [tuple(2 + a for a in axes) for axes in combos]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, K, x, y, z)`` of art_seg windows ``(B, C, x, y, z)``."""
        if x.ndim != 5 or x.shape[1] != len(self.channel_order):
            raise ValueError(
                f"x must be (B, {len(self.channel_order)}, x, y, z) with channels {self.modalities}, "
                f"got shape {tuple(x.shape)}"
            )
        if self.channel_order != tuple(range(len(self.channel_order))):
            x = x[:, list(self.channel_order)]
        x = x.permute(self.to_nnunet)
        logits = None
        for network in self.networks:
            fold = self._mirrored(network, x)
            logits = fold if logits is None else logits + fold
        if len(self.networks) > 1:
            logits = logits / len(self.networks)
        if self.class_order is not None:
            logits = logits[:, list(self.class_order)]
        return logits.permute(self.to_art)

    def _mirrored(self, network: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """``nnUNetPredictor._internal_maybe_mirror_and_predict``, out of place (autograd)."""
        prediction = network(x)
        for dims in self._flips:
            prediction = prediction + torch.flip(network(torch.flip(x, dims)), dims)
        if self._flips:
            prediction = prediction / (len(self._flips) + 1)
        return prediction

    def check_spacing(self, spacing: Sequence[float], shape: Sequence[int]) -> None:
        """Refuse data that nnU-Net would resample before predicting.

        nnU-Net resamples the cropped image to ``round(spacing / target * shape)`` voxels per axis; where that is
        ``shape`` on every axis it leaves the image as it is, and so does art_seg.

        Args:
            spacing: the data's voxel size ``(x, y, z)`` in mm (nibabel's ``header.get_zooms()[:3]``).
            shape: the cropped image's spatial shape ``(x, y, z)``.

        Raises:
            ValueError: nnU-Net would resample (the message gives both spacings and the shape it would resample
                to); resample the data to :attr:`spacing` first.
        """
        spacing = tuple(float(s) for s in spacing)
        shape = tuple(int(s) for s in shape)
        if len(spacing) != 3 or len(shape) != 3 or min(spacing) <= 0:
            raise ValueError(f"spacing and shape must be 3 positive numbers (x, y, z), got {spacing} and {shape}")
        resampled = tuple(int(round(s / t * n)) for s, t, n in zip(spacing, self.spacing, shape))
        if resampled != shape:
            raise ValueError(
                f"the data's voxel spacing {spacing} mm (x, y, z) differs from the spacing this nnU-Net model was "
                f"trained at, {self.spacing} mm: nnU-Net would resample the {shape} image to {resampled} voxels "
                "before predicting and back after; art_seg does not resample: resample the scans to "
                f"{self.spacing} mm first"
            )


# ---------------------------------------------------------------------------------------------- loading
def load_nnunet(
    folder: str | os.PathLike,
    folds: int | str | Iterable[int | str] = (0,),
    checkpoint: str = "checkpoint_final.pth",
    mirroring: bool | None = None,
    device: str | None = None,
) -> PyTorchSegmenter:
    """Load an nnU-Net v2 trained-model folder as a segmenter whose ``predict`` is ``nnUNetPredictor``'s.

    The segmenter takes art_seg's input: ``(N, C, x, y, z)`` float32, channels in ``model.modalities`` order,
    cropped to the non-zero bounding box and z-scored over the non-zero voxels, as ``art_seg.data`` loads it with
    ``model.subject_loading`` (``margin=0, multiple=1``), at the plans' spacing (``model.check_spacing``). Other
    crops and paddings run too but are not nnU-Net's prediction: its windows then lie elsewhere, and the margin,
    which nnU-Net never predicts (background outside the box), gets the network's prediction (measured on
    random-weight models with art_seg's default ``margin=4, multiple=16``: 43 to 77 % of the voxels of the
    original grid agree, against 100 % with ``subject_loading``). It returns logits of art_seg classes
    (softmax) or of the dataset's regions (sigmoid, ``regions=`` a :class:`~art_seg.data.RegionSpec` in art_seg
    classes), with nnU-Net's window placement, Gaussian, mirroring and fold averaging (module docstring).
    Predictions, losses and input gradients are those of this function (float32 throughout).

    Args:
        folder: the trained-model folder (``plans.json``, ``dataset.json``, ``fold_X/``).
        folds: fold numbers and/or ``"all"`` (``fold_all``); several are averaged as logits.
        checkpoint: the checkpoint file name in each fold folder.
        mirroring: ``None``: as ``nnUNetPredictor`` (on, over the checkpoint's
            ``inference_allowed_mirroring_axes``; none if it names none); ``True``: on (over every spatial axis
            where the checkpoint names none); ``False``: off.
        device: ``None`` or ``"gpu"`` (CUDA when available, else the CPU) or ``"cpu"``.

    Returns:
        A :class:`~art_seg.estimators.PyTorchSegmenter` with ``model`` an :class:`NnUNetModel`, loss ``"dice_ce"``
        (nnU-Net's training loss family), no ``clip_values``, ``sliding_window`` nnU-Net's.

    Raises:
        FileNotFoundError: the folder, ``plans.json``, ``dataset.json`` or a fold's checkpoint is missing (naming
            the folds there are).
        ValueError: bad arguments; a checkpoint that ``torch.load(weights_only=True)`` refuses (art_seg never
            unpickles arbitrary objects); folds trained with different trainers or configurations; anything the
            module docstring lists as refused.
        ImportError: ``nnunetv2`` is not installed.
    """
    folder = _check_folder(folder)
    fold_names = _check_folds(folds)
    check_type("checkpoint", checkpoint, str)
    if mirroring is not None:
        check_type("mirroring", mirroring, bool)
    if device not in (None, "cpu", "gpu"):
        raise ValueError(f"device must be None, 'cpu' or 'gpu', got {device!r}")
    try:
        from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
    except ImportError as error:
        raise ImportError(f"load_nnunet needs nnunetv2: pip install art-seg[nnunet] ({error})") from error

    plans = _read_json(folder / "plans.json")
    dataset_json = _read_json(folder / "dataset.json")
    description = read_dataset_json(folder / "dataset.json")
    checkpoints = [_load_checkpoint(folder, fold, checkpoint) for fold in fold_names]
    trainer_name, configuration_name, allowed_axes = _training_settings(checkpoints, fold_names, folder)
    plans_manager = PlansManager(plans)
    if configuration_name not in plans_manager.available_configurations:
        raise ValueError(f"{folder}: the checkpoint's configuration {configuration_name!r} is not in plans.json "
                         f"({plans_manager.available_configurations})")  # fmt: skip
    configuration = plans_manager.get_configuration(configuration_name)
    label_manager = plans_manager.get_label_manager(dataset_json)
    _check_supported(folder, plans_manager, configuration, configuration_name)

    network = _build_network(trainer_name, plans_manager, configuration, dataset_json, label_manager)
    networks = []
    for fold, content in zip(fold_names, checkpoints):
        fold_network = copy.deepcopy(network) if networks else network
        try:
            fold_network.load_state_dict(content["network_weights"])
        except (RuntimeError, KeyError) as error:
            where = folder / f"fold_{fold}" / checkpoint
            raise ValueError(f"{where}: the weights do not fit the plans' network: {error}") from None
        networks.append(fold_network)
    regions, class_order, nb_outputs = _outputs(description, label_manager, folder)
    selected = description.select_channels()  # ((art_seg modality, file channel), ...) in art_seg's order
    model = NnUNetModel(
        networks,
        transpose_forward=plans_manager.transpose_forward,
        patch_size=configuration.patch_size,
        mirror_axes=_mirror_axes(mirroring, allowed_axes),
        channel_order=[k for _, k in sorted((f, k) for k, (_, f) in enumerate(selected))],
        class_order=class_order,
        spacing=configuration.spacing,
        modalities=[m for m, _ in selected],
        label_convention=description.label_convention,
        regions=regions,
    )
    window = SlidingWindow(
        roi_size=model.roi_size, overlap=1.0 - TILE_STEP_SIZE, mode="nnunet", placement="nnunet", windows_per_batch=1
    )
    return PyTorchSegmenter(
        model,
        "dice_ce",
        input_shape=(len(selected), *model.roi_size),
        nb_classes=nb_outputs,
        activation="sigmoid" if regions is not None else "softmax",
        regions=regions,
        sliding_window=window,
        device_type=device or "gpu",
        preprocessing=None,
        deep_supervision=None,
    )


def _mirror_axes(mirroring: bool | None, allowed: Any) -> tuple[int, ...]:
    """The axes to mirror over: the checkpoint's ``inference_allowed_mirroring_axes`` unless ``mirroring`` is
    ``False``; every axis where the checkpoint names none and ``mirroring`` is ``True``."""
    if mirroring is False:
        return ()
    if allowed is None:
        return (0, 1, 2) if mirroring else ()
    return tuple(int(a) for a in allowed)


def _check_folder(folder: object) -> Path:
    check_type("folder", folder, (str, os.PathLike))
    path = Path(folder)
    if not path.is_dir():
        raise FileNotFoundError(f"folder {str(folder)!r} is not a folder (an nnU-Net trained-model folder holds "
                                "plans.json, dataset.json and fold_X/checkpoint_final.pth)")  # fmt: skip
    return path


def _check_folds(folds: object) -> list[str]:
    """Fold folder suffixes (``"0"``, ``"all"``) from an int, ``"all"`` or a sequence of them."""
    items = [folds] if isinstance(folds, (int, str)) else folds
    if isinstance(items, bool) or not isinstance(items, Iterable):
        raise TypeError(f"folds must be an int, 'all' or a sequence of them, got {folds!r}")
    names = []
    for fold in items:
        if isinstance(fold, (int, np.integer)) and not isinstance(fold, bool) and fold >= 0:
            names.append(str(int(fold)))
        elif fold == "all":
            names.append("all")
        else:
            raise ValueError(f"folds must hold fold numbers >= 0 or 'all', got {folds!r}")
    if not names or len(set(names)) != len(names):
        raise ValueError(f"folds must name at least one fold, each once, got {folds!r}")
    return names


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: not found (an nnU-Net trained-model folder holds plans.json and dataset.json)"
        )
    return read_json_object(path)


def _load_checkpoint(folder: Path, fold: str, name: str) -> dict:
    """A fold's checkpoint through ``torch.load(weights_only=True)``, numpy scalars (the training log) allowed."""
    path = folder / f"fold_{fold}" / name
    if not path.is_file():
        there = sorted(p.parent.name for p in folder.glob(f"fold_*/{name}"))
        raise FileNotFoundError(f"{path}: not found; folds with {name}: {there or 'none'}")
    try:
        with torch.serialization.safe_globals(_NUMPY_SAFE_GLOBALS):
            content = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        reason = str(error).strip().splitlines()[-1]
        raise ValueError(
            f"{path}: torch.load(weights_only=True) refuses this checkpoint ({reason}); art_seg does not unpickle "
            "arbitrary objects. Re-save it with only tensors, numbers, strings and lists (e.g. keep "
            "'network_weights', 'init_args', 'trainer_name', 'inference_allowed_mirroring_axes')"
        ) from None
    except (OSError, RuntimeError, EOFError) as error:
        raise ValueError(f"{path}: cannot read the checkpoint ({type(error).__name__}: {error})") from None
    keys = content if isinstance(content, dict) else {}
    missing = [k for k in ("network_weights", "trainer_name", "init_args") if k not in keys]
    if missing:
        raise ValueError(f"{path}: not an nnU-Net checkpoint (missing {missing})")
    return content


def _training_settings(checkpoints: list[dict], folds: list[str], folder: Path) -> tuple[str, str, Any]:
    """The trainer name, configuration and mirroring axes the folds share."""
    settings = []
    for content in checkpoints:
        init_args = content["init_args"]
        configuration = init_args.get("configuration") if isinstance(init_args, dict) else None
        settings.append((content["trainer_name"], configuration))
    if any(s != settings[0] for s in settings):
        described = ", ".join(f"fold_{f}: {t} {c}" for f, (t, c) in zip(folds, settings))
        raise ValueError(f"{folder}: the folds were trained differently ({described}); load them separately")
    if not isinstance(settings[0][1], str):
        raise ValueError(f"{folder}/fold_{folds[0]}: the checkpoint's init_args name no configuration")
    return settings[0][0], settings[0][1], checkpoints[0].get("inference_allowed_mirroring_axes")


def _check_supported(folder: Path, plans_manager: Any, configuration: Any, name: str) -> None:
    if len(configuration.patch_size) != 3:
        raise ValueError(f"{folder}: configuration {name!r} is 2D; art_seg runs nnU-Net's 3D configurations only")
    if configuration.previous_stage_name is not None:
        raise ValueError(
            f"{folder}: configuration {name!r} is a cascade stage (it needs the segmentation of "
            f"{configuration.previous_stage_name!r}); art_seg runs single-stage configurations"
        )
    reader = plans_manager.plans.get("image_reader_writer", "SimpleITKIO")
    if reader not in READERS:
        raise ValueError(f"{folder}: plans.json reads images with {reader}; art_seg takes arrays on the file's grid "
                         f"as {READERS} do (no reorientation)")  # fmt: skip
    schemes = zip(configuration.normalization_schemes, configuration.use_mask_for_norm)
    for channel, (scheme, masked) in enumerate(schemes):
        if scheme != "ZScoreNormalization" or not masked:
            raise ValueError(
                f"{folder}: channel {channel} is normalised with {scheme} (use_mask_for_norm={masked}); art_seg's "
                "data gives z-scores over the non-zero voxels, nnU-Net's ZScoreNormalization with "
                "use_mask_for_norm=True, and nothing else"
            )


def _build_network(
    trainer_name: str, plans_manager: Any, configuration: Any, dataset_json: dict, label_manager: Any
) -> nn.Module:
    """The network as ``nnUNetPredictor.initialize_from_trained_model_folder`` builds it (deep supervision off).

    ``nnUNetTrainer.build_network_architecture`` is nnU-Net's ``get_network_from_plans``, called here directly for
    that trainer (importing the trainer module takes seconds: it pulls in ``torch._dynamo``); any other trainer is
    found by nnU-Net's ``recursive_find_trainer_class_by_name`` and builds its own network.
    """
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels

    inputs = determine_num_input_channels(plans_manager, configuration, dataset_json)
    outputs = label_manager.num_segmentation_heads
    if trainer_name == "nnUNetTrainer":
        return get_network_from_plans(
            configuration.network_arch_class_name,
            configuration.network_arch_init_kwargs,
            configuration.network_arch_init_kwargs_req_import,
            inputs,
            outputs,
            allow_init=False,  # the weights are loaded next
            deep_supervision=False,
        )
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    try:
        trainer = recursive_find_trainer_class_by_name(trainer_name)
    except (ImportError, RuntimeError, AssertionError) as error:
        warnings.warn(
            f"nnU-Net trainer {trainer_name!r} could not be imported ({type(error).__name__}: {error}); the "
            "network is built by nnUNetTrainer.build_network_architecture, right for every trainer that does "
            "not override it",
            stacklevel=3,
        )
        trainer = nnUNetTrainer
    if "plans_manager" in inspect.signature(trainer.build_network_architecture).parameters:
        return trainer.build_network_architecture(
            plans_manager, configuration, inputs, outputs, enable_deep_supervision=False
        )
    return trainer.build_network_architecture(
        configuration.network_arch_class_name,
        configuration.network_arch_init_kwargs,
        configuration.network_arch_init_kwargs_req_import,
        inputs,
        outputs,
        enable_deep_supervision=False,
    )


def _outputs(
    description: DatasetDescription, label_manager: Any, folder: Path
) -> tuple[RegionSpec | None, tuple[int, ...] | None, int]:
    """``(regions, class_order, nb_outputs)``: the region spec in art_seg classes (region models), or the network
    channel of each art_seg class (label models)."""
    values = get_convention(description.label_convention).values  # the nnU-Net label value of each art_seg class
    if not label_manager.has_regions:
        if sorted(values) != list(range(label_manager.num_segmentation_heads)):
            raise ValueError(f"{folder}: label values {sorted(values)} are not the network's "
                             f"{label_manager.num_segmentation_heads} output channels")  # fmt: skip
        return None, values, len(values)
    names = tuple(name for name, _ in description.labels if name != "background")  # the label manager's order
    regions = [r if isinstance(r, tuple) else (r,) for r in label_manager.foreground_regions]
    classes = tuple(tuple(sorted(values.index(v) for v in region)) for region in regions)
    spec = RegionSpec(names, classes, tuple(values.index(v) for v in label_manager.regions_class_order))
    key = (spec.classes, spec.class_order, spec.paint_order)
    same = [p for p in REGION_PRESETS.values() if (p.classes, p.class_order, p.paint_order) == key]
    return (same[0] if same else spec), None, spec.nb_regions
