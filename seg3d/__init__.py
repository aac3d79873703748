"""seg3d: DeepMedic-style 3D CNN segmentation of medical volumes.

The package is laid out as the data flows: ``io`` (files to volumes), ``data``
(cases and datasets), ``preprocessing`` (and its exact inverse), ``sampling``
(training segments), ``model``, ``training``, ``inference``, ``postprocessing``
(CRF, connected components) and ``metrics``.
"""

__version__ = "0.1.0"
