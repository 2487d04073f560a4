"""Tiny nnU-Net v2 trained-model folders in nnU-Net's own formats (``plans.json`` as ``nnUNetv2_plan_experiment``
writes it, ``dataset.json``, ``fold_X/checkpoint_final.pth`` as ``nnUNetTrainer.save_checkpoint`` writes it, numpy
scalars in the training log included), with random weights from nnU-Net's own network builder and initialisation;
and nnU-Net's own predictor on them, made to accumulate in float32.

``nnUNetPredictor._internal_predict_sliding_window_return_logits`` allocates the stitched logits and weight sums as
``torch.half`` and ``compute_gaussian`` defaults to ``dtype=torch.float16``: :func:`nnunet_predictor` patches both
names in ``nnunetv2.inference.predict_from_raw_data`` while its context is open (``torch.half`` -> float32 through a
proxy of the module's ``torch``; ``compute_gaussian`` with ``dtype=torch.float32``).
"""

from __future__ import annotations

import functools
import io
import json
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

#: nnU-Net's BraTS conversion (Dataset137_BraTS2021): region-based, 1 edema, 2 necrosis, 3 enhancing.
BRATS_REGIONS = {
    "channel_names": {"0": "T1", "1": "T1ce", "2": "T2", "3": "Flair"},
    "labels": {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing tumor": [3]},
    "regions_class_order": [1, 2, 3],
}
#: MSD Task01 (Dataset001_BrainTumour): label-based, channels FLAIR, T1w, t1gd, T2w, 1 edema, 2 non-enhancing, 3 enh.
MSD_LABELS = {
    "channel_names": {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"},
    "labels": {"background": 0, "edema": 1, "non-enhancing tumor": 2, "enhancing tumour": 3},
}


def _architecture(features: tuple[int, ...]) -> dict:
    n = len(features)
    return {
        "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
        "arch_kwargs": {
            "n_stages": n,
            "features_per_stage": list(features),
            "conv_op": "torch.nn.modules.conv.Conv3d",
            "kernel_sizes": [[3, 3, 3]] * n,
            "strides": [[1, 1, 1]] + [[2, 2, 2]] * (n - 1),
            "n_conv_per_stage": [1] * n,
            "n_conv_per_stage_decoder": [1] * (n - 1),
            "conv_bias": True,
            "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
            "norm_op_kwargs": {"eps": 1e-05, "affine": True},
            "dropout_op": None,
            "dropout_op_kwargs": None,
            "nonlin": "torch.nn.LeakyReLU",
            "nonlin_kwargs": {"inplace": True},
        },
        "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
    }


def plans(
    patch: tuple[int, int, int],
    transpose_forward: tuple[int, int, int] = (0, 1, 2),
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0),
    features: tuple[int, ...] = (4, 8, 16),
    nb_channels: int = 4,
) -> dict:
    """A ``plans.json`` with one ``3d_fullres`` configuration (``patch`` and ``spacing`` in network axes)."""
    intensity = {"max": 5.0, "mean": 0.0, "median": 0.0, "min": -5.0, "percentile_00_5": -3.0,
                 "percentile_99_5": 3.0, "std": 1.0}  # fmt: skip
    backward = [int(i) for i in np.argsort(transpose_forward)]
    return {
        "dataset_name": "Dataset999_Tiny",
        "plans_name": "nnUNetPlans",
        "original_median_spacing_after_transp": list(spacing),
        "original_median_shape_after_transp": [40, 40, 40],
        "image_reader_writer": "SimpleITKIO",
        "transpose_forward": list(transpose_forward),
        "transpose_backward": backward,
        "configurations": {
            "3d_fullres": {
                "data_identifier": "nnUNetPlans_3d_fullres",
                "preprocessor_name": "DefaultPreprocessor",
                "batch_size": 2,
                "patch_size": list(patch),
                "median_image_size_in_voxels": [40, 40, 40],
                "spacing": list(spacing),
                "normalization_schemes": ["ZScoreNormalization"] * nb_channels,
                "use_mask_for_norm": [True] * nb_channels,
                "resampling_fn_data": "resample_data_or_seg_to_shape",
                "resampling_fn_seg": "resample_data_or_seg_to_shape",
                "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
                "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None},
                "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
                "resampling_fn_probabilities_kwargs": {
                    "is_seg": False, "order": 1, "order_z": 0, "force_separate_z": None
                },
                "architecture": _architecture(features),
                "batch_dice": False,
            }
        },
        "experiment_planner_used": "ExperimentPlanner",
        "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {str(c): intensity for c in range(nb_channels)},
    }


def make_nnunet_folder(
    root: Path,
    dataset: dict,
    *,
    patch: tuple[int, int, int] = (16, 16, 16),
    transpose_forward: tuple[int, int, int] = (0, 1, 2),
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0),
    folds: tuple[int | str, ...] = (0, 1),
    mirror_axes: tuple[int, ...] | None = (0, 1, 2),
    seed: int = 0,
) -> Path:
    """An nnU-Net results folder ``root/nnUNetTrainer__nnUNetPlans__3d_fullres`` with one random-weight
    checkpoint per fold (nnU-Net's He initialisation, seeded ``seed + fold``)."""
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    folder = Path(root) / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    folder.mkdir(parents=True)
    plan = plans(patch, transpose_forward, spacing, nb_channels=len(dataset["channel_names"]))
    dataset_json = {**dataset, "numTraining": 2, "file_ending": ".nii.gz", "name": "Dataset999_Tiny"}
    (folder / "plans.json").write_text(json.dumps(plan, indent=2))
    (folder / "dataset.json").write_text(json.dumps(dataset_json, indent=2))
    (folder / "dataset_fingerprint.json").write_text(json.dumps({"spacings": [list(spacing)] * 2}))
    manager = PlansManager(plan)
    configuration = manager.get_configuration("3d_fullres")
    heads = manager.get_label_manager(dataset_json).num_segmentation_heads
    for k, fold in enumerate(folds):
        torch.manual_seed(seed + k)
        network = get_network_from_plans(
            configuration.network_arch_class_name,
            configuration.network_arch_init_kwargs,
            configuration.network_arch_init_kwargs_req_import,
            len(dataset["channel_names"]),
            heads,
            deep_supervision=True,
        )
        checkpoint = {
            "network_weights": network.state_dict(),
            "optimizer_state": {"state": {}, "param_groups": []},
            "grad_scaler_state": None,
            "logging": {"mean_fg_dice": [np.float64(0.5)], "ema_fg_dice": [np.float64(0.5)], "lrs": [0.01]},
            "_best_ema": np.float64(0.5),
            "current_epoch": 1,
            "init_args": {"plans": plan, "configuration": "3d_fullres", "fold": fold, "dataset_json": dataset_json,
                          "device": torch.device("cpu")},  # fmt: skip
            "trainer_name": "nnUNetTrainer",
            "inference_allowed_mirroring_axes": mirror_axes,
        }
        (folder / f"fold_{fold}").mkdir()
        torch.save(checkpoint, folder / f"fold_{fold}" / "checkpoint_final.pth")
    return folder


def as_saved_under_numpy1(path: Path) -> None:
    """Rewrite a checkpoint as numpy 1 pickles numpy scalars (``numpy.core.multiarray.scalar``, numpy 2's is
    ``numpy._core``), as nnU-Net checkpoints trained before numpy 2 hold them (torch.save's pickle protocol 2 names
    globals as text lines)."""
    with zipfile.ZipFile(path) as source:
        entries = {name: source.read(name) for name in source.namelist()}
    for name, data in entries.items():
        if name.endswith("/data.pkl"):
            assert b"numpy._core.multiarray\nscalar" in data
            entries[name] = data.replace(b"numpy._core.multiarray\nscalar", b"numpy.core.multiarray\nscalar")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as target:
        for name, data in entries.items():
            target.writestr(name, data)
    path.write_bytes(buffer.getvalue())


class _HalfIsFloat32:
    """``predict_from_raw_data``'s ``torch`` with ``torch.half`` meaning float32 (everything else is torch's)."""

    half = torch.float32

    def __getattr__(self, name: str):
        return getattr(torch, name)


@contextmanager
def nnunet_predictor(folder: Path, folds: tuple, mirroring: bool, float32: bool = True) -> Iterator:
    """An initialised CPU ``nnUNetPredictor`` (tile step 0.5, Gaussian on, mirroring over the checkpoint's axes
    when ``mirroring``), accumulating in float32 while the context is open unless ``float32=False`` (nnU-Net's
    default float16)."""
    from nnunetv2.inference import predict_from_raw_data as module
    from nnunetv2.inference.sliding_window_prediction import compute_gaussian

    saved = module.torch, module.compute_gaussian
    if float32:
        module.torch = _HalfIsFloat32()
        module.compute_gaussian = functools.partial(compute_gaussian.__wrapped__, dtype=torch.float32)
    else:
        module.torch, module.compute_gaussian = torch, compute_gaussian
    try:
        predictor = module.nnUNetPredictor(
            tile_step_size=0.5, use_gaussian=True, use_mirroring=mirroring, perform_everything_on_device=False,
            device=torch.device("cpu"), allow_tqdm=False,
        )  # fmt: skip
        predictor.initialize_from_trained_model_folder(str(folder), use_folds=folds)
        yield predictor
    finally:
        module.torch, module.compute_gaussian = saved
