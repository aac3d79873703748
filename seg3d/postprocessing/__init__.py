"""Dense CRF and connected components, applied to class probabilities.

Modules (imported on use; the CRF needs torch):

- ``crf``: :func:`~seg3d.postprocessing.crf.apply_crf`, the fully connected 3D
  CRF over a case's ROI, and the tensor-level ``mean_field``;
- ``crf_params``: :class:`~seg3d.postprocessing.crf_params.CrfParams`;
- ``tuning``: :func:`~seg3d.postprocessing.tuning.tune_crf`, a parameter search
  on labelled cases;
- ``components``: :func:`~seg3d.postprocessing.components.filter_components`;
- ``lattice`` and ``gaussian``: the two filters behind the CRF;
- ``case_grid``, ``settings``, ``probability_files``: the CRF for a case on its
  own grid, the postprocessing stored with a model, and probability maps on
  disk.

See ``docs/crf.md``.
"""
