"""Checkpoints: atomic writes, weights_only reads, architecture checks, clear errors."""

from __future__ import annotations

import pytest
import torch

import art_seg.models.unet as unet
from art_seg.defences import (
    CheckpointError,
    load_checkpoint,
    load_segmenter,
    read_checkpoint,
    save_checkpoint,
    segmenter_settings,
)
from art_seg.estimators import PyTorchSegmenter
from art_seg.models import UNet2D, UNet3D


def model(base: int = 4) -> UNet3D:
    torch.manual_seed(0)
    return UNet3D(2, 3, base_filters=base, depth=1)


def test_round_trip_restores_model_optimizer_and_state(tmp_path) -> None:
    source = model()
    optimizer = torch.optim.Adam(source.parameters(), lr=1e-3)
    source(torch.randn(1, 2, 4, 4, 4)).sum().backward()
    optimizer.step()
    path = save_checkpoint(
        tmp_path / "sub" / "c.pt", model=source, optimizer=optimizer, epoch=7, config={"seed": 3}, state={"a": [1]}
    )
    target = UNet3D(2, 3, base_filters=4, depth=1)
    target_optimizer = torch.optim.Adam(target.parameters(), lr=1e-3)
    payload = load_checkpoint(path, target, target_optimizer)
    assert payload["epoch"] == 7 and payload["config"] == {"seed": 3} and payload["state"] == {"a": [1]}
    assert all(torch.equal(a, b) for a, b in zip(source.state_dict().values(), target.state_dict().values()))
    assert target_optimizer.state_dict()["state"][0]["step"] == optimizer.state_dict()["state"][0]["step"]
    assert [p.name for p in tmp_path.joinpath("sub").iterdir()] == ["c.pt"]  # no temporary file left


def test_failed_write_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch) -> None:
    path = save_checkpoint(tmp_path / "c.pt", model=model(), epoch=1)
    before = path.read_bytes()

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model=model(), epoch=2)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_reads_with_weights_only(tmp_path) -> None:
    # A pickled object that is not plain data would run code under weights_only=False: it must be refused.
    path = tmp_path / "evil.pt"
    torch.save({"format": "art_seg.checkpoint/1", "payload": Exception("not data")}, path)
    with pytest.raises(ValueError, match="is damaged or not a torch file"):
        read_checkpoint(path)


def test_bad_checkpoints_raise_clear_errors(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"checkpoint '.*missing.pt' does not exist"):
        load_checkpoint(tmp_path / "missing.pt", model())
    path = save_checkpoint(tmp_path / "c.pt", model=model(), epoch=1)
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"checkpoint '.*damaged.pt' is damaged"):
        load_checkpoint(damaged, model())
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(ValueError, match="is not an art_seg checkpoint"):
        load_checkpoint(foreign, model())
    with pytest.raises(ValueError, match=r"another architecture: config .*'base_filters': 4.*'base_filters': 8"):
        load_checkpoint(path, model(base=8))
    with pytest.raises(ValueError, match="another architecture: class 'UNet3D' != model's 'UNet2D'"):
        load_checkpoint(path, UNet2D(2, 3, base_filters=4, depth=1))
    with pytest.raises(ValueError, match="holds no optimizer state"):
        target = model()
        load_checkpoint(path, target, torch.optim.SGD(target.parameters(), lr=0.1))
    plain = torch.nn.Conv3d(2, 3, 1)
    other = save_checkpoint(tmp_path / "plain.pt", model=plain)
    with pytest.raises(ValueError, match=r"shape mismatches \['weight \(3, 2, 1, 1, 1\) != \(4, 2, 1, 1, 1\)'"):
        load_checkpoint(other, torch.nn.Conv3d(2, 4, 1))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_naming_the_file_and_the_parameter(tmp_path, bad) -> None:
    source = model()
    with torch.no_grad():
        source.decoders[0][0].weight[1, 0, 0, 0, 0] = bad
    path = save_checkpoint(tmp_path / "diverged.pt", model=source, epoch=3)
    message = r"checkpoint '.*diverged.pt' parameter 'decoders.0.0.weight' must be finite, got 1 NaN/Inf value"
    with pytest.raises(CheckpointError, match=message):
        read_checkpoint(path)
    target = model()
    before = [p.detach().clone() for p in target.parameters()]
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path, target)
    assert all(torch.equal(a, b) for a, b in zip(before, target.parameters()))  # nothing loaded


def segmenter_checkpoint(path, net: torch.nn.Module | None = None):
    """A checkpoint ``load_segmenter`` can rebuild (a tiny UNet3D by default) at ``path``."""
    net = model() if net is None else net
    seg = PyTorchSegmenter(net, "dice_ce", input_shape=(2, 8, 8, 8), nb_classes=3, device_type="cpu")
    return save_checkpoint(path, model=net, epoch=1, segmenter=segmenter_settings(seg))


def crafted(tmp_path, name: str, change) -> str:
    """A copy of a good segmenter checkpoint with ``change(payload)`` applied, written with plain torch.save."""
    payload = read_checkpoint(segmenter_checkpoint(tmp_path / "good.pt"))
    change(payload)
    torch.save(payload, tmp_path / name)
    return tmp_path / name


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"depth": 40}, r"architecture config: depth must be <= 10, got 40"),
        ({"base_filters": 600, "depth": 3}, r"architecture config: .*base_filters=600, depth=3 describe a network"),
        # within the bounds, but far more parameters than the file's weights: refused before building it
        ({"base_filters": 600}, r"architecture config describes a UNet3D of 103,004,403 parameters but holds"),
        ({"nb_classes": "3"}, r"architecture config: nb_classes must be an integer, got '3'"),
        ({"layers": 3}, r"architecture config: config has unknown key\(s\) \['layers'\]"),
    ],
)
def test_load_segmenter_checks_the_config_before_building(tmp_path, monkeypatch, change, match) -> None:
    # a checkpoint config with depth 40 or base_filters 600 built a multi-GB network before any check
    path = crafted(tmp_path, "bomb.pt", lambda payload: payload["architecture"]["config"].update(change))

    def no_layers(*args, **kwargs):
        raise AssertionError("a layer was built")

    monkeypatch.setattr(unet, "_DoubleConv", no_layers)
    with pytest.raises(CheckpointError, match=r"checkpoint '.*bomb.pt' " + match):
        load_segmenter(path)
