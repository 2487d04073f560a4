"""From a model's scores to a hard prediction: the one activation-aware step every scorer uses.

- ``"softmax"`` (mutually exclusive classes): the class of highest score, a label map ``int64 (N, *spatial)``;
  ties go to the lowest class index;
- ``"sigmoid"`` (independent channels, e.g. overlapping regions): one mask per channel ``bool (N, K, *spatial)``,
  on where the logit is ``> 0``, i.e. the probability ``> 0.5``.

:meth:`art_seg.estimators.PyTorchSegmenter.predict_labels` applies it to a model's output; attacks, trainers and
metrics that hold logits or probabilities call :func:`hard_prediction` themselves.
"""

from __future__ import annotations

import numpy as np
import torch

from art_seg._checks import check_choice, check_type

ArrayLike = np.ndarray | torch.Tensor


def hard_prediction(scores: ArrayLike, activation: str, from_logits: bool = True) -> ArrayLike:
    """The hard prediction of logits or probabilities.

    Args:
        scores: ``(N, K, *spatial)`` logits (``from_logits=True``) or probabilities, numpy or torch.
        activation: ``"softmax"`` or ``"sigmoid"``.
        from_logits: whether ``scores`` are logits (threshold 0 for ``"sigmoid"``) or probabilities (threshold
            0.5). The argmax of ``"softmax"`` is the same for both.

    Returns:
        ``"softmax"``: ``int64 (N, *spatial)`` class indices; ``"sigmoid"``: ``bool (N, K, *spatial)`` masks.
        Numpy for numpy ``scores``, a tensor on their device otherwise.

    Raises:
        TypeError: ``scores`` is not a floating array or tensor, or ``from_logits`` is not a bool.
        ValueError: an unknown ``activation``, or fewer than 2 axes.

    Example:
        >>> hard_prediction(np.array([[0.2, -0.1], [0.3, 0.4]]), "sigmoid").tolist()
        [[True, False], [True, True]]
        >>> hard_prediction(np.array([[0.2, -0.1], [0.3, 0.4]]), "softmax").tolist()
        [1, 1]
    """
    check_choice("activation", activation, ("softmax", "sigmoid"))
    check_type("from_logits", from_logits, bool)
    check_type("scores", scores, (np.ndarray, torch.Tensor))
    if isinstance(scores, torch.Tensor):
        floating = scores.is_floating_point()
    else:
        floating = np.issubdtype(scores.dtype, np.floating)
    if not floating:
        raise TypeError(f"scores must be floating logits or probabilities, got dtype {scores.dtype}")
    if scores.ndim < 2:
        raise ValueError(f"scores must have shape (N, K, *spatial), got shape {tuple(scores.shape)}")
    if activation == "softmax":
        return scores.argmax(1) if isinstance(scores, torch.Tensor) else scores.argmax(1).astype(np.int64)
    return scores > (0.0 if from_logits else 0.5)


__all__ = ["hard_prediction"]
