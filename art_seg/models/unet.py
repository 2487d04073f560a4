"""The U-Net of Cicek et al. (2016), in 3D for BraTS volumes and in 2D for slices.

``UNet3D`` is an encoder-decoder with skip connections. With ``f = base_filters`` and ``L = depth``:

- encoder level ``l`` (``0 <= l < L``): two conv blocks to ``f * 2**l`` channels, then max-pool 2;
- bottleneck (level ``L``): two conv blocks to ``f * 2**L`` channels;
- decoder level ``l`` (``L > l >= 0``): transposed conv (kernel 2, stride 2) from ``f * 2**(l+1)`` to
  ``f * 2**l`` channels, concatenation ``[up, skip]`` with the encoder output of level ``l`` (so
  ``2 * f * 2**l`` channels), two conv blocks back to ``f * 2**l`` channels;
- head: a 1x1(x1) conv from ``f`` channels to ``nb_classes`` raw logits.

A conv block is conv (kernel 3, padding 1) -> norm -> LeakyReLU(0.01). The conv has a bias only when there
is no norm layer (a norm's own shift makes a bias redundant). Transposed convs and the head always have a bias.

The spatial size of the input must divide by ``2**depth`` in every dimension (``art_seg.data`` pads to such a
multiple); the output has the same spatial size as the input.

Size bounds, checked before any layer is built (so that a crafted checkpoint config such as ``depth: 40`` or
``base_filters: 600`` cannot make the process allocate gigabytes): ``depth <= MAX_DEPTH`` (10) and at most
``MAX_PARAMETERS`` (``2**28``, 1 GiB of float32 weights) parameters, counted from the config alone
(:meth:`UNet3D.check_config`). A 3D U-Net with ``base_filters=32`` has about 23 million at ``depth=4``, 90
million at ``depth=5``.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import torch
from torch import nn

from art_seg._checks import check_choice, check_number, check_type

__all__ = ["UNet3D", "UNet2D"]

NORMS: tuple[str | None, ...] = ("instance", "batch", "group", "none", None)
SPATIAL_DIMS: tuple[int, ...] = (2, 3)
LEAKY_SLOPE = 0.01
MAX_GROUPS = 8
MAX_DEPTH = 10
MAX_PARAMETERS = 2**28


def _check_arguments(
    in_channels: Any, nb_classes: Any, base_filters: Any, depth: Any, norm: Any, spatial_dims: Any, dropout: Any
) -> int:
    """Check every constructor argument and the size bounds, without building anything; return the parameter count.

    Raises:
        TypeError, ValueError: naming the argument and its value (the sizes, for a network over ``MAX_PARAMETERS``).
    """
    check_number("in_channels", in_channels, low=1, integer=True)
    check_number("nb_classes", nb_classes, low=1, integer=True)
    check_number("base_filters", base_filters, low=1, integer=True)
    check_number("depth", depth, low=0, high=MAX_DEPTH, integer=True)
    check_choice("norm", norm, NORMS)
    check_number("spatial_dims", spatial_dims, integer=True)
    check_choice("spatial_dims", spatial_dims, SPATIAL_DIMS)
    check_number("dropout", dropout, low=0.0, high=1.0, high_inclusive=False)
    count = _parameter_count(int(in_channels), int(nb_classes), int(base_filters), int(depth), norm, int(spatial_dims))
    if count > MAX_PARAMETERS:
        raise ValueError(
            f"in_channels={in_channels}, nb_classes={nb_classes}, base_filters={base_filters}, depth={depth} "
            f"describe a network of {count:,} parameters ({4 * count / 2**30:.1f} GiB as float32), over the limit "
            f"of {MAX_PARAMETERS:,} (art_seg.models.unet.MAX_PARAMETERS); lower base_filters or depth"
        )
    return count


def _parameter_count(
    in_channels: int, nb_classes: int, base_filters: int, depth: int, norm: str | None, spatial_dims: int
) -> int:
    """The number of parameters of the U-Net these arguments describe (exact, in Python integers)."""
    kernel = 3**spatial_dims
    per_channel = 1 if norm in (None, "none") else 2  # a conv bias, or a norm's weight and bias

    def double_conv(c_in: int, c_out: int) -> int:
        return kernel * c_in * c_out + kernel * c_out * c_out + 2 * per_channel * c_out

    widths = [base_filters * 2**level for level in range(depth + 1)]
    total, previous = 0, in_channels
    for width in widths:  # encoders, then the bottleneck
        total += double_conv(previous, width)
        previous = width
    for level in range(depth):  # transposed conv (with bias), then the decoder's double conv
        total += widths[level + 1] * widths[level] * 2**spatial_dims + widths[level]
        total += double_conv(2 * widths[level], widths[level])
    return total + base_filters * nb_classes + nb_classes  # the head


def _config_arguments(cls: type, config: Any) -> dict[str, Any]:
    """``config`` as keyword arguments of ``cls``'s constructor: no unknown key, no required key missing."""
    check_type("config", config, dict)
    parameters = [p for name, p in inspect.signature(cls.__init__).parameters.items() if name != "self"]
    names = [p.name for p in parameters]
    unknown = sorted(str(key) for key in config if key not in names)
    if unknown:
        raise ValueError(f"config has unknown key(s) {unknown}; {cls.__name__} takes {names}")
    missing = [p.name for p in parameters if p.default is inspect.Parameter.empty and p.name not in config]
    if missing:
        raise ValueError(f"config lacks key(s) {missing} of {cls.__name__}")
    return {p.name: config.get(p.name, p.default) for p in parameters}


def _group_count(channels: int, max_groups: int = MAX_GROUPS) -> int:
    """Largest divisor of ``channels`` that is at most ``max_groups`` (``min(8, channels)`` when it divides)."""
    for groups in range(min(max_groups, channels), 0, -1):
        if channels % groups == 0:
            return groups
    return 1  # unreachable for channels >= 1


def _make_norm(norm: str | None, channels: int, spatial_dims: int) -> nn.Module:
    """Norm layer for ``channels`` feature maps: InstanceNorm (affine), BatchNorm, GroupNorm or Identity."""
    if norm == "instance":
        cls = nn.InstanceNorm3d if spatial_dims == 3 else nn.InstanceNorm2d
        return cls(channels, affine=True)
    if norm == "batch":
        cls = nn.BatchNorm3d if spatial_dims == 3 else nn.BatchNorm2d
        return cls(channels)
    if norm == "group":
        return nn.GroupNorm(_group_count(channels), channels)
    return nn.Identity()


class _DoubleConv(nn.Sequential):
    """Two (conv 3^d, padding 1 -> norm -> LeakyReLU) blocks, then optional channel dropout.

    Shapes: ``(N, in_channels, *S) -> (N, out_channels, *S)``.
    """

    def __init__(self, in_channels: int, out_channels: int, norm: str | None, spatial_dims: int, dropout: float):
        conv = nn.Conv3d if spatial_dims == 3 else nn.Conv2d
        bias = norm is None
        layers: list[nn.Module] = []
        for c_in in (in_channels, out_channels):
            layers += [
                conv(c_in, out_channels, kernel_size=3, padding=1, bias=bias),
                _make_norm(norm, out_channels, spatial_dims),
                nn.LeakyReLU(LEAKY_SLOPE, inplace=True),
            ]
        if dropout > 0:
            layers.append((nn.Dropout3d if spatial_dims == 3 else nn.Dropout2d)(dropout))
        super().__init__(*layers)


class UNet3D(nn.Module):
    """3D U-Net (Cicek et al. 2016) for volumetric segmentation; ``spatial_dims=2`` gives the 2D U-Net.

    Args:
        in_channels: input channels ``C`` (4 for BraTS: T1, T1ce, T2, FLAIR); integer >= 1.
        nb_classes: output classes ``K`` (logit channels); integer >= 1.
        base_filters: filters ``f`` of the first level; level ``l`` has ``f * 2**l``; integer >= 1.
        depth: number of max-pool down-samplings ``L`` (``L + 1`` resolution levels); integer >= 0.
        norm: ``"instance"`` (InstanceNorm, affine), ``"batch"`` (BatchNorm), ``"group"`` (GroupNorm with the
            largest divisor of the channel count that is <= 8 as group count), or ``None`` / ``"none"``.
            ``"none"`` is stored as ``None``.
        spatial_dims: 3 for ``(N, C, D, H, W)`` volumes, 2 for ``(N, C, H, W)`` slices.
        dropout: channel-dropout probability after every double-conv block (``Dropout3d`` / ``Dropout2d``);
            in ``[0, 1)``; 0 adds no dropout layer. Active only in training mode.

    Raises:
        TypeError: if an integer argument is not an integer or ``dropout`` is not a real number.
        ValueError: if an argument is out of range, ``norm`` / ``spatial_dims`` is not a known choice, ``depth``
            exceeds ``MAX_DEPTH`` (10) or the network would have over ``MAX_PARAMETERS`` (``2**28``)
            parameters; checked before any layer is built.

    Shapes:
        input ``x``: ``(N, in_channels, *S)`` floating point, z-scored intensities, with ``len(S) ==
        spatial_dims`` and every ``S[i]`` divisible by ``2**depth``;
        output: ``(N, nb_classes, *S)`` raw logits (no softmax), in the dtype of the model.

    Example:
        >>> import torch
        >>> from art_seg.models import UNet3D
        >>> _ = torch.manual_seed(0)
        >>> model = UNet3D(in_channels=4, nb_classes=4, base_filters=4, depth=2)
        >>> model(torch.randn(1, 4, 16, 16, 16)).shape
        torch.Size([1, 4, 16, 16, 16])
        >>> UNet3D(**model.config).config == model.config
        True
    """

    def __init__(
        self,
        in_channels: int,
        nb_classes: int,
        base_filters: int = 16,
        depth: int = 4,
        norm: str | None = "instance",
        spatial_dims: int = 3,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        _check_arguments(in_channels, nb_classes, base_filters, depth, norm, spatial_dims, dropout)

        self.in_channels = int(in_channels)
        self.nb_classes = int(nb_classes)
        self.base_filters = int(base_filters)
        self.depth = int(depth)
        self.norm: str | None = None if norm == "none" else norm
        self.spatial_dims = int(spatial_dims)
        self.dropout = float(dropout)

        d, f = self.spatial_dims, self.base_filters
        widths = [f * 2**level for level in range(self.depth + 1)]
        block_args = (self.norm, d, self.dropout)
        conv_t = nn.ConvTranspose3d if d == 3 else nn.ConvTranspose2d

        self.encoders = nn.ModuleList()
        previous = self.in_channels
        for width in widths[:-1]:
            self.encoders.append(_DoubleConv(previous, width, *block_args))
            previous = width
        self.pool = (nn.MaxPool3d if d == 3 else nn.MaxPool2d)(kernel_size=2, stride=2)
        self.bottleneck = _DoubleConv(previous, widths[-1], *block_args)
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for level in reversed(range(self.depth)):
            self.ups.append(conv_t(widths[level + 1], widths[level], kernel_size=2, stride=2))
            self.decoders.append(_DoubleConv(2 * widths[level], widths[level], *block_args))
        self.head = (nn.Conv3d if d == 3 else nn.Conv2d)(f, self.nb_classes, kernel_size=1)
        self.reset_parameters()

    @property
    def config(self) -> dict[str, Any]:
        """Constructor arguments as a plain dict; ``UNet3D(**config)`` rebuilds the same architecture.

        Used to write checkpoints and to reject checkpoints from another architecture.
        """
        return {
            "in_channels": self.in_channels,
            "nb_classes": self.nb_classes,
            "base_filters": self.base_filters,
            "depth": self.depth,
            "norm": self.norm,
            "spatial_dims": self.spatial_dims,
            "dropout": self.dropout,
        }

    @classmethod
    def check_config(cls, config: dict[str, Any]) -> int:
        """Check a :attr:`config` dict (e.g. read from a checkpoint) without building anything.

        Every key must be a constructor argument, the required ones (``in_channels``, ``nb_classes``) present,
        and every value valid, within ``MAX_DEPTH`` and ``MAX_PARAMETERS`` (see the class docstring).

        Returns:
            The parameter count of the network ``config`` describes.

        Raises:
            TypeError: ``config`` is not a dict, or a value of the wrong type (naming the key).
            ValueError: an unknown or missing key, a value out of range, or a network over the bounds.
        """
        arguments = _config_arguments(cls, config)
        return _check_arguments(**arguments)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> UNet3D:
        """Build a model from a :attr:`config` dict, checked first by :meth:`check_config`.

        Args:
            config: constructor arguments, as returned by :attr:`config`.

        Returns:
            A freshly initialised model of this class.

        Raises:
            TypeError, ValueError: see :meth:`check_config`.
        """
        cls.check_config(config)
        return cls(**config)

    @property
    def size_multiple(self) -> int:
        """Every spatial size of the input must be a multiple of this, ``2**depth``."""
        return 2**self.depth

    def extra_repr(self) -> str:
        return ", ".join(f"{key}={value!r}" for key, value in self.config.items())

    def reset_parameters(self) -> None:
        """Kaiming-normal (fan-in, LeakyReLU slope) conv weights, zero biases, unit/zero norm affines.

        Deterministic under ``torch.manual_seed``.
        """
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
                nn.init.kaiming_normal_(module.weight, a=LEAKY_SLOPE, nonlinearity="leaky_relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(
                module, (nn.InstanceNorm2d, nn.InstanceNorm3d, nn.BatchNorm2d, nn.BatchNorm3d, nn.GroupNorm)
            ):
                if module.weight is not None:
                    nn.init.ones_(module.weight)
                    nn.init.zeros_(module.bias)

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a clear error unless ``x`` can go through this network (see the class docstring for shapes).

        Raises:
            TypeError: if ``x`` is not a floating-point tensor.
            ValueError: for a wrong number of dimensions or channels, a spatial size not divisible by
                ``2**depth``, or a bottleneck too small for the norm layer.
        """
        check_type("x", x, torch.Tensor)
        if not x.is_floating_point():
            raise TypeError(f"x must be a floating-point tensor, got dtype {x.dtype}")
        d = self.spatial_dims
        layout = "(N, C, D, H, W)" if d == 3 else "(N, C, H, W)"
        if x.ndim != 2 + d:
            raise ValueError(
                f"x must have {2 + d} dimensions {layout} for spatial_dims={d}, got {x.ndim} (shape {tuple(x.shape)})"
            )
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"x must have in_channels = {self.in_channels} channels (dim 1), got {x.shape[1]} "
                f"(shape {tuple(x.shape)})"
            )
        spatial = tuple(int(s) for s in x.shape[2:])
        multiple = self.size_multiple
        if any(s == 0 or s % multiple for s in spatial):
            raise ValueError(
                f"input spatial shape {spatial} must be divisible by 2**depth = {multiple} in every dimension; "
                f"pad or crop it (art_seg.data pads to a multiple)"
            )
        bottleneck_voxels = math.prod(s // multiple for s in spatial)
        if self.norm == "instance" and bottleneck_voxels == 1:
            raise ValueError(
                f"input spatial shape {spatial} leaves a single voxel at the bottleneck (depth={self.depth}), which "
                f"instance norm cannot normalise; make at least one spatial dimension >= 2**(depth+1) = "
                f"{2 * multiple}, or use a smaller depth"
            )
        if self.norm == "batch" and self.training and x.shape[0] * bottleneck_voxels == 1:
            raise ValueError(
                f"input shape {tuple(x.shape)} gives batch norm a single value per channel at the bottleneck in "
                f"training mode; use a batch of >= 2, a spatial dimension >= 2**(depth+1) = {2 * multiple}, "
                f"or eval mode"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Segment ``x``.

        Args:
            x: ``(N, in_channels, *S)`` floating tensor (z-scored intensities), ``len(S) == spatial_dims``, each
                ``S[i]`` divisible by ``2**depth``.

        Returns:
            ``(N, nb_classes, *S)`` raw logits.

        Raises:
            TypeError, ValueError: see :meth:`check_input`.
        """
        self.check_input(x)
        skips: list[torch.Tensor] = []
        for encoder in self.encoders:
            x = encoder(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for up, decoder, skip in zip(self.ups, self.decoders, reversed(skips)):
            x = decoder(torch.cat([up(x), skip], dim=1))
        return self.head(x)


class UNet2D(UNet3D):
    """2D U-Net: :class:`UNet3D` with ``spatial_dims=2``, for ``(N, C, H, W)`` slices.

    Args:
        in_channels: input channels ``C``; integer >= 1.
        nb_classes: output classes ``K``; integer >= 1.
        base_filters: filters of the first level; integer >= 1.
        depth: number of max-pool down-samplings; integer >= 0.
        norm: ``"instance"``, ``"batch"``, ``"group"`` or ``None`` / ``"none"``.
        dropout: channel-dropout probability in ``[0, 1)``.

    Raises:
        TypeError, ValueError: as :class:`UNet3D`.

    Shapes:
        ``(N, in_channels, H, W) -> (N, nb_classes, H, W)`` logits; ``H`` and ``W`` divisible by ``2**depth``.

    Example:
        >>> import torch
        >>> from art_seg.models import UNet2D
        >>> model = UNet2D(in_channels=1, nb_classes=2, base_filters=4, depth=2)
        >>> model(torch.randn(2, 1, 32, 32)).shape
        torch.Size([2, 2, 32, 32])
    """

    def __init__(
        self,
        in_channels: int,
        nb_classes: int,
        base_filters: int = 16,
        depth: int = 4,
        norm: str | None = "instance",
        dropout: float = 0.0,
    ) -> None:
        super().__init__(in_channels, nb_classes, base_filters, depth, norm, spatial_dims=2, dropout=dropout)

    @classmethod
    def check_config(cls, config: dict[str, Any]) -> int:
        """As :meth:`UNet3D.check_config`; ``config["spatial_dims"]``, if present, must be 2.

        Raises:
            ValueError: also if ``config["spatial_dims"]`` is not 2.
        """
        arguments = _config_arguments(cls, _without_spatial_dims(config))
        return _check_arguments(**arguments, spatial_dims=2)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> UNet2D:
        """Build from a :attr:`config` dict, checked first by :meth:`check_config`.

        Raises:
            TypeError, ValueError: see :meth:`check_config`.
        """
        cls.check_config(config)
        return cls(**_without_spatial_dims(config))


def _without_spatial_dims(config: Any) -> dict[str, Any]:
    """A 2D config without its ``spatial_dims`` key, which must be 2 if present."""
    check_type("config", config, dict)
    config = dict(config)
    spatial_dims = config.pop("spatial_dims", 2)
    if spatial_dims != 2:
        raise ValueError(f"UNet2D needs config spatial_dims == 2, got {spatial_dims!r}")
    return config
