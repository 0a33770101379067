"""GUI-free helpers of the SneakyNet Slicer module (importable in slicer-core without Qt).

- ``logic``: :class:`BoneSegmentationLogic`, the module's logic on a scene passed in.
- ``volumes``: volume node <-> SimpleITK image (IJK-to-RAS <-> LPS), input checks, file loading.
- ``segments``: segmentation node <-> label map, terminology, .seg.nrrd, closed surfaces.
- ``worker``: a prediction in a worker process (``Scripts/segment_worker.py``), polled by the GUI;
  Cancel kills it, a crash there becomes an error message.
- ``job``: a prediction in a thread of this process (scripts, tests), and error translation.
- ``dependencies``: what must be pip-installed in Slicer, and how (after the user agreed).
- ``render``: offscreen 3D PNG of a segmentation node's closed surfaces.
- ``compat``: the minimum Slicer/Python version and the message an older Slicer shows.
- ``sampledata``: the phantom CT registered with Slicer's Sample Data module.
- ``casenames``: which files are CT volumes (the core's suffixes), case names.
- ``errors``: the user-facing exception classes.
"""
