"""Synthetic upper-body CT phantoms with all 125 bones of the SneakyNet label table.

Each case is a SimpleITK CT (int16 HU) and label map (uint8, ids of :mod:`sneakynet.labels`,
0 = background) on the same grid, in ITK LPS physical space: x to the patient's Left, y to
Posterior, z to Superior. Bones named ``*_left`` lie at +x. The body spans the vertex of the
head to just below the hands and the lesser trochanters (the femurs are cut by the field of
view); arms hang beside the body with slightly flexed elbows, hands at hip level.

Left and right bones are exact mirror images, and neighbouring ribs and vertebrae differ only
slightly, so a network that sees a small patch cannot tell them apart: only a wide field of
view can. This is the failure the multi-resolution networks address.

Small bones: hand bones keep a radius of at least 2.4 mm, so at 2 mm spacing every bone covers
several voxels (smallest: the thumb sesamoids and pisiforms, about 8-12 voxels; distal
phalanges about 20). At 3 mm they keep 2-4 voxels. At 4 mm the sesamoids, pisiforms and
sometimes a trapezoid shrink to 1-2 voxels; a bone whose surface encloses no voxel centre at
all gets the voxel nearest a point inside it (``PhantomCase.placed_by_anchor`` names them), so
every one of the 125 labels is present at any spacing up to 4 mm. Coarser than that, hand bones
start to compete for the same voxels and labels may vanish.

Everything random comes from ``numpy.random.Generator`` streams seeded by the case seed:
the anatomy depends on the seed only; spacing, rotation and margins on the seed and options.
The same seed and options give identical arrays.

Modules: ``shapes`` (signed distance primitives), ``skeleton`` (bone placement), ``body``
(soft tissue, lungs, organs), ``grid`` (voxel geometry), ``ct`` (drawing), ``generator`` (API).

This is phantom version 1, which the bundled demo model was trained on. Version 2
(:mod:`sneakynet.phantom.v2`, ``generate(seed, PhantomV2Options(), version=2)``) looks like
real CT: adult size, marrow-filled bones, real fields of view, arm poses, scanner effects.
"""
from sneakynet.phantom.generator import (
    SIZE_PRESETS,
    PhantomCase,
    PhantomOptions,
    case_name,
    generate,
    generate_case,
    options_for_size,
    write_cases,
)
from sneakynet.phantom.v2 import PhantomCaseV2, PhantomV2Options, generate_v2

__all__ = [
    "SIZE_PRESETS",
    "PhantomCase",
    "PhantomCaseV2",
    "PhantomV2Options",
    "PhantomOptions",
    "case_name",
    "generate",
    "generate_case",
    "generate_v2",
    "options_for_size",
    "write_cases",
]
