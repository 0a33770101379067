"""SneakyNet: distinct-bone segmentation of upper-body CT with multi-resolution 3D U-Nets.

Implements Schnider et al., "Improved distinct bone segmentation in upper-body CT through
multi-resolution networks". Importing the package is cheap: it never imports Slicer, Qt or VTK.
"""

__version__ = "0.1.0"
