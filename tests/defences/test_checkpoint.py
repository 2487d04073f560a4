"""Checkpoints: atomic writes, weights_only reads, architecture checks, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import art_seg.models.unet as unet
from art_seg.data import region_spec
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
    with pytest.raises(ValueError, match="holds a pickled object that is not plain data"):
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


BAD = "is malformed: "
MALFORMED = [
    # (id, change to a good segmenter checkpoint, what the message must say after "checkpoint '...bad.pt' ")
    ("no model", lambda p: p.pop("model"), BAD + "it lacks 'model'"),
    ("model a list", lambda p: p.update(model=[1.0]), BAD + "'model' must be dict, got list"),
    ("weight a list", lambda p: p["model"].update({"head.bias": [0.0]}), BAD + "'model.head.bias' must be Tensor"),
    ("no architecture", lambda p: p.pop("architecture"), BAD + "it lacks 'architecture'"),
    ("class an int", lambda p: p["architecture"].update({"class": 3}), BAD + "'architecture.class' must be str"),
    ("config a list", lambda p: p["architecture"].update(config=[4]), BAD + "'architecture.config' must be dict or"),
    ("epoch a str", lambda p: p.update(epoch="3"), BAD + "'epoch' must be int, got str"),
    ("epoch negative", lambda p: p.update(epoch=-1), BAD + "'epoch' must be >= 0, got -1"),
    ("state a list", lambda p: p.update(state=[]), BAD + "'state' must be dict, got list"),
    ("optimizer a str", lambda p: p.update(optimizer="adam"), BAD + "'optimizer' must be dict or None, got str"),
    ("no loss", lambda p: p["segmenter"].pop("loss"), BAD + "it lacks 'segmenter.loss'"),
    ("shape a str", lambda p: p["segmenter"].update(input_shape="8"), BAD + "'segmenter.input_shape' must be list"),
    ("no classes", lambda p: p["segmenter"].update(nb_classes=0), "segmenter settings: nb_classes must be >= 1"),
    ("clip of str", lambda p: p["segmenter"].update(clip_values=["a", "b"]), r"segmenter settings: clip_values"),
    ("unknown loss", lambda p: p["segmenter"].update(loss="l7"), r"segmenter settings: loss must be one of .*'l7'"),
]


@pytest.mark.parametrize(("change", "match"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_checkpoints_give_one_clear_error(tmp_path, change, match) -> None:
    # they passed the safe loader and then failed with KeyError, AttributeError or TypeError tracebacks
    path = crafted(tmp_path, "bad.pt", change)
    with pytest.raises(CheckpointError, match=r"^checkpoint '.*bad.pt' " + match) as caught:
        load_segmenter(path)
    assert "\n" not in str(caught.value)
    if "segmenter" not in match:
        with pytest.raises(CheckpointError, match=r"^checkpoint '.*bad.pt' " + match):
            load_checkpoint(path, model())


def test_no_torch_advice_to_load_with_weights_only_false(tmp_path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"format": "art_seg.checkpoint/1", "payload": Exception("not data")}, path)
    message = r"holds a pickled object that is not plain data .*exceptions.Exception"
    with pytest.raises(CheckpointError, match=message) as caught:
        read_checkpoint(path)
    message = str(caught.value)
    assert "weights_only" not in message.replace("weights_only=True", "") and "False" not in message
    assert "\n" not in message and "add_safe_globals" not in message
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(segmenter_checkpoint(tmp_path / "good.pt").read_bytes()[:300])
    with pytest.raises(CheckpointError, match=r"'.*truncated.pt' is damaged or not a torch file: [^\n]*$"):
        read_checkpoint(truncated)


def test_a_bad_optimizer_state_loads_nothing(tmp_path) -> None:
    source = model()
    path = save_checkpoint(tmp_path / "c.pt", model=source, optimizer=torch.optim.SGD(source.parameters(), lr=0.1))
    target = model(base=4)
    torch.nn.init.zeros_(target.head.weight)
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=0.1)  # another parameter layout
    with pytest.raises(CheckpointError, match=r"checkpoint '.*c.pt' optimizer state does not fit the Adam optimizer"):
        load_checkpoint(path, target, optimizer)
    assert torch.count_nonzero(target.head.weight) == 0


def test_load_segmenter_rebuilds_a_region_model_with_its_regions(tmp_path) -> None:
    model = UNet3D(2, 3, base_filters=2, depth=1)
    seg = PyTorchSegmenter(
        model, "dice_ce", input_shape=(2, 4, 4, 4), nb_classes=3, activation="sigmoid", device_type="cpu",
        regions="monai_brats", deep_supervision="nnunet",
    )  # fmt: skip
    save_checkpoint(tmp_path / "m.pt", model=model, segmenter=segmenter_settings(seg))
    loaded, _ = load_segmenter(tmp_path / "m.pt")
    assert loaded.regions == region_spec("monai_brats") and loaded.deep_supervision == "nnunet"
    x = np.random.default_rng(0).normal(size=(2, 2, 4, 4, 4)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict_labels(x), seg.predict_labels(x))
    settings = read_checkpoint(tmp_path / "m.pt")["segmenter"]
    assert settings["regions"] == {
        "names": ["TC", "WT", "ET"],
        "classes": [[1, 3], [1, 2, 3], [3]],
        "class_order": [1, 2, 3],
        "paint_order": [1, 0, 2],
    }
    # a checkpoint written before regions were stored loads as a model without them
    settings = segmenter_settings(seg)
    del settings["regions"], settings["deep_supervision"]
    save_checkpoint(tmp_path / "old.pt", model=model, segmenter=settings)
    old, _ = load_segmenter(tmp_path / "old.pt")
    assert old.regions is None and old.deep_supervision == "auto"
