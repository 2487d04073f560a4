"""Adapters that let other libraries' losses serve as art_seg attack and training losses.

art_seg hands a callable loss ``(logits, target)`` with class-index targets ``int64 (N, *spatial)`` or maps
``(N, K, *spatial)`` (one-hot, multi-hot regions or soft). MONAI's losses expect index targets with a channel
axis, ``(N, 1, *spatial)``, and fail on ``(N, *spatial)``: :func:`monai_loss` inserts it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from art_seg._checks import check_type


class MonaiLossAdapter(torch.nn.Module):
    """Wrap a MONAI loss so that it takes art_seg's targets.

    Class indices ``(N, *spatial)`` reach the loss as ``(N, 1, *spatial)`` in the logits' dtype (MONAI's
    ``to_onehot_y=True`` convention); maps ``(N, K, *spatial)`` (one-hot, multi-hot or soft) pass as they are.

    Note:
        MONAI's ``DiceCELoss`` applies *softmax* cross-entropy to multi-channel inputs even with
        ``sigmoid=True``, which is wrong for overlapping regions (BraTS WT, TC, ET); for region models prefer
        art_seg's ``"dice_ce"`` with ``activation="sigmoid"`` (binary cross-entropy per channel), or MONAI's
        ``DiceLoss(sigmoid=True)``.

    Args:
        loss: a MONAI loss (or any callable ``(input (N, K, *spatial), target) -> scalar tensor``).

    Example:
        >>> from monai.losses import DiceCELoss  # doctest: +SKIP
        >>> seg = PyTorchSegmenter(net, monai_loss(DiceCELoss(to_onehot_y=True, softmax=True)), ...)  # doctest: +SKIP
    """

    def __init__(self, loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        if not callable(loss):
            raise TypeError(f"loss must be a callable MONAI loss, got {type(loss).__name__} ({loss!r})")
        self.loss = loss

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``loss(logits, target)`` with index targets ``(N, *spatial)`` given a channel axis.

        Args:
            logits: ``(N, K, *spatial)``.
            target: ``int64 (N, *spatial)`` class indices or floating ``(N, K, *spatial)`` maps.

        Returns:
            Whatever the wrapped loss returns (a scalar for MONAI's default ``reduction="mean"``).
        """
        check_type("logits", logits, torch.Tensor)
        check_type("target", target, torch.Tensor)
        if target.ndim == logits.ndim - 1:
            target = target.unsqueeze(1).to(logits.dtype)
        return self.loss(logits, target)

    def extra_repr(self) -> str:
        return f"loss={self.loss!r}" if not isinstance(self.loss, torch.nn.Module) else ""


def monai_loss(loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> MonaiLossAdapter:
    """A MONAI loss as an art_seg loss: ``PyTorchSegmenter(net, monai_loss(DiceCELoss(to_onehot_y=True,
    softmax=True)), ...)``; see :class:`MonaiLossAdapter`."""
    return MonaiLossAdapter(loss)


__all__ = ["MonaiLossAdapter", "monai_loss"]
