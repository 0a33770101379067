"""Scoring bone label maps on real CT against partial, coarse references (TotalSegmentator).

>>> score = evaluate_case("ct.nii.gz", "pred.nii.gz", "seg_totalseg.nii.gz", exclude=["femur_left"])
>>> print(format_table([("case", score)]))

See ``docs/realct.md`` for what each measure means and how the reference-free checks were
calibrated on the references.
"""
from __future__ import annotations

import os
from typing import Sequence

import SimpleITK as sitk

from sneakynet.realct.reference import (
    REFERENCE_FORMATS,
    RealCTInputError,
    coarse_merges,
    exclusion_ids,
    prediction_on_grid,
    read_ct,
    reference_on_grid,
)
from sneakynet.realct.report import format_bones, format_table
from sneakynet.realct.scoring import RealCTScore, score_case

__all__ = ["REFERENCE_FORMATS", "RealCTInputError", "RealCTScore", "evaluate_case", "format_bones", "format_table"]


def evaluate_case(ct: str | os.PathLike | sitk.Image, prediction: str | os.PathLike | sitk.Image,
                  reference: str | os.PathLike | sitk.Image, reference_format: str = "totalseg",
                  exclude: Sequence[str] = ()) -> RealCTScore:
    """Score a predicted SneakyNet label map on a real CT against a reference label map.

    Prediction and reference are resampled onto the CT's grid in physical space (nearest
    neighbour); ``exclude`` names the SneakyNet bones the case's notes say not to score.
    Bad input raises :class:`RealCTInputError` naming the file.
    """
    exclude_ids = exclusion_ids(exclude)
    image = read_ct(ct) if not isinstance(ct, sitk.Image) else sitk.Cast(ct, sitk.sitkFloat32)
    pred = prediction_on_grid(prediction, image)
    ref = reference_on_grid(reference, image, reference_format)
    try:
        return score_case(image, pred, ref, exclude_ids, coarse_merges(reference_format))
    except ValueError as exc:
        raise RealCTInputError(f"{ct if not isinstance(ct, sitk.Image) else 'CT'}: {exc}") from None
