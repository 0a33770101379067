"""Phantom v2: synthetic CT that looks like real scans (issue 13, part 2).

Same 125-label table and the same drawing primitives as v1, but adult-sized bodies with bone
as a thin cortex around marrow (CT's bone HU distribution), real fields of view (chest,
abdomen-pelvis, neck-chest, whole upper body, anywhere) with the reconstruction circle,
padding and scanner table, arm poses (at the sides, raised, one up, crossed), organs with
contrast phases, calcifications, metal, and slice-thickness blur and noise. Modules:
``skeleton`` (size, density, poses), ``rigid`` (moved shapes), ``body`` (soft tissue and
bright non-bone), ``fov`` (fields of view, spacing), ``render`` (scanner effects), ``generator``.
"""
from sneakynet.phantom.v2.generator import GENERATOR_VERSION, PhantomCaseV2, PhantomV2Options, generate_v2

__all__ = ["GENERATOR_VERSION", "PhantomCaseV2", "PhantomV2Options", "generate_v2"]
