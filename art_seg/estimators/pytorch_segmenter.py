"""``PyTorchSegmenter``: an ART estimator for PyTorch segmentation networks (2D and 3D)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from art.estimators.pytorch import PyTorchEstimator
from art.preprocessing.standardisation_mean_std.numpy import StandardisationMeanStd
from art.preprocessing.standardisation_mean_std.pytorch import StandardisationMeanStdPyTorch
from tqdm.auto import tqdm

from art_seg._checks import check_choice, check_number, check_type
from art_seg.data.regions import RegionSpec, region_spec
from art_seg.estimators.conversion import (
    ArrayLike,
    LabelForm,
    as_tensor,
    check_array_type,
    check_input,
    check_labels,
    check_voxel_weights,
    like_input,
    to_label_tensor,
)
from art_seg.estimators.prediction import hard_prediction
from art_seg.estimators.segmenter import SegmenterMixin
from art_seg.estimators.sliding_window import SlidingWindow, sliding_window_gradients, sliding_window_logits
from art_seg.losses.deep_supervision import DEEP_SUPERVISION, deep_supervision_loss, deep_supervision_weights
from art_seg.losses.registry import per_sample_loss

LossSpec = str | Callable[..., torch.Tensor]
RegionsSpec = str | RegionSpec | Mapping[str, Iterable[int]]
DeepSupervision = str | Sequence[float] | None


#: Mixed-precision choices for the model's forward pass (``None``: full precision).
AUTOCAST_DTYPES = (None, "bfloat16", "float16")


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or Inf: training stopped before the step, naming the epoch and the batch."""


class PyTorchSegmenter(SegmenterMixin, PyTorchEstimator):
    """ART estimator wrapping a PyTorch network that maps images to per-voxel logits.

    The model maps ``(N, C, *spatial)`` to logits ``(N, K, *spatial)`` with the same spatial size (1, 2 or 3
    spatial dimensions). Because the estimator is a real ``PyTorchEstimator`` (with ``LossGradientsMixin``)
    but not a classifier, ART's ``FastGradientMethod``, ``BasicIterativeMethod`` and
    ``ProjectedGradientDescent`` run against it unchanged, with voxel labels.

    Conventions:

    - channels first; intensities, ``clip_values`` and attack budgets in the units of ``x`` (z-scored
      intensities for art_seg's BraTS pipeline);
    - labels ``y`` are class-index maps ``(N, *spatial)`` (or ``(N, 1, *spatial)``) with values in
      ``[0, K)``, or one-hot/soft maps ``(N, K, *spatial)`` in ``[0, 1]``, numpy or torch;
    - the loss of a batch is the sum of each sample's loss computed on that sample alone, so
      ``loss_gradient`` gives every sample the gradient of its own loss whatever the batch holds;
    - numpy in gives numpy out; torch tensors in give torch tensors out **on the input's device** (ART's rule:
      an output lives where its input came from). The work runs on :attr:`device`: a tensor already there makes
      no copy and no host round trip (unless a numpy-only ART preprocessor is configured); a tensor elsewhere is
      copied to :attr:`device` and the result copied back. Caller arrays are never modified;
    - the model's train/eval mode: every call runs the model in the mode it asks for (``training_mode``, eval
      by default) and then gives every submodule back the mode it had, also when the call raises. The
      constructor puts the model in eval mode once.

    Regions: a region model (``regions=``, ``activation="sigmoid"``, one channel per region, e.g. BraTS WT, TC,
    ET) takes class-index labels and turns them into one mask per region on the way in, everywhere labels enter
    (:meth:`loss_gradient`, :meth:`compute_loss`, :meth:`fit`, :meth:`training_batch`, :meth:`label_tensor`); it also
    takes multi-hot maps ``(N, R, *spatial)`` (bool, 0/1 integers or floats in ``[0, 1]``). A multi-channel sigmoid
    model without ``regions`` takes only maps: class indices raise an error that says to pass ``regions``.
    :meth:`predict_labels` gives the hard prediction (a label map for softmax, one mask per channel for sigmoid)
    and :meth:`to_label_map` turns region masks into a class label map (for writing NIfTI files).

    Deep supervision: a model may return several heads: a list or tuple of logits at decreasing resolution, the
    full-resolution head first (nnU-Net's networks, even in eval mode while ``decoder.deep_supervision`` is on),
    or the heads stacked on dim 1, ``(N, H, K, *spatial)`` (MONAI's ``DynUNet`` in training mode). Prediction,
    gradients, attacks and the sliding window use the full-resolution head; :meth:`fit` (and trainers, through
    :meth:`training_heads` and :meth:`training_loss`) weight every head's loss as ``deep_supervision`` says.

    Sliding window: with ``sliding_window`` set, :meth:`predict`, :meth:`compute_loss`, :meth:`loss_gradient`
    and :meth:`class_gradient` run the model on windows of the preprocessed input and use the stitched logits
    (see :mod:`art_seg.estimators.sliding_window`), so that a whole BraTS volume fits in bounded memory:
    prediction holds one window batch's activations, and gradients are computed window batch by window batch
    (two passes over the windows, exact by the chain rule, not an approximation). ART preprocessing runs on the
    whole volume before windowing (for per-voxel standardisation this is the same as windowing first); a
    preprocessing defence that is not voxel-wise (spatial smoothing, for example) therefore also sees the whole
    volume. :meth:`get_activations`, :meth:`logits`, :meth:`fit` and :meth:`fit_generator` always run the model
    on the whole input (training uses patches).

    Args:
        model: ``torch.nn.Module`` returning logits ``(N, K, *spatial)``, or deep-supervision heads (a list or
            tuple, full resolution first, or a tensor ``(N, H, K, *spatial)``). It is moved to :attr:`device` and
            put in eval mode.
        loss: ``"ce"`` (cross-entropy), ``"dice"`` (soft Dice), ``"generalized_dice"``, ``"dice_ce"``, or a
            callable ``(logits, target) -> scalar tensor`` (given class indices ``int64 (N, *spatial)`` for
            softmax models, or maps ``(N, K, *spatial)``; it may take a ``voxel_weights`` keyword). Wrap MONAI
            losses with :func:`art_seg.losses.monai_loss`.
        input_shape: shape of one sample ``(C, *spatial)``. ``C`` and the number of spatial dimensions are
            enforced; the spatial size may differ between calls (fully convolutional models).
        nb_classes: number of output channels ``K`` (the number of regions for a region model).
        clip_values: ``(min, max)`` of valid input values: scalars, per-channel sequences of length ``C``, or
            arrays broadcastable to ``input_shape``. ``None`` for no bound.
        preprocessing: ``(mean, std)`` scalars or per-channel sequences, applied as ``(x - mean) / std`` in
            torch and differentiated through; ``None`` (the default) for none.
        preprocessing_defences: ART preprocessor(s). Torch ones (``PreprocessorPyTorch``) run on the device
            and are differentiated through; numpy ones go through the host and ART's gradient estimates.
        postprocessing_defences: ART postprocessor(s) applied to predicted probabilities.
        channels_first: must be ``True`` (art_seg is channels-first throughout).
        device_type: ``"gpu"`` to use the current CUDA device when one is available, else ``"cpu"``.
        optimizer: ``torch.optim.Optimizer`` over ``model``'s parameters, needed by :meth:`fit`.
        activation: ``"softmax"`` (mutually exclusive classes) or ``"sigmoid"`` (independent channels, e.g.
            overlapping BraTS regions); used by :meth:`predict`, :meth:`predict_labels` and the named losses.
        regions: for a region model: a preset name from :data:`art_seg.data.REGION_PRESETS` (``"brats"``,
            ``"nnunet_brats"``, ``"monai_brats"``, ``"brats2024"``), a mapping region name -> classes in channel
            order, or a :class:`~art_seg.data.RegionSpec`; needs ``activation="sigmoid"`` and ``nb_classes`` equal
            to the number of regions. ``None`` (the default): channels are classes.
        deep_supervision: how :meth:`fit` and :meth:`training_loss` weight the heads of a deeply supervised model:
            ``"auto"`` (the default: MONAI's weights when every head has the full resolution, as ``DynUNet``'s,
            nnU-Net's when they shrink, as nnU-Net's), ``"nnunet"``, ``"monai"``, ``None`` (the full-resolution
            head only) or one weight per head; see :func:`art_seg.losses.deep_supervision_weights`.
        sliding_window: a :class:`~art_seg.estimators.sliding_window.SlidingWindow` (window size, overlap,
            blending, placement, windows per model call; MONAI's or nnU-Net's exactly) to evaluate inputs window
            by window, or ``None`` (the default) to run the model on whole inputs. Settable with
            :meth:`set_params`.
        autocast: run the model's forward pass under ``torch.autocast`` in ``"bfloat16"`` (CPU and recent GPUs)
            or ``"float16"`` (GPUs), or ``None`` for full precision. Logits are cast back to the input's dtype
            before any loss, so losses, input gradients and attack steps stay in float32; training under
            ``"float16"`` gets no gradient scaling, so prefer ``"bfloat16"`` there. Settable with
            :meth:`set_params`.
        channels_last: keep the model and its inputs in channels-last memory format (``channels_last_3d`` for
            volumes), which speeds up convolutions on recent GPUs and CPUs with oneDNN; results are unchanged.
        compile: run the model through ``torch.compile`` (``True``, or a backend name such as ``"eager"``). The
            compiled module shares the model's parameters; training, predictions and gradients all use it.

    Raises:
        TypeError: ``model`` is not a ``torch.nn.Module``, or an argument has the wrong type.
        ValueError: an unknown loss or activation name, a bad shape, ``clip_values`` with ``min >= max``,
            a non-positive ``std``, an unsupported mix of preprocessors, a ``sliding_window`` whose
            ``roi_size`` does not match the number of spatial dimensions, ``regions`` with ``"softmax"`` or with
            another number of regions than ``nb_classes``, or a bad ``deep_supervision``.

    Example:
        >>> from art_seg.models import UNet3D
        >>> net = UNet3D(in_channels=4, nb_classes=4, base_filters=4, depth=2)
        >>> seg = PyTorchSegmenter(net, "dice_ce", input_shape=(4, 16, 16, 16), nb_classes=4, device_type="cpu")
        >>> seg.predict(np.zeros((1, 4, 16, 16, 16), np.float32)).shape
        (1, 4, 16, 16, 16)
    """

    estimator_params = PyTorchEstimator.estimator_params + [
        "input_shape",
        "nb_classes",
        "loss",
        "activation",
        "optimizer",
        "sliding_window",
        "autocast",
        "regions",
        "deep_supervision",
    ]

    def __init__(
        self,
        model: torch.nn.Module,
        loss: LossSpec = "ce",
        *,
        input_shape: Sequence[int],
        nb_classes: int,
        clip_values: tuple[Any, Any] | None = None,
        preprocessing: tuple[Any, Any] | None = None,
        preprocessing_defences: Any = None,
        postprocessing_defences: Any = None,
        channels_first: bool = True,
        device_type: str = "gpu",
        optimizer: torch.optim.Optimizer | None = None,
        activation: str = "softmax",
        sliding_window: SlidingWindow | None = None,
        autocast: str | None = None,
        channels_last: bool = False,
        compile: bool | str = False,
        regions: RegionsSpec | None = None,
        deep_supervision: DeepSupervision = "auto",
    ) -> None:
        params = _checked_params(
            {
                "model": model, "loss": loss, "input_shape": input_shape, "nb_classes": nb_classes,
                "clip_values": clip_values, "preprocessing": preprocessing, "channels_first": channels_first,
                "device_type": device_type, "optimizer": optimizer, "activation": activation,
                "sliding_window": sliding_window, "autocast": autocast, "channels_last": channels_last,
                "compile": compile, "regions": regions, "deep_supervision": deep_supervision,
            }
        )  # fmt: skip
        super().__init__(
            model=model,
            clip_values=params["clip_values"],
            channels_first=True,
            preprocessing_defences=preprocessing_defences,
            postprocessing_defences=postprocessing_defences,
            preprocessing=params["preprocessing"],
            device_type=device_type,
        )
        self._input_shape = params["input_shape"]
        self._nb_classes = params["nb_classes"]
        self._loss = loss
        self._activation = activation
        self._optimizer = optimizer
        self._sliding_window = sliding_window
        self._autocast = autocast
        self._channels_last = channels_last
        self._compile = compile
        self._regions = params["regions"]
        self._deep_supervision = params["deep_supervision"]
        self._model.eval()
        self._adopt_model()
        self._check_preprocessing_chain()

    # ------------------------------------------------------------------ properties
    @property
    def autocast(self) -> str | None:
        """Mixed precision of the model's forward pass: ``None``, ``"bfloat16"`` or ``"float16"``."""
        return self._autocast

    @property
    def model(self) -> torch.nn.Module:
        """The wrapped ``torch.nn.Module``."""
        return self._model

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample, ``(C, *spatial)``."""
        return self._input_shape

    @property
    def nb_classes(self) -> int:
        """Number of output channels ``K``."""
        return self._nb_classes

    @property
    def activation(self) -> str:
        """``"softmax"`` or ``"sigmoid"``."""
        return self._activation

    @property
    def regions(self) -> RegionSpec | None:
        """The region spec of a region model (one sigmoid channel per region), or ``None``."""
        return self._regions

    @property
    def deep_supervision(self) -> DeepSupervision:
        """How the heads of a deeply supervised model are weighted in training (see the constructor)."""
        return self._deep_supervision

    @property
    def loss(self) -> LossSpec:
        """The training and attack loss: a name from ``art_seg.losses.LOSSES`` or a callable."""
        return self._loss

    @property
    def optimizer(self) -> torch.optim.Optimizer | None:
        """The optimizer used by :meth:`fit`."""
        return self._optimizer

    @property
    def sliding_window(self) -> SlidingWindow | None:
        """How inputs are split into windows, or ``None`` when the model sees whole inputs."""
        return self._sliding_window

    @property
    def device(self) -> torch.device:
        """The device holding the model and every tensor the estimator returns."""
        return self._device

    @property
    def dtype(self) -> torch.dtype:
        """The model's floating dtype; inputs are cast to it (float32 unless the model was converted)."""
        for parameter in self._model.parameters():
            if parameter.is_floating_point():
                return parameter.dtype
        return torch.get_default_dtype()

    @property
    def layer_names(self) -> list[str]:
        """Names of the model's submodules (``model.named_modules()``), usable in :meth:`get_activations`."""
        return [name for name, _ in self._model.named_modules() if name]

    def set_params(self, **kwargs: Any) -> None:
        """Set estimator parameters (names from ``estimator_params``), validated as the constructor validates them.

        All values are checked together, against the current values of the others (``nb_classes`` against
        ``activation``, ``sliding_window`` and ``clip_values`` against ``input_shape``...), before anything is
        set: a rejected call changes nothing. A new ``model`` is moved to :attr:`device` (and compiled when the
        estimator was built with ``compile``); its train/eval mode is left as it is. ``device_type`` cannot change
        (build a new estimator to move to another device).

        Raises:
            TypeError, ValueError: as the constructor, naming the parameter and the value.
        """
        checked = _checked_params({**self._params(), **kwargs})
        if checked["device_type"] != self._device_type:
            raise ValueError(
                f"device_type cannot be changed by set_params (the estimator uses {self._device_type!r}, got "
                f"{checked['device_type']!r}): build a new PyTorchSegmenter"
            )
        super().set_params(**{key: checked.get(key, value) for key, value in kwargs.items()})
        self._check_preprocessing_chain()
        if "model" in kwargs:
            self._adopt_model()

    # ------------------------------------------------------------------ public API
    def predict(
        self, x: ArrayLike, batch_size: int = 4, training_mode: bool = False, logits: bool = False, **kwargs: Any
    ) -> ArrayLike:
        """Per-voxel class probabilities (or logits) for ``x``.

        Args:
            x: images ``(N, C, *spatial)``.
            batch_size: samples per forward pass.
            training_mode: run the model in training mode (dropout, batch statistics).
            logits: return raw logits instead of probabilities (softmax or sigmoid per :attr:`activation`).

        Returns:
            ``(N, K, *spatial)`` in the model's dtype: numpy for numpy ``x``, a tensor on ``x``'s device for
            tensor ``x``. Postprocessing defences apply to probabilities only. With :attr:`sliding_window`,
            the probabilities of the stitched logits, each ``batch_size`` samples split into windows.
        """
        result = self._predict(x, batch_size, training_mode, (lambda out: out) if logits else self._probabilities)
        if not logits and self.postprocessing_defences:
            result = as_tensor(self._apply_postprocessing(result.cpu().numpy(), fit=False))
        return like_input(result, x)

    def predict_labels(
        self, x: ArrayLike, batch_size: int = 4, training_mode: bool = False, **kwargs: Any
    ) -> ArrayLike:
        """The model's hard prediction for ``x``: the one activation-aware step from logits to labels.

        ``"softmax"``: the argmax class per voxel; ``"sigmoid"``: each channel on where its logit is ``> 0``
        (probability ``> 0.5``); see :func:`art_seg.estimators.hard_prediction`. With postprocessing defences,
        the prediction of the postprocessed probabilities (as :meth:`predict` returns them).

        Args:
            x: images ``(N, C, *spatial)``.
            batch_size: samples per forward pass.
            training_mode: run the model in training mode.

        Returns:
            ``"softmax"``: ``int64 (N, *spatial)`` class indices; ``"sigmoid"``: ``bool (N, K, *spatial)``
            masks (one per region for a region model; :meth:`to_label_map` turns them into a label map). Numpy
            for numpy ``x``, a tensor on ``x``'s device for tensor ``x``. With :attr:`sliding_window`, the
            prediction of the stitched logits.
        """
        if self.postprocessing_defences:
            probabilities = as_tensor(self.predict(x, batch_size=batch_size, training_mode=training_mode))
            return like_input(hard_prediction(probabilities, self._activation, from_logits=False), x)
        result = self._predict(x, batch_size, training_mode, lambda out: hard_prediction(out, self._activation))
        return like_input(result, x)

    def to_label_map(self, prediction: ArrayLike) -> ArrayLike:
        """A class-index label map from a hard prediction of :meth:`predict_labels` (for writing NIfTI files).

        - ``"softmax"``: the prediction is already a label map ``(N, *spatial)``; returned as it is;
        - region model: the region masks ``(N, R, *spatial)`` painted into classes by :attr:`regions`
          (:meth:`art_seg.data.RegionSpec.to_label_map`, nnU-Net's ``regions_class_order`` rule);
        - single-channel ``"sigmoid"`` model: the mask ``(N, 1, *spatial)`` as classes 0 and 1.

        Args:
            prediction: numpy or torch, bool or integer, as :meth:`predict_labels` returns it.

        Returns:
            The class label map ``(N, *spatial)``: ``prediction`` itself for softmax, else ``int64``; numpy or a
            tensor on ``prediction``'s device, like ``prediction``.

        Raises:
            ValueError: a prediction of the wrong shape or values, or a multi-channel sigmoid model without
                :attr:`regions` (which class a set of channels means is unknown).
        """
        check_array_type("prediction", prediction)
        spatial_dims = len(self._input_shape) - 1
        if self._activation == "softmax":
            if prediction.ndim != spatial_dims + 1:
                raise ValueError(
                    f"prediction of a softmax model must be a label map (N, *spatial) with {spatial_dims} spatial "
                    f"axes, got shape {tuple(prediction.shape)}"
                )
            return prediction
        if self._regions is not None:
            return self._regions.to_label_map(prediction, spatial_dims=spatial_dims)
        if self._nb_classes == 1:
            return _BINARY.to_label_map(prediction, spatial_dims=spatial_dims)
        raise ValueError(
            f"to_label_map needs regions for a sigmoid model with {self._nb_classes} channels: pass regions= to "
            "PyTorchSegmenter (e.g. 'brats') so that masks can be painted into classes"
        )

    def loss_gradient(
        self,
        x: ArrayLike,
        y: ArrayLike,
        voxel_weights: ArrayLike | None = None,
        loss: LossSpec | None = None,
        training_mode: bool = False,
        **kwargs: Any,
    ) -> ArrayLike:
        """Gradient of each sample's loss with respect to its input, through preprocessing.

        Args:
            x: images ``(N, C, *spatial)``.
            y: class-index maps ``(N, *spatial)`` / ``(N, 1, *spatial)`` or soft maps ``(N, K, *spatial)``.
            voxel_weights: optional non-negative map broadcastable to ``(N, *spatial)`` (a binary mask, for
                example the tumour) restricting and weighting which voxels the loss counts.
            loss: a loss for this call only (name or callable); the estimator's loss by default.
            training_mode: run the model in training mode.

        Returns:
            ``d loss_i / d x_i`` for every sample ``i``, the shape and kind (numpy or tensor) of ``x``. With
            :attr:`sliding_window`, the gradient of the loss of the stitched logits, computed window batch by
            window batch (the model runs twice per window).
        """
        x_t, y_t, w_t = self._prepare(x, y, voxel_weights)
        loss_fn = per_sample_loss(self._loss if loss is None else loss, activation=self._activation)
        (grad,) = self._input_gradients(x_t, lambda out: [loss_fn(out, y_t, w_t).sum()], training_mode)
        return like_input(grad, x)

    def compute_loss(
        self,
        x: ArrayLike,
        y: ArrayLike,
        reduction: str = "none",
        voxel_weights: ArrayLike | None = None,
        loss: LossSpec | None = None,
        batch_size: int = 4,
        training_mode: bool = False,
        **kwargs: Any,
    ) -> ArrayLike:
        """Loss of each sample (``reduction="none"``, shape ``(N,)``), or their ``"mean"`` or ``"sum"``.

        Arguments as in :meth:`loss_gradient`; the result is numpy for numpy ``x``, a tensor otherwise. With
        :attr:`sliding_window`, the loss of the stitched logits.
        """
        check_choice("reduction", reduction, ("none", "mean", "sum"))
        check_number("batch_size", batch_size, low=1, integer=True)
        x_t, y_t, w_t = self._prepare(x, y, voxel_weights)
        loss_fn = per_sample_loss(self._loss if loss is None else loss, activation=self._activation)
        values = []
        with torch.no_grad(), _model_mode(self._model, training_mode):
            for start in range(0, x_t.shape[0], batch_size):
                part = slice(start, start + batch_size)
                logits = self._forward(self._preprocess(x_t[part]))
                values.append(loss_fn(logits, y_t[part], None if w_t is None else w_t[part]))
        result = torch.cat(values)
        result = {"none": result, "mean": result.mean(), "sum": result.sum()}[reduction]
        return like_input(result, x)

    def class_gradient(
        self,
        x: ArrayLike,
        label: int | Sequence[int] | np.ndarray | None = None,
        voxel_weights: ArrayLike | None = None,
        probabilities: bool = False,
        training_mode: bool = False,
        **kwargs: Any,
    ) -> ArrayLike:
        """Gradient of a class's score, summed over voxels (or a weighted region), with respect to the input.

        Args:
            x: images ``(N, C, *spatial)``.
            label: ``None`` for every class, one class index for all samples, or one index per sample ``(N,)``.
            voxel_weights: optional map broadcastable to ``(N, *spatial)``: the score is
                ``sum_v w_v * s_{k, v}``; ``None`` sums over all voxels.
            probabilities: differentiate probabilities instead of logits.
            training_mode: run the model in training mode.

        Returns:
            ``(N, L, C, *spatial)`` with ``L = K`` when ``label`` is ``None``, else ``L = 1`` (ART's layout).
            With :attr:`sliding_window`, gradients of the stitched scores, computed window batch by window batch.
        """
        check_input(x, nb_channels=self._input_shape[0], nb_spatial_dims=len(self._input_shape) - 1)
        x_t = as_tensor(x, device=self._device, dtype=self.dtype)
        n = x_t.shape[0]
        w_t = self._voxel_weights(voxel_weights, x_t)
        labels = self._class_labels(label, n)

        def objectives(out: torch.Tensor) -> list[torch.Tensor]:
            scores = self._probabilities(out) if probabilities else out
            if w_t is not None:
                scores = scores * w_t.unsqueeze(1)
            if labels is None:
                return [scores[:, k].sum() for k in range(self._nb_classes)]
            return [scores[torch.arange(n, device=self._device), labels].sum()]

        grads = self._input_gradients(x_t, objectives, training_mode)
        return like_input(torch.stack(grads, dim=1), x)

    def get_activations(
        self, x: ArrayLike, layer: int | str, batch_size: int = 4, framework: bool = False
    ) -> ArrayLike:
        """Output of one submodule for ``x``.

        Args:
            x: images ``(N, C, *spatial)``.
            layer: a name from :attr:`layer_names` or an index into it.
            batch_size: samples per forward pass.
            framework: keep the autograd graph, and return a tensor (on :attr:`device`) for numpy ``x`` too.

        Returns:
            The layer's output for all samples, concatenated along the first axis. The model always runs on
            the whole input here, even with :attr:`sliding_window` set (a layer's output over windows has no
            single stitched meaning).
        """
        self._check_x(x)
        check_number("batch_size", batch_size, low=1, integer=True)
        module = self._layer(layer)
        captured: list[torch.Tensor] = []
        handle = module.register_forward_hook(lambda _module, _inputs, output: captured.append(output))
        try:
            with torch.set_grad_enabled(framework), _model_mode(self._model, False):
                for start in range(0, x.shape[0], batch_size):
                    x_batch = as_tensor(x[start : start + batch_size], device=self._device, dtype=self.dtype)
                    self._model(self._preprocess(x_batch, differentiable=framework))
        finally:
            handle.remove()
        if not all(isinstance(c, torch.Tensor) for c in captured):
            raise TypeError(f"layer {layer!r} returns {type(captured[0]).__name__}, not a tensor")
        result = torch.cat(captured)
        if isinstance(x, torch.Tensor):
            return like_input(result, x)
        return result if framework else result.detach().cpu().numpy()

    def fit(
        self,
        x: ArrayLike,
        y: ArrayLike,
        batch_size: int = 4,
        nb_epochs: int = 10,
        training_mode: bool = True,
        shuffle: bool = True,
        seed: int | None = None,
        verbose: bool = False,
        **kwargs: Any,
    ) -> None:
        """Train the model with :attr:`optimizer` on the estimator's loss; the model's modes are restored after.

        Each step minimises the mean over the batch of per-sample losses. Preprocessing defences with
        ``apply_fit`` run per batch.

        Args:
            x: images ``(N, C, *spatial)``.
            y: labels in any form :meth:`loss_gradient` takes.
            batch_size: samples per step.
            nb_epochs: passes over the data.
            training_mode: train with dropout and batch statistics on.
            shuffle: reshuffle the samples every epoch.
            seed: seed for the shuffling order (``None``: torch's global generator).
            verbose: show a progress bar with the running loss.

        Raises:
            NonFiniteLossError: the loss of a batch is NaN or Inf (naming the epoch and batch), before its step.
        """
        check_number("batch_size", batch_size, low=1, integer=True)
        check_number("nb_epochs", nb_epochs, low=0, integer=True)
        self._check_x(x)
        form = self.check_labels(y, x)
        self._require_optimizer()
        generator = torch.Generator()
        if seed is not None:
            generator.manual_seed(int(seed))
        else:
            generator.seed()
        n = x.shape[0]
        with _model_mode(self._model, training_mode):
            for epoch in tqdm(range(nb_epochs), desc="PyTorchSegmenter.fit", disable=not verbose):
                order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
                for batch, start in enumerate(range(0, n, batch_size), start=1):
                    index = order[start : start + batch_size]
                    index = index.numpy() if isinstance(x, np.ndarray) else index.to(x.device)
                    self._train_step(x[index], y[index], form, f"epoch {epoch + 1}, batch {batch}")

    def fit_generator(self, generator: Any, nb_epochs: int = 10, verbose: bool = False, **kwargs: Any) -> None:
        """Train on batches from an ART ``DataGenerator`` or any iterable of ``(x, y)`` (a torch ``DataLoader``).

        Every batch is validated and trained on as in :meth:`fit`; labels are never reformatted (unlike
        ART's classifier fast path, which would argmax integer masks).
        """
        from art.data_generators import DataGenerator

        check_number("nb_epochs", nb_epochs, low=0, integer=True)
        self._require_optimizer()
        with _model_mode(self._model, True):
            for epoch in tqdm(range(nb_epochs), desc="PyTorchSegmenter.fit_generator", disable=not verbose):
                batches: Iterable[tuple[Any, Any]]
                if isinstance(generator, DataGenerator):
                    batches = (generator.get_batch() for _ in range(-(-generator.size // generator.batch_size)))
                else:
                    batches = generator
                for batch, (x_batch, y_batch) in enumerate(batches, start=1):
                    self._check_x(x_batch)
                    where = f"epoch {epoch + 1}, batch {batch}"
                    self._train_step(x_batch, y_batch, self.check_labels(y_batch, x_batch), where)

    def training_batch(self, x: ArrayLike, y: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
        """What one training step feeds the model: ``x`` after fit-time preprocessing, and the labels, on the device.

        Validates ``x`` and ``y`` as :meth:`fit` does, then applies ART preprocessing with ``fit=True``
        (augmenting defences such as ``GaussianAugmentation`` may add samples, with their labels). Trainers
        run :attr:`model` on the returned input.

        Returns:
            ``(x_model, labels)``: the model's input ``(N', C, *spatial)`` and labels ``(N', *spatial)`` (class
            indices, softmax models) or ``(N', K, *spatial)`` (maps; a region model's class indices become its
            region masks), device tensors.
        """
        self._check_x(x)
        return self._training_tensors(x, y, self.check_labels(y, x))

    def logits(self, x_model: torch.Tensor, module: torch.nn.Module | None = None) -> torch.Tensor:
        """Run :attr:`model` on an already preprocessed device tensor, in its current mode, with autograd as set by
        the caller, and return the full-resolution logits ``(N, K, *spatial)`` (the first head of a deeply
        supervised model; :meth:`training_heads` gives them all). Always the whole input, even with
        :attr:`sliding_window` set (trainers call it on training patches). ``module``: a wrapper of
        :attr:`model` to run instead (e.g. its ``DistributedDataParallel``), with the same autocast, memory
        format and output check."""
        return self._logits(x_model, module)

    def check_labels(self, y: ArrayLike, x: ArrayLike) -> LabelForm:
        """Validate labels ``y`` for images ``x (N, C, *spatial)`` as every method of this estimator does, once
        for the whole array, and say which form they take (``"index"`` or ``"soft"``); see
        :func:`art_seg.estimators.conversion.check_labels` for the forms this model's activation and
        :attr:`regions` accept.

        Raises:
            TypeError, ValueError: bad labels, named with the offending shape or values.
        """
        return check_labels(
            y,
            batch_shape=(x.shape[0], *x.shape[2:]),
            nb_classes=self._nb_classes,
            activation=self._activation,
            regions=self._regions,
        )

    def label_tensor(self, y: ArrayLike, form: LabelForm, spatial_shape: Sequence[int]) -> torch.Tensor:
        """Labels checked by :meth:`check_labels` as the loss target on :attr:`device` (call it per batch).

        Returns:
            ``int64 (N, *spatial)`` class indices for a softmax model given indices; otherwise maps ``(N, K,
            *spatial)`` in :attr:`dtype` (a region model's class indices become its region masks).
        """
        return to_label_tensor(
            y,
            form,
            spatial_shape=tuple(spatial_shape),
            device=self._device,
            dtype=self.dtype,
            activation=self._activation,
            regions=self._regions,
        )

    def training_heads(self, x_model: torch.Tensor, module: torch.nn.Module | None = None) -> list[torch.Tensor]:
        """Every output head of the model for an already preprocessed device tensor, the full-resolution head
        first: one element for a plain model, all deep-supervision heads otherwise (nnU-Net's list, or
        ``DynUNet``'s stacked heads unbound). Runs like :meth:`logits` (current mode, caller's autograd,
        ``module`` for a wrapper such as ``DistributedDataParallel``); pass the result to :meth:`training_loss`.

        Returns:
            Logits ``(N, K, *spatial_i)`` per head; the first has the input's spatial size.
        """
        return self._heads(x_model, module)

    def head_weights(self, heads: Sequence[torch.Tensor]) -> tuple[float, ...]:
        """The training loss weight of each head (:attr:`deep_supervision`, ``"auto"`` resolved: MONAI's weights
        when every head has the first one's spatial size, nnU-Net's otherwise); ``(1.0,)`` for a single head."""
        kind = self._deep_supervision
        if kind == "auto":
            kind = "monai" if all(h.shape[2:] == heads[0].shape[2:] for h in heads) else "nnunet"
        return deep_supervision_weights(kind, len(heads))

    def training_loss(
        self,
        heads: Sequence[torch.Tensor],
        labels: torch.Tensor,
        loss: LossSpec | None = None,
        voxel_weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Each sample's training loss over all heads: :func:`art_seg.losses.deep_supervision_loss` with
        :meth:`head_weights` (labels resized to each head's size by nearest neighbour); the plain per-sample loss
        for a single head. :meth:`fit` minimises its mean; trainers call it on :meth:`training_heads`.

        Args:
            heads: from :meth:`training_heads`.
            labels: the full-resolution target, e.g. from :meth:`training_batch`: ``int64 (N, *spatial)`` or
                maps ``(N, K, *spatial)``.
            loss: a loss for this call (name or callable), the estimator's :attr:`loss` by default.
            voxel_weights: optional ``(N, *spatial)`` at full resolution.

        Returns:
            ``(N,)`` losses, differentiable with respect to the model's parameters.
        """
        loss_fn = per_sample_loss(self._loss if loss is None else loss, activation=self._activation)
        return deep_supervision_loss(heads, labels, loss_fn, self.head_weights(heads), voxel_weights)

    # ------------------------------------------------------------------ internals
    def _predict(
        self, x: ArrayLike, batch_size: int, training_mode: bool, transform: Callable[[torch.Tensor], torch.Tensor]
    ) -> torch.Tensor:
        """``transform(logits)`` for every batch of ``x``, concatenated, on :attr:`device`, without autograd."""
        self._check_x(x)
        check_number("batch_size", batch_size, low=1, integer=True)
        outputs = []
        with torch.no_grad(), _model_mode(self._model, training_mode):
            for start in range(0, x.shape[0], batch_size):
                x_batch = as_tensor(x[start : start + batch_size], device=self._device, dtype=self.dtype)
                outputs.append(transform(self._forward(self._preprocess(x_batch))))
        return torch.cat(outputs)

    def _params(self) -> dict[str, Any]:
        """The current value of every parameter :func:`_checked_params` validates."""
        return {
            "model": self._model, "loss": self._loss, "input_shape": self._input_shape,
            "nb_classes": self._nb_classes, "clip_values": self._clip_values, "preprocessing": self.preprocessing,
            "channels_first": self._channels_first, "device_type": self._device_type, "optimizer": self._optimizer,
            "activation": self._activation, "sliding_window": self._sliding_window, "autocast": self._autocast,
            "channels_last": self._channels_last, "compile": self._compile, "regions": self._regions,
            "deep_supervision": self._deep_supervision,
        }  # fmt: skip

    def _adopt_model(self) -> None:
        """Move :attr:`model` to the device (and memory format), and compile it if asked; its mode is kept."""
        self._model.to(self._device)
        if self._channels_last:
            self._model.to(memory_format=_channels_last_format(len(self._input_shape) + 1))
        # the compiled module shares the model's parameters; training and attacks go through it
        compile_ = self._compile
        self._compiled = (
            torch.compile(self._model, **({} if compile_ is True else {"backend": compile_})) if compile_ else None
        )
        self._check_preprocessing_chain()

    def _check_x(self, x: ArrayLike) -> None:
        check_input(x, nb_channels=self._input_shape[0], nb_spatial_dims=len(self._input_shape) - 1)

    def _voxel_weights(self, weights: ArrayLike | None, x_t: torch.Tensor) -> torch.Tensor | None:
        if weights is None:
            return None
        batch_shape = (x_t.shape[0], *x_t.shape[2:])
        check_voxel_weights(weights, batch_shape=batch_shape)
        return as_tensor(weights, device=self._device, dtype=self.dtype).expand(batch_shape)

    def _prepare(
        self, x: ArrayLike, y: ArrayLike, voxel_weights: ArrayLike | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Validate ``x``, ``y`` and ``voxel_weights`` together, then convert them to device tensors."""
        self._check_x(x)
        form = self.check_labels(y, x)
        x_t = as_tensor(x, device=self._device, dtype=self.dtype)
        return x_t, self.label_tensor(y, form, tuple(x_t.shape[2:])), self._voxel_weights(voxel_weights, x_t)

    def _class_labels(self, label: Any, n: int) -> torch.Tensor | None:
        if label is None:
            return None
        labels = np.full(n, label) if np.ndim(label) == 0 else np.array(label)
        if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"label must be None, an int or {n} ints (one per sample), got {label!r}")
        if labels.min() < 0 or labels.max() >= self._nb_classes:
            raise ValueError(f"label must lie in [0, {self._nb_classes}), got {label!r}")
        return torch.as_tensor(labels, device=self._device, dtype=torch.long)

    def _preprocess(self, x: torch.Tensor, fit: bool = False, differentiable: bool = False) -> torch.Tensor:
        """Apply ART preprocessing to a device tensor; differentiable when every step is a torch one."""
        if not self.preprocessing_operations:
            return x
        if self.all_framework_preprocessing:
            return self._apply_preprocessing(x, None, fit=fit, no_grad=not differentiable)[0]
        x_np, _ = self._apply_preprocessing(x.detach().cpu().numpy(), None, fit=fit)
        return as_tensor(x_np, device=self._device, dtype=self.dtype)

    def _forward(self, x_preprocessed: torch.Tensor) -> torch.Tensor:
        """Logits for a preprocessed input: the model's on the whole input, or stitched over windows."""
        if self._sliding_window is None:
            return self._logits(x_preprocessed)
        return sliding_window_logits(self._logits, x_preprocessed, self._sliding_window)

    def _logits(self, x_preprocessed: torch.Tensor, module: torch.nn.Module | None = None) -> torch.Tensor:
        """The full-resolution logits ``(N, K, *spatial)`` of the model (or ``module``, a wrapper of it), per
        window with a sliding window."""
        return self._heads(x_preprocessed, module)[0]

    def _heads(self, x_preprocessed: torch.Tensor, module: torch.nn.Module | None = None) -> list[torch.Tensor]:
        """Run the model (or ``module``) under the estimator's memory format and autocast, and split its output
        into heads (:func:`_split_heads`), cast back to the input's dtype."""
        if module is None:
            module = self._model if self._compiled is None else self._compiled
        if self._channels_last:
            x_preprocessed = x_preprocessed.contiguous(memory_format=_channels_last_format(x_preprocessed.ndim))
        if self._autocast is None:
            return _split_heads(module(x_preprocessed), tuple(x_preprocessed.shape), self._nb_classes)
        with torch.autocast(self._device.type, dtype=getattr(torch, self._autocast)):
            out = module(x_preprocessed)
        heads = _split_heads(out, tuple(x_preprocessed.shape), self._nb_classes)
        return [head.to(x_preprocessed.dtype) for head in heads]

    def _probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits, dim=1) if self._activation == "softmax" else torch.sigmoid(logits)

    def _input_gradients(
        self,
        x: torch.Tensor,
        objectives: Callable[[torch.Tensor], list[torch.Tensor]],
        training_mode: bool,
    ) -> list[torch.Tensor]:
        """Gradients of the scalar ``objectives(logits)`` with respect to the raw input ``x``.

        One forward pass serves all objectives; the graph is freed before returning. With a sliding window the
        objectives are of the stitched logits and the gradients are computed window batch by window batch.
        """
        if self._sliding_window is not None:
            return self._windowed_input_gradients(x, objectives, training_mode)
        framework = self.all_framework_preprocessing
        with torch.enable_grad(), _model_mode(self._model, training_mode):
            if framework:
                leaf = x.detach().requires_grad_(True)
                logits = self._logits(self._preprocess(leaf, differentiable=True))
            else:
                x_np = x.detach().cpu().numpy()
                leaf = self._preprocess(x).requires_grad_(True)
                logits = self._logits(leaf)
            outputs = objectives(logits)
            grads = [
                torch.autograd.grad(out, leaf, retain_graph=i < len(outputs) - 1)[0] for i, out in enumerate(outputs)
            ]
        if framework:
            return grads
        return [
            as_tensor(self._apply_preprocessing_gradient(x_np, g.cpu().numpy()), device=self._device, dtype=x.dtype)
            for g in grads
        ]

    def _windowed_input_gradients(
        self,
        x: torch.Tensor,
        objectives: Callable[[torch.Tensor], list[torch.Tensor]],
        training_mode: bool,
    ) -> list[torch.Tensor]:
        """:meth:`_input_gradients` with a sliding window: preprocess the whole volume (keeping the autograd
        graph of torch preprocessing), get the gradients with respect to the model's input window by window,
        then carry them back through preprocessing."""
        framework = self.all_framework_preprocessing
        with torch.enable_grad(), _model_mode(self._model, training_mode):
            if framework:
                leaf = x.detach().requires_grad_(True)
                x_model = self._preprocess(leaf, differentiable=True)
            else:
                x_np = x.detach().cpu().numpy()
                x_model = self._preprocess(x)
            grads = sliding_window_gradients(self._logits, x_model.detach(), self._sliding_window, objectives)
            if framework and x_model is not leaf:
                grads = [
                    torch.autograd.grad(x_model, leaf, g, retain_graph=i < len(grads) - 1)[0]
                    for i, g in enumerate(grads)
                ]
        if framework:
            return grads
        return [
            as_tensor(self._apply_preprocessing_gradient(x_np, g.cpu().numpy()), device=self._device, dtype=x.dtype)
            for g in grads
        ]

    def _train_step(self, x_batch: ArrayLike, y_batch: ArrayLike, form: LabelForm, where: str) -> float:
        """One optimizer step, in the model's current mode; a NaN or Inf loss stops before the step."""
        x_t, y_t = self._training_tensors(x_batch, y_batch, form)
        loss = self.training_loss(self._heads(x_t), y_t).mean()
        if not bool(torch.isfinite(loss.detach())):
            raise NonFiniteLossError(
                f"PyTorchSegmenter.fit: the training loss is not finite ({float(loss.detach())}) at {where}; "
                "stopped before the step (check the weights, the learning rate and the inputs)"
            )
        self._optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self._optimizer.step()
        return float(loss.detach())

    def _training_tensors(self, x: ArrayLike, y: ArrayLike, form: LabelForm) -> tuple[torch.Tensor, torch.Tensor]:
        x_t = as_tensor(x, device=self._device, dtype=self.dtype)
        y_t = self.label_tensor(y, form, tuple(x_t.shape[2:]))
        if self.preprocessing_operations:
            x_t, y_t = self._preprocess_fit(x_t, y_t)
        return x_t, y_t

    def _preprocess_fit(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Preprocessing with ``fit=True``; labels go along, since augmenting defences may duplicate samples."""
        if self.all_framework_preprocessing:
            return self._apply_preprocessing(x, y, fit=True, no_grad=True)
        x_np, y_np = self._apply_preprocessing(x.cpu().numpy(), y.cpu().numpy(), fit=True)
        return (
            as_tensor(x_np, device=self._device, dtype=self.dtype),
            as_tensor(y_np, device=self._device, dtype=y.dtype),
        )

    def _layer(self, layer: int | str) -> torch.nn.Module:
        names = self.layer_names
        if isinstance(layer, str) and layer in names:
            return self._model.get_submodule(layer)
        if isinstance(layer, int) and not isinstance(layer, bool) and -len(names) <= layer < len(names):
            return self._model.get_submodule(names[layer])
        raise ValueError(f"layer must be a name from layer_names or an index below {len(names)}, got {layer!r}")

    def _require_optimizer(self) -> None:
        if self._optimizer is None:
            raise ValueError("optimizer is None: pass a torch.optim.Optimizer to PyTorchSegmenter to train")

    def _check_preprocessing_chain(self) -> None:
        """ART can chain numpy preprocessing only as one step, optionally followed by standardisation."""
        ops = self.preprocessing_operations
        if self.all_framework_preprocessing or len(ops) <= 1:
            return
        if len(ops) == 2 and isinstance(ops[-1], (StandardisationMeanStd, StandardisationMeanStdPyTorch)):
            return
        raise ValueError(
            f"preprocessing_defences mix numpy and torch steps ({[type(p).__name__ for p in ops]}); ART can only "
            "run one numpy step (optionally followed by standardisation). Use PreprocessorPyTorch defences."
        )


#: A single-channel sigmoid model's mask as classes 0 and 1 (see ``PyTorchSegmenter.to_label_map``).
_BINARY = RegionSpec(("foreground",), ((1,),), (1,))


def _split_heads(out: Any, x_shape: tuple[int, ...], nb_classes: int) -> list[torch.Tensor]:
    """A model's output as a list of heads, the full-resolution logits first.

    Accepts logits ``(N, K, *spatial)``; a list or tuple of heads ``(N, K, *spatial_i)``, the first at the
    input's size (nnU-Net); stacked heads ``(N, H, K, *spatial)`` (MONAI ``DynUNet`` in training mode).

    Raises:
        ValueError: anything else, saying what the estimator expects.
    """
    n, spatial = x_shape[0], tuple(x_shape[2:])
    expected = (n, nb_classes, *spatial)
    if isinstance(out, torch.Tensor):
        if tuple(out.shape) == expected:
            return [out]
        if out.ndim == len(expected) + 1 and tuple(out.shape[:1] + out.shape[2:]) == expected:
            return list(out.unbind(1))
    elif isinstance(out, (list, tuple)) and out and all(isinstance(h, torch.Tensor) for h in out):
        main_ok = tuple(out[0].shape) == expected
        heads_ok = all(
            h.ndim == len(expected)
            and tuple(h.shape[:2]) == expected[:2]
            and all(s <= t for s, t in zip(h.shape[2:], spatial))
            for h in out[1:]
        )
        if main_ok and heads_ok:
            return list(out)
    if isinstance(out, torch.Tensor):
        got = f"a tensor of shape {tuple(out.shape)}"
    elif isinstance(out, (list, tuple)):
        got = f"a {type(out).__name__} of " + ", ".join(
            str(tuple(h.shape)) if isinstance(h, torch.Tensor) else type(h).__name__ for h in out
        )
    else:
        got = type(out).__name__
    raise ValueError(
        f"model must return logits of shape {expected} (N, K, *spatial), deep-supervision heads as a list or tuple "
        f"with the full-resolution head {expected} first (nnU-Net) and others (N, K, *smaller), or heads stacked on "
        f"dim 1 {(n, 'H', *expected[1:])} (MONAI DynUNet); got {got}. Check nb_classes and input_shape, or wrap "
        "the model so that it returns one of these"
    )


@contextmanager
def _model_mode(model: torch.nn.Module, training: bool) -> Iterator[None]:
    """Run the block with ``model.train(training)``, then give every submodule back the mode it had (a frozen
    batch-norm inside a model in training mode stays frozen), also when the block raises."""
    before = [(module, module.training) for module in model.modules()]
    model.train(training)
    try:
        yield
    finally:
        for module, mode in before:
            module.training = mode


def _checked_params(params: dict[str, Any]) -> dict[str, Any]:
    """Validate the constructor's parameters together; the one check behind ``__init__`` and ``set_params``.

    Args:
        params: every parameter of :class:`PyTorchSegmenter` except the ART pre/postprocessing defences (ART checks
            those), by name.

    Returns:
        ``params`` with normalised values: ``input_shape`` a tuple of ints, ``nb_classes`` an int,
        ``clip_values`` a pair of float32 arrays broadcastable to ``input_shape`` (or ``None``), ``preprocessing``
        ART's torch standardisation (or ``None``); the others as given.

    Raises:
        TypeError, ValueError: a value of the wrong type or out of range, naming the parameter and the value.
    """
    checked = dict(params)
    check_type("model", params["model"], torch.nn.Module)
    input_shape = checked["input_shape"] = _check_input_shape(params["input_shape"])
    _check_sliding_window(params["sliding_window"], input_shape)
    check_choice("autocast", params["autocast"], AUTOCAST_DTYPES)
    check_type("channels_last", params["channels_last"], bool)
    check_type("compile", params["compile"], (bool, str))
    nb_classes, activation = params["nb_classes"], params["activation"]
    check_number("nb_classes", nb_classes, low=1, integer=True)
    checked["nb_classes"] = int(nb_classes)
    check_choice("activation", activation, ("softmax", "sigmoid"))
    if activation == "softmax" and nb_classes < 2:
        raise ValueError(f"nb_classes must be >= 2 with activation='softmax', got {nb_classes}; use 'sigmoid'")
    check_choice("device_type", params["device_type"], ("cpu", "gpu"))
    if params["channels_first"] is not True:
        raise ValueError(f"channels_first must be True (art_seg is channels-first), got {params['channels_first']!r}")
    per_sample_loss(params["loss"], activation=activation)  # validates the name or callable now, not at first use
    if params["optimizer"] is not None:
        check_type("optimizer", params["optimizer"], torch.optim.Optimizer)
    checked["clip_values"] = _clip_values(params["clip_values"], input_shape)
    checked["preprocessing"] = _standardisation(params["preprocessing"], input_shape, params["device_type"])
    regions = checked["regions"] = None if params["regions"] is None else region_spec(params["regions"])
    if regions is not None:
        if activation != "sigmoid":
            raise ValueError(
                f"regions need activation='sigmoid' (one independent channel per region), got {activation!r}"
            )
        if nb_classes != regions.nb_regions:
            raise ValueError(
                f"nb_classes must equal the number of regions {regions.nb_regions} {regions.names}, got {nb_classes}"
            )
    kind = params["deep_supervision"]
    if kind is None or isinstance(kind, str):
        check_choice("deep_supervision", kind, ("auto", *DEEP_SUPERVISION, None))
    else:
        check_type("deep_supervision", kind, (list, tuple))
        deep_supervision_weights(kind, len(kind))
        checked["deep_supervision"] = tuple(float(w) for w in kind)
    return checked


def _channels_last_format(ndim: int) -> torch.memory_format:
    """``channels_last_3d`` for 5-D (volume) tensors, ``channels_last`` for 4-D (image) ones, else contiguous."""
    return {5: torch.channels_last_3d, 4: torch.channels_last}.get(ndim, torch.contiguous_format)


def _check_sliding_window(sliding_window: Any, input_shape: tuple[int, ...]) -> None:
    check_type("sliding_window", sliding_window, (SlidingWindow, type(None)))
    if sliding_window is not None:
        sliding_window.roi(len(input_shape) - 1)  # raises if roi_size has the wrong number of dimensions


def _check_input_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else None
    if shape is None or not 2 <= len(shape) <= 4 or not all(isinstance(s, (int, np.integer)) and s > 0 for s in shape):
        raise ValueError(f"input_shape must be (C, *spatial) with 1 to 3 positive spatial sizes, got {input_shape!r}")
    return tuple(int(s) for s in shape)


def _per_channel(name: str, value: Any, input_shape: tuple[int, ...]) -> np.ndarray:
    """A scalar, a per-channel sequence of length ``C``, or an array broadcastable to ``input_shape``."""
    array = np.asarray(value, dtype=np.float32)
    if array.ndim == 1 and array.shape[0] == input_shape[0]:
        array = array.reshape((-1,) + (1,) * (len(input_shape) - 1))
    try:
        np.broadcast_shapes(array.shape, input_shape)
    except ValueError:
        raise ValueError(
            f"{name} must be a scalar, {input_shape[0]} per-channel values or broadcastable to {input_shape}, "
            f"got shape {array.shape}"
        ) from None
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite, got {value!r}")
    return array


def _per_channel_pair(name: str, pair: Any, input_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray] | None:
    if pair is None:
        return None
    if not isinstance(pair, (tuple, list, np.ndarray)) or len(pair) != 2:
        raise ValueError(f"{name} must be a (min, max) or (mean, std) pair, got {pair!r}")
    first, second = (_per_channel(name, v, input_shape) for v in pair)
    shape = np.broadcast_shapes(first.shape, second.shape)
    return np.broadcast_to(first, shape).copy(), np.broadcast_to(second, shape).copy()


def _clip_values(clip_values: Any, input_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray] | None:
    pair = _per_channel_pair("clip_values", clip_values, input_shape)
    if pair is not None and (pair[0] >= pair[1]).any():
        raise ValueError(f"clip_values must have min < max everywhere, got {clip_values!r}")
    return pair


def _standardisation(
    preprocessing: Any, input_shape: tuple[int, ...], device_type: str
) -> StandardisationMeanStdPyTorch | None:
    """Build ART's torch standardisation (so gradients flow through it) from a ``(mean, std)`` pair; one already
    built (what :meth:`PyTorchSegmenter.get_params` returns) is checked against ``input_shape`` and kept."""
    if isinstance(preprocessing, StandardisationMeanStdPyTorch):
        _per_channel_pair("preprocessing", (preprocessing.mean, preprocessing.std), input_shape)
        return preprocessing
    pair = _per_channel_pair("preprocessing", preprocessing, input_shape)
    if pair is None:
        return None
    mean, std = pair
    if (std <= 0).any():
        raise ValueError(f"preprocessing std must be > 0, got {preprocessing[1]!r}")
    return StandardisationMeanStdPyTorch(mean=mean, std=std, device_type=device_type)


__all__ = ["PyTorchSegmenter"]
