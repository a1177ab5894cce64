"""Bridges from the operator library to other frameworks, imported only on demand.

* :mod:`resamplers.integrations.mmengine`: every operator in an mmengine registry (scope
  ``resamplers``) for OpenMMLab configs, mmcv's ``build_upsample_layer`` and FLOP handles
  for ``mmengine.analysis``.  Needs ``pip install 'resamplers[mm]'``.
* :mod:`resamplers.integrations.timm`: the downsamplers as timm's anti-aliasing layers
  (``aa_layer=``) and the global pools as a timm model's classifier pool.  Needs ``pip
  install 'resamplers[timm]'``.

This package imports nothing: ``import resamplers`` never loads a framework.
"""
