"""Phantom v2 ribs: v1's rib paths (head at the vertebral body, tubercle on the transverse process,
angle, downward slope, cartilage to the sternum) with a flattened cross-section.

Beyond the tubercle a real rib is a band about twice as tall as it is thick (adult mid-shaft
about 13 x 6 mm) whose broad faces lie in the chest wall; v1 drew it as a round tube. Each
segment of the tube becomes an elliptic cylinder with its long axis in the chest wall,
across the rib; the head and neck stay round.
"""
from __future__ import annotations

import numpy as np

from sneakynet.phantom.shapes import Capsule, Cylinder, Shape, frame, unit

ROUND_SEGMENTS = 3  # head, neck and tubercle keep v1's round section
HEIGHT, THICKNESS = 1.35, 0.65  # half-axes of the band as multiples of v1's rib radius


def flattened(parts: tuple[Shape, ...], wall_centre: np.ndarray) -> list[Shape]:
    """The rib ``parts`` (v1's capsules, head first) with the shaft as a flat band whose broad faces
    face away from ``wall_centre`` (a point on the chest's axis at the rib's level)."""
    out: list[Shape] = list(parts[:ROUND_SEGMENTS])
    for cap in parts[ROUND_SEGMENTS:]:
        if not isinstance(cap, Capsule):
            out.append(cap)
            continue
        a, b = np.asarray(cap.a, float), np.asarray(cap.b, float)
        d, mid = unit(b - a), (a + b) / 2
        normal = (mid - wall_centre) * np.array([1.0, 1.0, 0.0])
        across = np.cross(unit(normal), d)
        r = (cap.ra + cap.rb) / 2
        out.append(Cylinder(mid, frame(d, across), HEIGHT * r, THICKNESS * r,
                            float(np.linalg.norm(b - a)) / 2 + 0.5 * r, rounding=0.6 * THICKNESS * r))
    return out
