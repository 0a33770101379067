"""Training loss of the paper (§2.2): cross-entropy + soft Dice, target plus context losses."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .models import NetOutput


def soft_dice_loss(logits: torch.Tensor, labels: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """1 - (sum over classes of the soft Dice) / number of classes, over the classes in the batch.

    ``logits`` (B, C, D, H, W), ``labels`` (B, D, H, W) int64. The Dice of each class is taken over
    the whole batch. "Classes" are those present in the batch's reference labels: a class absent
    from the reference has a Dice of ~0 whatever is predicted (eps / (predicted mass + eps)), so it
    would only add a constant and shrink every present bone's weight to 1/126. Measured: with all
    126 classes in the denominator the demo network predicted background everywhere after 1000
    iterations. False positives of absent classes are still penalised by the cross-entropy.
    """
    probs = torch.softmax(logits.float(), dim=1)
    one_hot = F.one_hot(labels, logits.shape[1]).movedim(-1, 1).to(probs.dtype)
    dims = (0, *range(2, logits.ndim))
    intersection = (probs * one_hot).sum(dims)
    reference = one_hot.sum(dims)
    dice = (2 * intersection + eps) / (probs.sum(dims) + reference + eps)
    present = reference > 0
    return 1 - dice[present].sum() / present.sum()


def dice_ce_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy + soft Dice for one branch."""
    return F.cross_entropy(logits.float(), labels) + soft_dice_loss(logits, labels)


def multires_loss(output: NetOutput, target_labels: torch.Tensor,
                  context_labels: list[torch.Tensor] | tuple = ()) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss = target loss + unweighted sum of the context losses (B and D only).

    Returns the loss and its parts (for logging) as floats.
    """
    if len(output.context) > len(context_labels):
        raise ValueError(f"{len(output.context)} context outputs but {len(context_labels)} context label patches")
    total = dice_ce_loss(output.target, target_labels)
    parts = {"target": float(total.detach())}
    for k, (logits, labels) in enumerate(zip(output.context, context_labels), start=1):
        loss_k = dice_ce_loss(logits, labels)
        parts[f"context{k}"] = float(loss_k.detach())
        total = total + loss_k
    parts["total"] = float(total.detach())
    return total, parts
