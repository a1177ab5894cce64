"""Bridges from the operator library to other frameworks, imported only on demand.

* :mod:`resamplers.integrations.mmengine`: every operator in an mmengine registry (scope
  ``resamplers``) for OpenMMLab configs, mmcv's ``build_upsample_layer`` and FLOP handles
  for ``mmengine.analysis``.  Needs ``pip install 'resamplers[mm]'``.

This package imports nothing: ``import resamplers`` never loads a framework.
"""
