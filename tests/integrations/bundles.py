"""Builder of tiny MONAI bundle folders in MONAI's own layout, for the integration and CLI tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

#: The BraTS bundle's input channel order (brats_mri_segmentation's metadata): T1c, T1, T2, FLAIR.
BUNDLE_CHANNELS = ("T1c", "T1", "T2", "FLAIR")
#: art_seg's input (t1, t1ce, t2, flair) reordered into the bundle's channel order.
TO_BUNDLE = [1, 0, 2, 3]


def inference_config(**changes: Any) -> dict:
    """A BraTS-style inference config: a tiny SegResNet, a sliding window, sigmoid postprocessing."""
    config = {
        "imports": ["$import torch"],
        "bundle_root": ".",
        "device": "$torch.device('cpu')",
        "network_def": {
            "_target_": "SegResNet",
            "blocks_down": [1, 1],
            "blocks_up": [1],
            "init_filters": 8,
            "in_channels": 4,
            "out_channels": 3,
            "dropout_prob": 0.2,
        },
        "network": "$@network_def.to(@device)",
        "preprocessing": {
            "_target_": "Compose",
            "transforms": [{"_target_": "NormalizeIntensityd", "keys": "image", "nonzero": True, "channel_wise": True}],
        },
        "inferer": {"_target_": "SlidingWindowInferer", "roi_size": [16, 16, 16], "sw_batch_size": 2, "overlap": 0.5,
                    "mode": "gaussian"},
        "postprocessing": {
            "_target_": "Compose",
            "transforms": [
                {"_target_": "Activationsd", "keys": "pred", "sigmoid": True},
                {"_target_": "AsDiscreted", "keys": "pred", "threshold": 0.5},
            ],
        },
    }  # fmt: skip
    config.update(changes)
    return config


def metadata(outputs: tuple[str, ...] = ("Tumor core", "Whole tumor", "Enhancing tumor")) -> dict:
    def fmt(names: tuple[str, ...], kind: str) -> dict:
        return {"type": "image", "format": kind, "num_channels": len(names), "spatial_shape": ["2*n"] * 3,
                "dtype": "float32", "channel_def": {str(i): n for i, n in enumerate(names)}}  # fmt: skip

    return {
        "version": "0.1.0",
        "network_data_format": {
            "inputs": {"image": fmt(BUNDLE_CHANNELS, "magnitude")},
            "outputs": {"pred": fmt(outputs, "segmentation")},
        },
    }


def write_bundle(folder: Path, config: dict | None = None, meta: dict | None = None, seed: int = 0) -> Path:
    """Write ``configs/inference.json``, ``configs/metadata.json`` and ``models/model.pt`` (the network's random
    weights, seeded, as a plain state_dict) under ``folder``."""
    from monai.bundle import ConfigParser

    config = inference_config() if config is None else config
    (folder / "configs").mkdir(parents=True, exist_ok=True)
    (folder / "models").mkdir(exist_ok=True)
    (folder / "configs" / "inference.json").write_text(json.dumps(config, indent=1))
    (folder / "configs" / "metadata.json").write_text(json.dumps(metadata() if meta is None else meta, indent=1))
    torch.manual_seed(seed)
    network = ConfigParser(config).get_parsed_content("network_def")
    torch.save(network.state_dict(), folder / "models" / "model.pt")
    return folder
