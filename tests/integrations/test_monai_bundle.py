"""``load_bundle`` against the bundle run the way MONAI runs it: ``ConfigParser`` instantiates the network, the
inferer and the postprocessing from the same ``configs/inference.json``; and the errors of bad bundles."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from art_seg.integrations.monai import BundleNetwork, load_bundle
from tests.integrations.bundles import TO_BUNDLE, inference_config, metadata, write_bundle

monai_bundle = pytest.importorskip("monai.bundle")


pytestmark = pytest.mark.usefixtures("one_thread_module")  # tiny tensors: one thread is faster


def monai_run(folder, x_bundle):
    """The bundle as MONAI runs it: network, weights, inferer and postprocessing from the parsed config, one
    decollated item at a time through the postprocessing. Returns (sigmoid probabilities, thresholded masks)."""
    from monai.data import decollate_batch

    parser = monai_bundle.ConfigParser()
    parser.read_config(str(folder / "configs" / "inference.json"))
    parser["bundle_root"] = str(folder)
    network = parser.get_parsed_content("network")
    network.load_state_dict(torch.load(folder / "models" / "model.pt", weights_only=True))
    network.eval()
    inferer = parser.get_parsed_content("inferer")
    activation = parser.get_parsed_content("postprocessing#transforms#0")
    postprocessing = parser.get_parsed_content("postprocessing")
    with torch.no_grad():
        logits = inferer(x_bundle, network)
    items = decollate_batch(logits)
    probabilities = torch.stack([torch.as_tensor(activation({"pred": p})["pred"]) for p in items])
    masks = torch.stack([torch.as_tensor(postprocessing({"pred": p})["pred"]) for p in items])
    return probabilities.numpy(), masks.numpy()


@pytest.mark.parametrize("shape", [(24, 20, 16), (20, 18, 12)])  # the second shorter than the window: padded
def test_predict_equals_the_bundles_inferer_and_postprocessing(tmp_path, shape):
    folder = write_bundle(tmp_path / "bundle")
    seg = load_bundle(folder, device="cpu")
    assert isinstance(seg.model, BundleNetwork) and seg.activation == "sigmoid"
    assert seg.regions.names == ("TC", "WT", "ET") and seg.nb_classes == 3
    assert seg.model.modalities == ("t1", "t1ce", "t2", "flair") and seg.model.channel_order == (1, 0, 2, 3)
    assert seg.model.subject_loading == {"multiple": 2}
    window = seg.sliding_window
    assert (window.roi_size, window.overlap, window.mode, window.windows_per_batch, window.placement) == (
        (16, 16, 16), 0.5, "gaussian", 2, "monai_padded")  # fmt: skip
    x = np.random.default_rng(0).normal(size=(2, 4, *shape)).astype(np.float32)  # art_seg's t1, t1ce, t2, flair
    probabilities, masks = monai_run(folder, torch.from_numpy(x[:, TO_BUNDLE]))
    np.testing.assert_allclose(seg.predict(x), probabilities, rtol=0, atol=1e-5)
    labels = seg.predict_labels(x)
    # art_seg thresholds logits at > 0; MONAI's AsDiscreted(threshold=0.5) float32 probabilities at >= 0.5, which
    # also takes logits in (-6e-8, 0] (their sigmoid rounds to 0.5): measured, one voxel of 38400 here.
    tie = np.abs(probabilities - 0.5) < 1e-6
    assert labels.dtype == bool and np.array_equal(labels[~tie], masks.astype(bool)[~tie]) and tie.mean() < 1e-3
    assert 0.05 < masks.mean() < 0.95  # both sides of the threshold occur
    # the channel order matters: the bundle's channels in art_seg's order give other probabilities
    assert np.abs(seg.predict(x[:, TO_BUNDLE]) - probabilities).max() > 1e-3


def test_simple_inferer_softmax_and_checkpoint_loader_weights(tmp_path):
    config = inference_config(
        inferer={"_target_": "SimpleInferer"},
        postprocessing={"_target_": "Activations", "softmax": True},
    )
    config["network_def"]["out_channels"] = 4
    folder = write_bundle(tmp_path / "bundle", config, metadata(outputs=("background", "core", "edema", "enhancing")))
    state = torch.load(folder / "models" / "model.pt", weights_only=True)
    torch.save({"model": state}, folder / "models" / "model.pt")  # as CheckpointLoader's {"model": network}
    seg = load_bundle(str(folder), device="cpu")
    assert seg.sliding_window is None and seg.activation == "softmax" and seg.regions is None and seg.nb_classes == 4
    network = monai_bundle.ConfigParser(config).get_parsed_content("network_def")
    network.load_state_dict(state)
    network.eval()
    x = np.random.default_rng(1).normal(size=(1, 4, 8, 10, 6)).astype(np.float32)
    with torch.no_grad():
        expected = torch.softmax(network(torch.from_numpy(x[:, TO_BUNDLE])), dim=1).numpy()
    np.testing.assert_allclose(seg.predict(x), expected, rtol=0, atol=1e-5)


def test_regions_from_the_configs_and_unnamed_channels(tmp_path):
    """Output channels without region names: the BraTS preset only when a config converts BraTS labels to TC, WT,
    ET; input channels that are not BraTS series stay in their order."""
    meta = metadata(outputs=("a", "b", "c"))
    meta["network_data_format"]["inputs"]["image"]["channel_def"] = {"0": "CT", "1": "PET", "2": "x", "3": "y"}
    folder = write_bundle(tmp_path / "plain", meta=meta)
    seg = load_bundle(folder, device="cpu")
    assert seg.regions is None and seg.model.modalities is None and seg.model.channel_order == (0, 1, 2, 3)
    train = {"train": {"_target_": "ConvertToMultiChannelBasedOnBratsClassesd", "keys": "label"}}
    (folder / "configs" / "train.json").write_text(json.dumps(train))
    assert load_bundle(folder, device="cpu").regions.names == ("TC", "WT", "ET")


@pytest.mark.parametrize(
    ("damage", "error", "match"),
    [
        (lambda f: (f / "models" / "model.pt").unlink(), FileNotFoundError, r"has no models/model.pt \(a MONAI bundle"),
        (lambda f: (f / "configs" / "metadata.json").unlink(), FileNotFoundError, "has no configs/metadata.json"),
        (lambda f: (f / "configs" / "inference.json").write_text("{not json"), ValueError,
         r"inference.json: cannot read as JSON \(JSONDecodeError"),
        (lambda f: (f / "configs" / "inference.json").write_text("[1, 2]"), ValueError, "expected a JSON object"),
        (lambda f: (f / "configs" / "inference.json").write_text(json.dumps({"network_def": {}})), ValueError,
         "no 'inferer' entry"),
        (lambda f: (f / "configs" / "inference.json").write_text(json.dumps(
            inference_config(network_def={"_target_": "NoSuchNet"}))), ValueError,
         "inference.json: cannot instantiate 'network_def'"),
        (lambda f: (f / "configs" / "inference.json").write_text(json.dumps(
            inference_config(inferer={"_target_": "SliceInferer", "roi_size": [16, 16]}))), ValueError,
         "inferer SliceInferer is not supported: art_seg reproduces SimpleInferer and SlidingWindowInferer"),
        (lambda f: (f / "configs" / "inference.json").write_text(json.dumps(inference_config(inferer={
            "_target_": "SlidingWindowInferer", "roi_size": [16, 16, 16], "overlap": [0.5, 0.25, 0.5]}))),
         ValueError, r"overlap \[0.5, 0.25, 0.5\] differs between dimensions"),
        (lambda f: (f / "configs" / "inference.json").write_text(json.dumps(inference_config(inferer={
            "_target_": "SlidingWindowInferer", "roi_size": [16, 16, 16], "padding_mode": "reflect"}))),
         ValueError, "pads with reflect"),
        (lambda f: torch.save({"conv.weight": torch.zeros(1)}, f / "models" / "model.pt"), ValueError,
         r"model.pt: the weights do not fit network_def \(missing \["),
        (lambda f: (f / "models" / "model.pt").write_bytes(b"not a checkpoint"), ValueError,
         "model.pt: (cannot read the weights|torch.load)"),
        (lambda f: (f / "configs" / "metadata.json").write_text("{}"), ValueError,
         "metadata.json: no network_data_format with inputs and outputs"),
    ],
)
def test_bad_bundles_raise_naming_the_file(tmp_path, damage, error, match):
    folder = write_bundle(tmp_path / "bundle")
    damage(folder)
    with pytest.raises(error, match=match):
        load_bundle(folder, device="cpu")


def test_bad_arguments_and_missing_monai(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        load_bundle(tmp_path / "nothing")
    with pytest.raises(TypeError, match="folder must be str or PathLike"):
        load_bundle(3)
    with pytest.raises(ValueError, match="device must be None, 'cpu' or 'gpu', got 'cuda:1'"):
        load_bundle(tmp_path, device="cuda:1")
    folder = write_bundle(tmp_path / "bundle")
    monkeypatch.setitem(sys.modules, "monai.bundle", None)  # import monai.bundle now raises ImportError
    with pytest.raises(ImportError, match=r"load_bundle needs MONAI: pip install art-seg\[monai\]"):
        load_bundle(folder)
