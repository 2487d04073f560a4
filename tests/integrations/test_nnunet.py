"""``load_nnunet`` against nnU-Net's own ``nnUNetPredictor`` on tiny trained-model folders written in nnU-Net's
formats: a label-based MSD-like dataset (softmax, channels FLAIR/T1w/t1gd/T2w, identity ``transpose_forward``) and a
region-based BraTS-like one (sigmoid, ``transpose_forward`` (2, 0, 1), a volume smaller than the patch on one axis).

The reference for float tolerance is the predictor made to accumulate in float32 (``torch.half`` and
``compute_gaussian``'s float16 patched in ``nnunetv2.inference.predict_from_raw_data``, see
:func:`tests.integrations.nnunet_builders.nnunet_predictor`). The axis and label conversions are written out by
hand here (not taken from the loader), so a wrong conversion fails.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import pickle
from argparse import Namespace

import numpy as np
import pytest
import torch

pytest.importorskip("nnunetv2")

from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor  # noqa: E402
from nnunetv2.inference.sliding_window_prediction import (  # noqa: E402
    compute_gaussian,
    compute_steps_for_sliding_window,
)

from art_seg.data import REGION_PRESETS  # noqa: E402
from art_seg.data.labels import classes_to_labels  # noqa: E402
from art_seg.estimators import hard_prediction  # noqa: E402
from art_seg.integrations.nnunet import load_nnunet  # noqa: E402
from tests.integrations.nnunet_builders import (  # noqa: E402
    BRATS_REGIONS,
    MSD_LABELS,
    as_saved_under_numpy1,
    make_nnunet_folder,
    nnunet_predictor,
)

#: A dataset of its own labels (not BraTS): art_seg keeps its channel names and label values as classes.
OWN_LABELS = {
    "channel_names": {"0": "MRI_a", "1": "MRI_b"},
    "labels": {"background": 0, "left": 1, "right": 2},
}
#: nnU-Net's MSD labels 0 bg, 1 edema, 2 non-enhancing, 3 enhancing -> art_seg classes 0, 2, 1, 3.
MSD_CHANNEL_OF_CLASS = [0, 2, 1, 3]
# Per dataset: patch and transpose_forward (network axes), the preprocessed volume's shape (network axes), how a
# network-axes array (K or C first) becomes art_seg's (x, y, z), the art_seg channel order as file channels, the
# network channel of each art_seg class (softmax), and the label values art_seg's classes are written back in.
CASES = {
    # network axes (z, y, x): art_seg's is the reverse; channels t1, t1ce, t2, flair = files 1, 2, 3, 0
    "labels": dict(dataset=MSD_LABELS, patch=(16, 24, 16), transpose=(0, 1, 2), shape=(18, 28, 22),
                   to_art=(0, 3, 2, 1), channels=[1, 2, 3, 0], classes=MSD_CHANNEL_OF_CLASS, values="msd_brats"),
    # network axes (x, z, y) (reader axes 2, 0, 1); axis 0 (x) shorter than the patch: nnU-Net pads it
    "regions": dict(dataset=BRATS_REGIONS, patch=(16, 16, 24), transpose=(2, 0, 1), shape=(13, 21, 30),
                    to_art=(0, 1, 3, 2), channels=[0, 1, 2, 3], classes=None, values="msd_brats"),
    # network axes (y, x, z) (reader axes 1, 2, 0); two channels in file order, classes = label values
    "own": dict(dataset=OWN_LABELS, patch=(16, 16, 16), transpose=(1, 2, 0), shape=(20, 17, 24),
                to_art=(0, 2, 1, 3), channels=[0, 1], classes=None, values=None),
}  # fmt: skip


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: one thread is several times faster


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("nnunet")
    return {
        name: make_nnunet_folder(root / name, case["dataset"], patch=case["patch"], transpose_forward=case["transpose"])
        for name, case in CASES.items()
    }


@pytest.fixture
def predictor():
    """``make(folder, folds, mirroring, float32=True)``: :func:`nnunet_predictor`, patched until the test ends."""
    with contextlib.ExitStack() as stack:
        yield lambda *args, **kwargs: stack.enter_context(nnunet_predictor(*args, **kwargs))


def _inputs(name: str, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """A preprocessed volume in nnU-Net's network axes ``(C, *shape)`` and the same in art_seg's ``(1, C, x, y, z)``."""
    case = CASES[name]
    size = (len(case["channels"]), *case["shape"])
    x_nn = torch.from_numpy(np.random.default_rng(seed).normal(size=size).astype(np.float32))
    x_art = x_nn[case["channels"]].permute(case["to_art"]).numpy()[None]
    return x_nn, np.ascontiguousarray(x_art)


def _to_art(name: str, logits_nn: torch.Tensor) -> np.ndarray:
    """nnU-Net's logits ``(K, *network axes)`` as art_seg's ``(K, x, y, z)`` in art_seg classes."""
    out = logits_nn.float().permute(CASES[name]["to_art"])
    classes = CASES[name]["classes"]
    return (out if classes is None else out[classes]).numpy()


def _nnunet_labels(name: str, predictor: nnUNetPredictor, logits_nn: torch.Tensor) -> np.ndarray:
    """nnU-Net's own label map (its label manager: softmax argmax, or regions painted in regions_class_order) of its
    logits, in nnU-Net's label values (BraTS: 1 edema, 2 necrosis, 3 enhancing), on art_seg's axes ``(x, y, z)``."""
    labels = np.asarray(predictor.label_manager.convert_logits_to_segmentation(logits_nn.float()))
    return np.transpose(labels, [a - 1 for a in CASES[name]["to_art"][1:]])


@pytest.mark.parametrize(
    ("name", "folds", "mirroring"),
    [
        ("labels", (0,), False), ("labels", (0, 1), True), ("regions", (0,), True), ("regions", (0, 1), False),
        ("own", (0, 1), True),
    ],
)  # fmt: skip
def test_predict_equals_float32_nnunet_predictor(folders, predictor, name, folds, mirroring):
    """Logits within float tolerance and hard labels >= 99.9 % equal to nnUNetPredictor's (float32 accumulation),
    after art_seg's axes, channels and classes are converted by hand."""
    reference_predictor = predictor(folders[name], folds, mirroring)
    segmenter = load_nnunet(folders[name], folds=folds, mirroring=mirroring, device="cpu")
    x_nn, x_art = _inputs(name)
    logits_nn = reference_predictor.predict_logits_from_preprocessed_data(x_nn)
    reference = _to_art(name, logits_nn)
    logits = segmenter.predict(x_art, logits=True)[0]
    assert logits.shape == reference.shape
    np.testing.assert_allclose(logits, reference, rtol=1e-5, atol=1e-5)  # measured: up to 2e-6
    # hard labels: art_seg's, written in nnU-Net's label values, against nnU-Net's label manager on its logits
    hard = hard_prediction(torch.from_numpy(logits[None]), segmenter.activation).numpy()
    ours = segmenter.to_label_map(hard)[0]
    if CASES[name]["values"] is not None:
        ours = classes_to_labels(ours, CASES[name]["values"])
    theirs = _nnunet_labels(name, reference_predictor, logits_nn)
    assert len(np.unique(theirs)) >= 2, "degenerate case: the reference predicts one label everywhere"
    assert (ours == theirs).mean() >= 0.999


def test_loader_reads_the_folder_conventions(folders):
    """Softmax with art_seg classes for the MSD labels; nnU-Net's BraTS regions as the nnunet_brats preset; modality
    order, nnU-Net's mirroring axes from the checkpoint, the window as nnU-Net's."""
    labels = load_nnunet(folders["labels"], device="cpu")
    assert (labels.activation, labels.nb_classes, labels.regions) == ("softmax", 4, None)
    assert labels.model.label_convention == "msd_brats" and labels.model.modalities == ("t1", "t1ce", "t2", "flair")
    assert labels.model.mirror_axes == (0, 1, 2) and labels.model.subject_loading == {"margin": 0, "multiple": 1}
    window = labels.sliding_window
    assert (window.roi_size, window.overlap, window.mode, window.placement) == ((16, 24, 16), 0.5, "nnunet", "nnunet")
    regions = load_nnunet(folders["regions"], folds=(0, 1), mirroring=False, device="cpu")
    assert regions.activation == "sigmoid" and regions.regions == REGION_PRESETS["nnunet_brats"]
    assert regions.model.mirror_axes == () and len(regions.model.networks) == 2
    assert regions.sliding_window.roi_size == (16, 24, 16)  # network (x, z, y) = (16, 16, 24) in (x, y, z)
    own = load_nnunet(folders["own"], device="cpu")
    assert own.model.modalities == ("MRI_a", "MRI_b") and own.model.label_convention.values == (0, 1, 2)
    assert own.model.label_convention.class_names == ("background", "left", "right")


def test_default_half_precision_predictor_figures(folders, predictor, capsys):
    """nnU-Net's default float16 accumulation alone moves its logits away from the float32 computation that
    art_seg reproduces; the figures are printed (``pytest -s``) for the README."""
    x_nn, x_art = _inputs("labels", seed=1)
    segmenter = load_nnunet(folders["labels"], device="cpu")
    logits = segmenter.predict(x_art, logits=True)[0]
    half = _to_art("labels", predictor(folders["labels"], (0,), True, float32=False)
                   .predict_logits_from_preprocessed_data(x_nn))  # fmt: skip
    difference = float(np.abs(logits - half).max())
    agreement = float((logits.argmax(0) == half.argmax(0)).mean())
    with capsys.disabled():
        print(f"\nnnU-Net float16 predictor vs load_nnunet: max |logit difference| {difference:.3f}, "
              f"argmax agreement {100 * agreement:.2f} %")  # fmt: skip
    assert 1e-3 < difference < 1.0 and agreement > 0.98


def _reference_logits(networks, x: torch.Tensor, patch, mirror_axes) -> torch.Tensor:
    """nnUNetPredictor's sliding window in float32 with autograd: ``x (C, *spatial)`` in network axes, at least
    the patch; nnU-Net's own steps and Gaussian; mirroring per window; folds averaged after stitching."""
    gaussian = compute_gaussian.__wrapped__(tuple(patch), 1.0 / 8, 10, dtype=torch.float32, device="cpu")
    steps = compute_steps_for_sliding_window(tuple(x.shape[1:]), patch, 0.5)
    combinations = [c for k in range(len(mirror_axes)) for c in itertools.combinations(mirror_axes, k + 1)]
    flips = [tuple(2 + a for a in c) for c in combinations]
    total = 0
    for network in networks:
        logits, weights = None, torch.zeros(x.shape[1:])
        for start in itertools.product(*steps):
            region = tuple(slice(s, s + p) for s, p in zip(start, patch))
            window = x[(slice(None), *region)][None]
            prediction = network(window)
            for dims in flips:
                prediction = prediction + torch.flip(network(torch.flip(window, dims)), dims)
            prediction = prediction / (len(flips) + 1)
            if logits is None:
                logits = torch.zeros((prediction.shape[1], *x.shape[1:]))
            logits[(slice(None), *region)] += prediction[0] * gaussian
            weights[region] += gaussian
        total = total + logits / weights
    return total / len(networks)


def test_input_gradients_equal_autograd_through_float32_predictor(folders, predictor):
    """class_gradient of the loaded model (mirroring over three axes, four overlapping windows, computed window by
    window) equals autograd through a float32 re-implementation of nnUNetPredictor, itself checked against the
    float32-patched predictor. (Folds are averaged linearly; two folds are checked in the forward tests.)"""
    nn_predictor = predictor(folders["labels"], (0,), True)
    networks = []
    for parameters in nn_predictor.list_of_parameters:
        network = copy.deepcopy(nn_predictor.network).eval()
        network.load_state_dict(parameters)
        networks.append(network)
    x_nn = torch.from_numpy(np.random.default_rng(2).normal(size=(4, 16, 27, 21)).astype(np.float32))  # 4 windows
    x_art = np.ascontiguousarray(x_nn[CASES["labels"]["channels"]].permute(0, 3, 2, 1).numpy()[None])
    weights = np.random.default_rng(3).uniform(size=(1, *x_art.shape[2:])).astype(np.float32)

    leaf = x_nn.clone().requires_grad_(True)
    logits = _reference_logits(networks, leaf, (16, 24, 16), (0, 1, 2))
    expected_logits = nn_predictor.predict_logits_from_preprocessed_data(x_nn)
    np.testing.assert_allclose(logits.detach().numpy(), expected_logits.numpy(), rtol=1e-4, atol=1e-4)
    # art_seg class 1 (necrosis) is nnU-Net's channel 2: the objective sum_v w_v * logit_1(v)
    objective = (logits.permute(0, 3, 2, 1)[MSD_CHANNEL_OF_CLASS[1]] * torch.from_numpy(weights[0])).sum()
    (grad,) = torch.autograd.grad(objective, leaf)
    expected = grad[CASES["labels"]["channels"]].permute(0, 3, 2, 1).numpy()

    segmenter = load_nnunet(folders["labels"], folds=(0,), device="cpu")
    gradient = segmenter.class_gradient(x_art, label=1, voxel_weights=weights)[0, 0]
    assert np.abs(expected).max() > 0
    np.testing.assert_allclose(gradient, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())


def test_mirroring_follows_the_checkpoint(tmp_path):
    """``mirroring=None`` mirrors over the checkpoint's axes (none when it names none, as nnUNetPredictor);
    ``True`` forces every axis where it names none; ``False`` none."""
    one_axis = make_nnunet_folder(tmp_path / "a", MSD_LABELS, folds=(0,), mirror_axes=(1,))
    unnamed = make_nnunet_folder(tmp_path / "b", MSD_LABELS, folds=(0,), mirror_axes=None)
    assert load_nnunet(one_axis, device="cpu").model.mirror_axes == (1,)
    assert load_nnunet(one_axis, mirroring=True, device="cpu").model.mirror_axes == (1,)
    assert load_nnunet(one_axis, mirroring=False, device="cpu").model.mirror_axes == ()
    assert load_nnunet(unnamed, device="cpu").model.mirror_axes == ()
    assert load_nnunet(unnamed, mirroring=True, device="cpu").model.mirror_axes == (0, 1, 2)


def test_spacing_other_than_the_plans_is_refused(folders, tmp_path):
    """Where nnU-Net would resample, check_spacing refuses, naming both spacings; where it would not, it passes.
    The plans' spacing is in network axes: with transpose_forward (2, 0, 1) they are (x, z, y)."""
    anisotropic = make_nnunet_folder(tmp_path, BRATS_REGIONS, transpose_forward=(2, 0, 1), spacing=(1.0, 3.0, 2.0),
                                     folds=(0,))  # fmt: skip
    model = load_nnunet(anisotropic, device="cpu").model
    assert model.spacing == (1.0, 2.0, 3.0)
    model.check_spacing((1.0, 2.0, 3.0), (40, 30, 20))
    with pytest.raises(ValueError, match="differs from the spacing"):
        model.check_spacing((1.0, 3.0, 2.0), (40, 30, 20))
    model = load_nnunet(folders["labels"], device="cpu").model
    model.check_spacing((1.0, 1.0, 1.0), (40, 30, 20))
    model.check_spacing((1.001, 1.0, 1.0), (40, 30, 20))  # round(1.001 * 40) == 40: nnU-Net leaves it
    with pytest.raises(ValueError, match=r"spacing \(1\.0, 1\.0, 2\.0\) mm .* \(1\.0, 1\.0, 1\.0\) mm: nnU-Net would "
                                         r"resample the \(40, 30, 20\) image to \(40, 30, 40\) voxels"):  # fmt: skip
        model.check_spacing((1.0, 1.0, 2.0), (40, 30, 20))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"folds": (0, 0)}, ValueError, "each once"),
        ({"folds": (-1,)}, ValueError, r"folds must hold fold numbers >= 0 or 'all', got \(-1,\)"),
        ({"folds": 3}, FileNotFoundError, r"fold_3/checkpoint_final.pth: not found; folds with checkpoint_final.pth: "
                                          r"\['fold_0', 'fold_1'\]"),  # fmt: skip
        ({"checkpoint": "checkpoint_best.pth"}, FileNotFoundError, "folds with checkpoint_best.pth: none"),
        ({"mirroring": "yes"}, TypeError, "mirroring must be bool"),
        ({"device": "cuda:0"}, ValueError, "device must be None, 'cpu' or 'gpu', got 'cuda:0'"),
    ],
)
def test_bad_arguments(folders, kwargs, error, match):
    with pytest.raises(error, match=match):
        load_nnunet(folders["labels"], **kwargs)


def test_checkpoints_saved_under_numpy1_load_with_weights_only(tmp_path):
    """nnU-Net's training log holds numpy scalars; a checkpoint pickled under numpy 1 names them
    numpy.core.multiarray.scalar, which weights_only=True refuses unless allowed under that name."""
    folder = make_nnunet_folder(tmp_path, MSD_LABELS, folds=(0,))
    path = folder / "fold_0" / "checkpoint_final.pth"
    as_saved_under_numpy1(path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
    expected = torch.load(path, weights_only=False)["network_weights"]
    loaded = load_nnunet(folder, device="cpu").model.networks[0].state_dict()
    assert loaded.keys() == expected.keys() and all(torch.equal(loaded[k], v) for k, v in expected.items())


def test_unsupported_folders_are_refused(tmp_path):
    """Another normalisation, a checkpoint weights_only refuses, and a folder that is not one: clear errors."""
    import json

    folder = make_nnunet_folder(tmp_path / "ct", MSD_LABELS, folds=(0,))
    plans = json.loads((folder / "plans.json").read_text())
    plans["configurations"]["3d_fullres"]["normalization_schemes"][2] = "CTNormalization"
    (folder / "plans.json").write_text(json.dumps(plans))
    with pytest.raises(ValueError, match="channel 2 is normalised with CTNormalization"):
        load_nnunet(folder, device="cpu")

    folder = make_nnunet_folder(tmp_path / "pickled", MSD_LABELS, folds=(0,))
    path = folder / "fold_0" / "checkpoint_final.pth"
    checkpoint = torch.load(path, weights_only=False)
    checkpoint["logging"] = Namespace(epochs=1)  # an arbitrary object: weights_only=True must refuse it
    torch.save(checkpoint, path)
    with pytest.raises(ValueError, match=r"torch.load\(weights_only=True\) refuses this checkpoint"):
        load_nnunet(folder, device="cpu")
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        load_nnunet(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="plans.json: not found"):
        load_nnunet(tmp_path)


@pytest.mark.parametrize("name", ["labels", "regions"])
def test_art_seg_files_in_and_out_equal_nnunet_on_the_same_files(tmp_path, folders, predictor, name):
    """The whole way: BraTS NIfTI files loaded by art_seg.data as ``model.subject_loading`` says, predicted, written
    back with ``write_prediction`` and read with nibabel, equal nnU-Net's own prediction from the same files
    (SimpleITKIO, its preprocessing: crop to non-zero, z-score, transpose; its export), in the data's labels."""
    import nibabel as nib
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    from art_seg.data import load_subject, make_brats_phantom, write_prediction
    from art_seg.data.labels import labels_to_classes

    (subject,) = make_brats_phantom(tmp_path / "data", n_subjects=1, shape=(40, 36, 28), seed=3)
    segmenter = load_nnunet(folders[name], folds=(0,), mirroring=False, device="cpu")
    image, _, meta = load_subject(subject, **segmenter.model.subject_loading)
    segmenter.model.check_spacing(meta.header.get_zooms()[:3], image.shape[1:])
    classes = segmenter.to_label_map(segmenter.predict_labels(image[None]))[0]
    written = np.asarray(nib.load(write_prediction(tmp_path / "prediction.nii.gz", classes, meta)).dataobj)

    channels = [c.lower() for c in CASES[name]["dataset"]["channel_names"].values()]  # the files in nnU-Net's order
    files = [str(subject.paths[{"t1w": "t1", "t1gd": "t1ce", "t2w": "t2"}.get(c, c)]) for c in channels]
    data, properties = SimpleITKIO().read_images(files)
    segmentation = predictor(folders[name], (0,), False).predict_single_npy_array(data, properties)
    expected = classes_to_labels(labels_to_classes(segmentation.transpose(2, 1, 0), "msd_brats"), "brats2018")
    assert meta.label_convention == "brats2018" and written.shape == meta.original_shape == (40, 36, 28)
    assert len(np.unique(expected)) >= 2, "degenerate case: nnU-Net predicts one label everywhere"
    assert (written == expected).mean() >= 0.999


def test_without_nnunetv2_the_loader_says_what_to_install(folders, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "nnunetv2.utilities.plans_handling.plans_handler", None)
    with pytest.raises(ImportError, match=r"load_nnunet needs nnunetv2: pip install art-seg\[nnunet\]"):
        load_nnunet(folders["labels"])
