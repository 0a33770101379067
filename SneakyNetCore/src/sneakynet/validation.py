"""Validation during training: the mean class-wise DSC of the fold's validation cases (rank 0).

``val_mode="cases"`` predicts whole cases with the sliding-window :class:`sneakynet.infer.Predictor`;
``val_mode="patches"`` scores a fixed set of sampled validation patches (cheap, for tests).
Partially labelled cases (:mod:`sneakynet.label_sets`) are scored on their certain voxels only.
"""
from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from sneakynet.bundle import unwrap_model
from sneakynet.intensity import CTNormalization
from sneakynet.models import NetConfig
from sneakynet.train_options import TrainOptions


class Validator:
    """Scores the network on the fold's validation cases (rank 0); see the module docstring."""

    def __init__(self, cases: list, config: NetConfig, options: TrainOptions, device: torch.device) -> None:
        self.cases, self.config, self.options, self.device = cases, config, options, device
        self.patches: list[dict] = []
        self.sets = {c.case_id: c.sets for c in cases if c.sets is not None}
        if cases and options.val_mode == "patches":
            from sneakynet.sampler import AugmentOptions, PatchDataset, SamplerOptions

            sampler = SamplerOptions(patch_size=config.patch_size, num_context=config.num_context,
                                     class_balance=0.5, seed=options.seed + 7919, augment=AugmentOptions.none())
            ds = PatchDataset(cases, sampler, rank=0, world_size=1, samples_per_epoch=options.val_patches)
            self.patches = [ds[j] for j in range(options.val_patches)]

    @property
    def enabled(self) -> bool:
        return bool(self.cases)

    @torch.no_grad()
    def __call__(self, model: nn.Module) -> dict[str, float]:
        """``val_dsc`` (mean class-wise DSC over evaluated bones), the paper's summary, ``val_seconds``."""
        from sneakynet.metrics import aggregate_cases, dice_from_confusion, summarize

        t0 = time.perf_counter()
        net = unwrap_model(model)
        was_training = net.training
        net.eval()
        try:
            if self.options.val_mode == "patches":
                cm = 0
                for start in range(0, len(self.patches), max(1, self.options.batch_size)):
                    chunk = self.patches[start:start + max(1, self.options.batch_size)]
                    images = [torch.stack([p["image"][k] for p in chunk]).to(self.device)
                              for k in range(self.config.num_context + 1)]
                    ref = torch.stack([p["labels"][0] for p in chunk]).numpy()
                    pred = net(images[0], images[1:], with_context_logits=False).target.argmax(1)
                    pred = pred.to(torch.uint8).cpu().numpy()
                    for i, p in enumerate(chunk):
                        cm = cm + _certain_confusion(pred[i], ref[i], self.sets.get(p["case"]))
                dsc = dice_from_confusion(cm)
            else:
                from sneakynet.infer import Predictor

                predictor = Predictor.from_model(net, self.options.spacing,
                                                 CTNormalization.from_dict(self.options.normalization),
                                                 device=str(self.device), log=lambda message: None)
                per_case = []
                for case in self.cases:
                    pred = predictor.predict_array(case.image)
                    per_case.append(dice_from_confusion(_certain_confusion(pred, case.labels, case.sets)))
                dsc = aggregate_cases(per_case)
        finally:
            net.train(was_training)
        summary = summarize(dsc)
        finite = dsc[np.isfinite(dsc)]
        return {"val_dsc": float(finite.mean()) if finite.size else float("nan"),
                "val_median": summary["median"], "val_nonzero_pct": summary["nonzero_pct"],
                "val_n_evaluated": summary["n_evaluated"], "val_seconds": time.perf_counter() - t0}


def _certain_confusion(pred: np.ndarray, ref: np.ndarray, sets) -> np.ndarray:
    """Confusion matrix of ``pred`` against ``ref``; with label ``sets``, over the certain voxels only."""
    from sneakynet.metrics import confusion_matrix

    if sets is None:
        return confusion_matrix(pred, ref.astype(np.uint8, copy=False))
    labels, certain = sets.resolve(ref)
    return confusion_matrix(pred[certain], labels[certain])


__all__ = ["Validator"]
