"""Training loss of the paper (§2.2): cross-entropy + soft Dice, target plus context losses.

With set-valued labels (:mod:`sneakynet.label_sets`) the loss is the *marginal* form: a voxel
whose label value stands for the set ``S`` of classes has the cross-entropy
``-log sum_{c in S} p_c`` (any split of the probability inside the set is right), and the soft
Dice of class ``c`` takes as reference the voxels whose set is exactly ``{c}`` while leaving out of
its predicted mass the voxels whose set holds ``c`` among other classes (there, predicting ``c``
is neither right nor wrong). A background voxel of a partially annotated case (set = background
∪ unannotated bones) therefore never pushes an unannotated bone's probability down, and a class
with no certain voxel in the batch adds no Dice term. Where every set is a single class both
forms are today's loss (tested to 1e-6); without sets the original code runs unchanged.
"""
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


def label_membership(labels: torch.Tensor, sets: torch.Tensor) -> torch.Tensor:
    """(B, C, D, H, W) bool: class c is in the set of the voxel's label value.

    ``labels`` (B, D, H, W) int64 values, ``sets`` (B, V, C) bool: row v of sample b = the classes
    label value v of that sample's case stands for (:meth:`sneakynet.label_sets.LabelSets.tables`).
    """
    b, v, c = sets.shape
    offset = (torch.arange(b, device=labels.device) * v).view(b, *([1] * (labels.ndim - 1)))
    return sets.reshape(b * v, c)[labels + offset].movedim(-1, 1)


def marginal_ce_loss(logits: torch.Tensor, member: torch.Tensor) -> torch.Tensor:
    """Mean over voxels of ``-log sum_{c in S} p_c`` (``member`` from :func:`label_membership`)."""
    logits = logits.float()
    in_set = torch.logsumexp(logits.masked_fill(~member, float("-inf")), dim=1)
    return (torch.logsumexp(logits, dim=1) - in_set).mean()


def marginal_soft_dice_loss(logits: torch.Tensor, member: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Soft Dice with certain references only (see the module docstring); 0 when no class is certain."""
    probs = torch.softmax(logits.float(), dim=1)
    single = member.sum(1, keepdim=True) == 1
    certain = (member & single).to(probs.dtype)
    counted = (~member | single).to(probs.dtype)  # ambiguous voxels leave class c's predicted mass
    dims = (0, *range(2, logits.ndim))
    intersection = (probs * certain).sum(dims)
    reference = certain.sum(dims)
    dice = (2 * intersection + eps) / ((probs * counted).sum(dims) + reference + eps)
    present = reference > 0
    n = present.sum()
    return (n - dice[present].sum()) / n.clamp(min=1)


def marginal_dice_ce_loss(logits: torch.Tensor, labels: torch.Tensor, sets: torch.Tensor) -> torch.Tensor:
    """Marginal cross-entropy + marginal soft Dice for one branch (``sets`` as in :func:`label_membership`)."""
    member = label_membership(labels, sets)
    return marginal_ce_loss(logits, member) + marginal_soft_dice_loss(logits, member)


def _branch_loss(logits: torch.Tensor, labels: torch.Tensor, sets: torch.Tensor | None) -> torch.Tensor:
    return dice_ce_loss(logits, labels) if sets is None else marginal_dice_ce_loss(logits, labels, sets)


def multires_loss(output: NetOutput, target_labels: torch.Tensor, context_labels: list[torch.Tensor] | tuple = (),
                  sets: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss = target loss + unweighted sum of the context losses (B and D only).

    ``sets`` (B, V, C) bool: the label sets of each sample's case (None: every value is its own
    class, today's loss); the context levels' labels use the same sets. Returns the loss and its
    parts (for logging) as floats.
    """
    if len(output.context) > len(context_labels):
        raise ValueError(f"{len(output.context)} context outputs but {len(context_labels)} context label patches")
    total = _branch_loss(output.target, target_labels, sets)
    parts = {"target": float(total.detach())}
    for k, (logits, labels) in enumerate(zip(output.context, context_labels), start=1):
        loss_k = _branch_loss(logits, labels, sets)
        parts[f"context{k}"] = float(loss_k.detach())
        total = total + loss_k
    parts["total"] = float(total.detach())
    return total, parts
