"""Tests for art_seg.models.unet: shapes, pinned architecture, skip path, gradients, errors, training."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from art_seg.models import UNet2D, UNet3D


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------------------------------- shapes


@pytest.mark.parametrize(
    "spatial_dims, depth, spatial",
    [
        (3, 0, (3, 5, 2)),
        (3, 1, (8, 8, 8)),
        (3, 2, (16, 8, 12)),
        (3, 3, (16, 16, 16)),
        (2, 0, (5, 7)),
        (2, 1, (8, 6)),
        (2, 2, (16, 16)),
        (2, 3, (16, 24)),
    ],
)
@pytest.mark.parametrize("norm", ["instance", "batch", "group", None])
def test_output_shape(spatial_dims: int, depth: int, spatial: tuple[int, ...], norm: str | None) -> None:
    model = UNet3D(2, 3, base_filters=4, depth=depth, norm=norm, spatial_dims=spatial_dims)
    out = model(torch.randn(2, 2, *spatial))
    assert out.shape == (2, 3, *spatial)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_unet2d_is_unet3d_with_two_spatial_dims() -> None:
    model = UNet2D(1, 2, base_filters=4, depth=2, norm="group", dropout=0.1)
    assert isinstance(model, UNet3D)
    assert model.spatial_dims == 2
    assert model.config == UNet3D(1, 2, 4, 2, "group", 2, 0.1).config
    assert model(torch.randn(1, 1, 8, 12)).shape == (1, 2, 8, 12)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_logits_dtype_follows_float64_model(spatial_dims: int) -> None:
    model = UNet3D(1, 2, base_filters=2, depth=1, spatial_dims=spatial_dims).double()
    out = model(torch.randn(1, 1, *([4] * spatial_dims), dtype=torch.float64))
    assert out.dtype == torch.float64


# --------------------------------------------------------------------------------- pinned architecture


def test_parameter_count_3d_instance_norm_by_hand() -> None:
    # in 2, classes 3, f 4, depth 2 -> widths 4, 8, 16. Convs 3x3x3 (27 taps) without bias (norm follows);
    # each affine norm has 2 * channels; transposed convs 2x2x2 (8 taps) with bias; head 1x1x1 with bias.
    enc0 = (2 * 4 * 27 + 2 * 4) + (4 * 4 * 27 + 2 * 4)  # 224 + 440 = 664
    enc1 = (4 * 8 * 27 + 2 * 8) + (8 * 8 * 27 + 2 * 8)  # 880 + 1744 = 2624
    bottleneck = (8 * 16 * 27 + 2 * 16) + (16 * 16 * 27 + 2 * 16)  # 3488 + 6944 = 10432
    up1 = 16 * 8 * 8 + 8  # 1032
    dec1 = (16 * 8 * 27 + 2 * 8) + (8 * 8 * 27 + 2 * 8)  # concat 8 + 8 -> 8: 3472 + 1744 = 5216
    up0 = 8 * 4 * 8 + 4  # 260
    dec0 = (8 * 4 * 27 + 2 * 4) + (4 * 4 * 27 + 2 * 4)  # concat 4 + 4 -> 4: 872 + 440 = 1312
    head = 4 * 3 + 3  # 15
    expected = enc0 + enc1 + bottleneck + up1 + dec1 + up0 + dec0 + head
    assert expected == 21555
    assert n_params(UNet3D(2, 3, base_filters=4, depth=2, norm="instance")) == expected
    # batch and group norm have the same learnable parameters as affine instance norm
    assert n_params(UNet3D(2, 3, base_filters=4, depth=2, norm="batch")) == expected
    assert n_params(UNet3D(2, 3, base_filters=4, depth=2, norm="group")) == expected


def test_parameter_count_2d_no_norm_by_hand() -> None:
    # in 1, classes 2, f 3, depth 1 -> widths 3, 6. Convs 3x3 (9 taps) with bias; no norm parameters.
    enc0 = (1 * 3 * 9 + 3) + (3 * 3 * 9 + 3)  # 30 + 84 = 114
    bottleneck = (3 * 6 * 9 + 6) + (6 * 6 * 9 + 6)  # 168 + 330 = 498
    up0 = 6 * 3 * 4 + 3  # 75
    dec0 = (6 * 3 * 9 + 3) + (3 * 3 * 9 + 3)  # 165 + 84 = 249
    head = 3 * 2 + 2  # 8
    expected = enc0 + bottleneck + up0 + dec0 + head
    assert expected == 944
    assert n_params(UNet2D(1, 2, base_filters=3, depth=1, norm=None)) == expected
    assert n_params(UNet2D(1, 2, base_filters=3, depth=1, norm="none")) == expected


@pytest.mark.parametrize("channels, groups", [(4, 4), (8, 8), (16, 8), (12, 6), (6, 6), (24, 8), (3, 3), (10, 5)])
def test_group_norm_group_count(channels: int, groups: int) -> None:
    model = UNet3D(1, 2, base_filters=channels, depth=0, norm="group", spatial_dims=2)
    norm = model.bottleneck[1]
    assert isinstance(norm, torch.nn.GroupNorm)
    assert (norm.num_groups, norm.num_channels) == (groups, channels)


def test_norm_layer_types() -> None:
    kinds = {
        ("instance", 3): torch.nn.InstanceNorm3d,
        ("instance", 2): torch.nn.InstanceNorm2d,
        ("batch", 3): torch.nn.BatchNorm3d,
        ("batch", 2): torch.nn.BatchNorm2d,
        ("group", 3): torch.nn.GroupNorm,
        (None, 2): torch.nn.Identity,
    }
    for (norm, dims), cls in kinds.items():
        layer = UNet3D(1, 2, base_filters=4, depth=1, norm=norm, spatial_dims=dims).encoders[0][1]
        assert type(layer) is cls
    assert UNet3D(1, 2, 4, 1).encoders[0][1].affine


def test_dropout_layers_only_when_positive() -> None:
    with_dropout = UNet3D(1, 2, base_filters=4, depth=2, dropout=0.3)
    drops = [m for m in with_dropout.modules() if isinstance(m, torch.nn.Dropout3d)]
    assert len(drops) == 5 and all(m.p == 0.3 for m in drops)  # 2 encoder + bottleneck + 2 decoder blocks
    assert not any(isinstance(m, torch.nn.modules.dropout._DropoutNd) for m in UNet3D(1, 2, 4, 2).modules())
    x = torch.randn(1, 1, 8, 8, 8)
    with_dropout.eval()
    assert torch.equal(with_dropout(x), with_dropout(x))


def test_config_round_trip_and_repr() -> None:
    model = UNet3D(4, 4, base_filters=8, depth=3, norm="none", spatial_dims=3, dropout=0.25)
    assert model.config == {
        "in_channels": 4,
        "nb_classes": 4,
        "base_filters": 8,
        "depth": 3,
        "norm": None,
        "spatial_dims": 3,
        "dropout": 0.25,
    }
    rebuilt = UNet3D(**model.config)
    assert rebuilt.config == model.config
    assert rebuilt.state_dict().keys() == model.state_dict().keys()
    assert UNet3D.from_config(model.config).config == model.config
    two_d = UNet2D(1, 2, base_filters=4, depth=1)
    assert type(UNet2D.from_config(two_d.config)) is UNet2D
    assert UNet2D.from_config(two_d.config).config == two_d.config
    with pytest.raises(ValueError, match="spatial_dims == 2, got 3"):
        UNet2D.from_config(model.config)
    assert "base_filters=8" in repr(model) and "depth=3" in repr(model)
    assert model.size_multiple == 8


# ------------------------------------------------------------------------------------ skip connections


def test_decoder_receives_upsampled_then_skip() -> None:
    """Structural: the last decoder block's input is cat([up(bottleneck), encoder level-0 output])."""
    model = UNet3D(1, 2, base_filters=4, depth=2, spatial_dims=3)
    seen: dict[str, torch.Tensor] = {}
    model.encoders[0].register_forward_hook(lambda m, i, o: seen.__setitem__("enc0", o.detach().clone()))
    model.ups[-1].register_forward_hook(lambda m, i, o: seen.__setitem__("up0", o.detach().clone()))
    model.decoders[-1].register_forward_pre_hook(lambda m, i: seen.__setitem__("dec0_in", i[0].detach().clone()))
    model(torch.randn(1, 1, 8, 8, 8))
    assert seen["dec0_in"].shape == (1, 8, 8, 8, 8)
    torch.testing.assert_close(seen["dec0_in"][:, :4], seen["up0"])
    torch.testing.assert_close(seen["dec0_in"][:, 4:], seen["enc0"])


def _input_gradient_support(model: torch.nn.Module, size: int, centre: int) -> torch.Tensor:
    x = torch.randn(1, 1, size, size, requires_grad=True)
    model(x)[0, :, centre, centre].sum().backward()
    return x.grad[0, 0] != 0


def test_output_depends_on_high_resolution_detail_through_skip() -> None:
    """With the up-sampling path cut, the output still sees the input, but only through the full-resolution
    skip: two 3x3 convs in the encoder plus two in the decoder give a 9x9 receptive field."""
    torch.manual_seed(0)
    model = UNet2D(1, 2, base_filters=4, depth=1, norm=None)
    size, centre = 16, 8
    full = _input_gradient_support(model, size, centre)
    with torch.no_grad():
        model.ups[0].weight.zero_()
        model.ups[0].bias.zero_()
    skip_only = _input_gradient_support(model, size, centre)
    expected = torch.zeros(size, size, dtype=torch.bool)
    expected[centre - 4 : centre + 5, centre - 4 : centre + 5] = True
    assert skip_only[centre, centre]
    assert torch.equal(skip_only, skip_only & expected)  # nothing outside the 9x9 window
    assert skip_only.sum() > 0.9 * expected.sum()
    assert full.sum() > expected.sum()  # the bottleneck path reaches further


def test_skip_path_detail_changes_output() -> None:
    """A one-pixel change moves the logits at that pixel even when the bottleneck path is cut."""
    torch.manual_seed(1)
    model = UNet2D(1, 2, base_filters=4, depth=2, norm="instance").eval()
    with torch.no_grad():
        for up in model.ups:
            up.weight.zero_()
            up.bias.zero_()
        x = torch.randn(1, 1, 16, 16)
        x2 = x.clone()
        x2[0, 0, 5, 9] += 3.0
        delta = (model(x2) - model(x)).abs()[0].sum(0)
    assert delta[5, 9] > 1e-3


# ------------------------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("norm", [None, "instance", "group"])
def test_gradcheck_wrt_input(norm: str | None) -> None:
    torch.manual_seed(0)
    model = UNet2D(1, 2, base_filters=2, depth=1, norm=norm).double()
    x = torch.randn(1, 1, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(model, (x,), eps=1e-6, atol=1e-5)


# ----------------------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("norm", ["instance", "batch", "group", None])
def test_same_seed_same_weights_and_outputs(norm: str | None) -> None:
    torch.manual_seed(123)
    a = UNet3D(2, 3, base_filters=4, depth=2, norm=norm)
    torch.manual_seed(123)
    b = UNet3D(2, 3, base_filters=4, depth=2, norm=norm)
    for (name_a, p_a), (name_b, p_b) in zip(a.state_dict().items(), b.state_dict().items()):
        assert name_a == name_b
        assert torch.equal(p_a, p_b)
    x = torch.randn(2, 2, 8, 8, 8)
    assert torch.equal(a.eval()(x), b.eval()(x))
    torch.manual_seed(124)
    c = UNet3D(2, 3, base_filters=4, depth=2, norm=norm)
    assert not torch.equal(a.head.weight, c.head.weight)


def test_initialisation() -> None:
    model = UNet3D(2, 3, base_filters=4, depth=2, norm=None)
    for module in model.modules():
        if isinstance(module, (torch.nn.Conv3d, torch.nn.ConvTranspose3d)):
            assert torch.count_nonzero(module.bias) == 0
    norm_model = UNet3D(2, 3, base_filters=4, depth=2, norm="instance")
    assert torch.equal(norm_model.encoders[0][1].weight, torch.ones(4))
    assert norm_model.encoders[0][0].bias is None


# ---------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"in_channels": 0}, ValueError, r"in_channels must be >= 1, got 0"),
        ({"in_channels": 2.0}, TypeError, r"in_channels must be an integer, got 2\.0"),
        ({"in_channels": True}, TypeError, r"in_channels must be an integer, got True"),
        ({"nb_classes": 0}, ValueError, r"nb_classes must be >= 1, got 0"),
        ({"nb_classes": "4"}, TypeError, r"nb_classes must be an integer, got '4'"),
        ({"base_filters": 0}, ValueError, r"base_filters must be >= 1, got 0"),
        ({"depth": -1}, ValueError, r"depth must be >= 0, got -1"),
        ({"depth": 1.5}, TypeError, r"depth must be an integer, got 1\.5"),
        ({"norm": "layer"}, ValueError, r"norm must be one of .*, got 'layer'"),
        ({"norm": "Instance"}, ValueError, r"norm must be one of .*, got 'Instance'"),
        ({"spatial_dims": 1}, ValueError, r"spatial_dims must be one of \(2, 3\), got 1"),
        ({"spatial_dims": 3.0}, TypeError, r"spatial_dims must be an integer, got 3\.0"),
        ({"dropout": 1.0}, ValueError, r"dropout must be < 1\.0, got 1\.0"),
        ({"dropout": -0.1}, ValueError, r"dropout must be >= 0\.0, got -0\.1"),
        ({"dropout": float("nan")}, ValueError, r"dropout must be finite, got nan"),
        ({"dropout": "0.1"}, TypeError, r"dropout must be a real number, got '0\.1'"),
    ],
)
def test_bad_constructor_arguments(kwargs: dict, error: type[Exception], match: str) -> None:
    args = {"in_channels": 1, "nb_classes": 2, "base_filters": 4, "depth": 1} | kwargs
    with pytest.raises(error, match=match):
        UNet3D(**args)


def test_unet2d_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"depth must be >= 0, got -2"):
        UNet2D(1, 2, depth=-2)
    with pytest.raises(TypeError):
        UNet2D(1, 2, spatial_dims=3)  # not an argument of UNet2D


@pytest.mark.parametrize(
    "spatial_dims, depth, norm, shape, error, match",
    [
        (
            3,
            2,
            "instance",
            (1, 2, 8, 8, 8),
            ValueError,
            r"in_channels = 1 channels .* got 2 \(shape \(1, 2, 8, 8, 8\)\)",
        ),
        (3, 2, "instance", (1, 1, 8, 8), ValueError, r"must have 5 dimensions \(N, C, D, H, W\) .* got 4"),
        (3, 2, "instance", (1, 8, 8, 8), ValueError, r"must have 5 dimensions .* got 4 \(shape \(1, 8, 8, 8\)\)"),
        (2, 1, None, (1, 1, 4, 4, 4), ValueError, r"must have 4 dimensions \(N, C, H, W\) .* got 5"),
        (
            3,
            2,
            "instance",
            (1, 1, 6, 8, 8),
            ValueError,
            r"input spatial shape \(6, 8, 8\) must be divisible by 2\*\*depth = 4 in every dimension; pad or crop",
        ),
        (
            3,
            4,
            None,
            (1, 1, 30, 32, 32),
            ValueError,
            r"input spatial shape \(30, 32, 32\) must be divisible by 2\*\*depth = 16",
        ),
        (2, 1, None, (1, 1, 0, 4), ValueError, r"input spatial shape \(0, 4\) must be divisible"),
        (
            3,
            2,
            "instance",
            (2, 1, 4, 4, 4),
            ValueError,
            r"\(4, 4, 4\) leaves a single voxel at the bottleneck .* 2\*\*\(depth\+1\) = 8",
        ),
        (2, 0, "instance", (1, 1, 1, 1), ValueError, r"single voxel at the bottleneck \(depth=0\)"),
        (2, 1, "batch", (1, 1, 2, 2), ValueError, r"batch norm a single value per channel"),
    ],
)
def test_bad_inputs(
    spatial_dims: int, depth: int, norm: str | None, shape: tuple[int, ...], error: type[Exception], match: str
) -> None:
    model = UNet3D(1, 2, base_filters=2, depth=depth, norm=norm, spatial_dims=spatial_dims)
    with pytest.raises(error, match=match):
        model(torch.randn(*shape))


def test_bad_input_types() -> None:
    model = UNet2D(1, 2, base_filters=2, depth=1)
    with pytest.raises(TypeError, match=r"x must be Tensor, got ndarray"):
        model(torch.randn(1, 1, 4, 4).numpy())
    with pytest.raises(TypeError, match=r"x must be a floating-point tensor, got dtype torch.int64"):
        model(torch.ones(1, 1, 4, 4, dtype=torch.long))


def test_small_inputs_that_are_fine() -> None:
    # instance norm: a 1x2 bottleneck is two voxels, fine; batch norm in eval mode with one voxel is fine
    assert UNet2D(1, 2, base_filters=2, depth=1)(torch.randn(1, 1, 2, 4)).shape == (1, 2, 2, 4)
    assert UNet2D(1, 2, base_filters=2, depth=1, norm="batch").eval()(torch.randn(1, 1, 2, 2)).shape == (1, 2, 2, 2)
    assert UNet2D(1, 2, base_filters=2, depth=1, norm="batch")(torch.randn(2, 1, 2, 2)).shape == (2, 2, 2, 2)
    assert UNet2D(1, 2, base_filters=2, depth=1, norm=None)(torch.randn(1, 1, 2, 2)).shape == (1, 2, 2, 2)


# ------------------------------------------------------------------------------------------------ CUDA


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu() -> None:
    torch.manual_seed(0)
    model = UNet3D(2, 3, base_filters=4, depth=2).eval()
    x = torch.randn(1, 2, 16, 16, 16)
    expected = model(x)
    out = model.cuda()(x.cuda())
    assert out.device.type == "cuda"
    torch.testing.assert_close(out.cpu(), expected, rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------------------------------- training


def test_overfits_bright_square() -> None:
    torch.manual_seed(0)
    x = 0.1 * torch.randn(2, 1, 16, 16)
    y = torch.zeros(2, 16, 16, dtype=torch.long)
    for i, (r, c) in enumerate([(2, 3), (8, 7)]):
        x[i, 0, r : r + 6, c : c + 6] += 1.0
        y[i, r : r + 6, c : c + 6] = 1
    model = UNet2D(1, 2, base_filters=4, depth=1, norm="instance")
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(100):
        optimiser.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        pred = model(x).argmax(1)
    dice = 2 * ((pred == 1) & (y == 1)).sum() / ((pred == 1).sum() + (y == 1).sum())
    assert dice > 0.9


# ------------------------------------------------------------------------------------ config bounds
@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("norm", ["instance", "batch", "group", None])
@pytest.mark.parametrize("depth", [0, 1, 3])
def test_check_config_counts_the_parameters_without_building(spatial_dims: int, norm: str | None, depth: int) -> None:
    model = UNet3D(3, 5, base_filters=6, depth=depth, norm=norm, spatial_dims=spatial_dims, dropout=0.1)
    assert UNet3D.check_config(model.config) == n_params(model)
    if spatial_dims == 2:
        two_d = UNet2D(3, 5, base_filters=6, depth=depth, norm=norm)
        assert UNet2D.check_config(two_d.config) == n_params(two_d) == n_params(model)


@pytest.mark.parametrize(
    ("config", "error", "match"),
    [
        ({"depth": 40}, ValueError, r"depth must be <= 10, got 40"),
        ({"base_filters": 600}, ValueError, r"base_filters=600.* describe a network of [\d,]+ parameters .*over the"),
        ({"in_channels": 10**9}, ValueError, r"in_channels=1000000000.*over the limit"),
        ({"nb_classes": 10**9}, ValueError, r"nb_classes=1000000000.*over the limit"),
        ({"widths": [4, 8]}, ValueError, r"config has unknown key\(s\) \['widths'\]; UNet3D takes \['in_channels', "),
        ({"nb_classes": None}, TypeError, r"nb_classes must be an integer, got None"),
    ],
)
def test_oversized_or_malformed_configs_are_refused_before_any_layer_is_built(
    config, error, match, monkeypatch
) -> None:
    # depth 40 or base_filters 600 used to build a multi-GB network before any check
    import art_seg.models.unet as unet

    def no_layers(*args, **kwargs):
        raise AssertionError("a layer was built")

    monkeypatch.setattr(unet, "_DoubleConv", no_layers)
    full = {"in_channels": 4, "nb_classes": 4, "base_filters": 8, "depth": 3} | config
    with pytest.raises(error, match=match):
        UNet3D.check_config(full)
    with pytest.raises(error, match=match):
        UNet3D.from_config(full)
    if "widths" not in config:
        with pytest.raises(error, match=match):
            UNet3D(**full)


def test_check_config_names_missing_keys_and_bad_types() -> None:
    with pytest.raises(ValueError, match=r"config lacks key\(s\) \['nb_classes'\] of UNet3D"):
        UNet3D.check_config({"in_channels": 4})
    with pytest.raises(TypeError, match=r"config must be dict, got list"):
        UNet3D.check_config([4, 4])
    with pytest.raises(ValueError, match=r"UNet2D needs config spatial_dims == 2, got 3"):
        UNet2D.check_config({"in_channels": 1, "nb_classes": 2, "spatial_dims": 3})
    with pytest.raises(ValueError, match=r"config has unknown key\(s\) \['extra'\]; UNet2D takes"):
        UNet2D.check_config({"in_channels": 1, "nb_classes": 2, "extra": 1})
    # a large (nnU-Net-sized and more) network stays within the limit
    assert UNet3D.check_config({"in_channels": 4, "nb_classes": 4, "base_filters": 32, "depth": 5}) < 2**28
