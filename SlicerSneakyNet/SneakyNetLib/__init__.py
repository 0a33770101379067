"""GUI-free helpers of the SneakyNet Slicer module (importable in slicer-core without Qt).

- ``logic``: :class:`BoneSegmentationLogic`, the module's logic on a scene passed in.
- ``volumes``: volume node <-> SimpleITK image (IJK-to-RAS <-> LPS), input checks, file loading.
- ``segments``: segmentation node <-> label map, terminology, .seg.nrrd, closed surfaces.
- ``job``: a prediction in a worker thread with progress and cancel, polled by the GUI.
- ``dependencies``: what must be pip-installed in Slicer, and how (after the user agreed).
- ``render``: offscreen 3D PNG of a segmentation node's closed surfaces.
- ``casenames``: which files are CT volumes, case names (cheap, no heavy imports).
- ``errors``: the user-facing exception classes.
"""
