"""The two baselines gsnn_fast is measured against (never imported by the package).

- :mod:`.reference_style`: pure torch / numpy written the way the pure-torch ``gsnn``
  library does it (Python loops over nodes, batch-replicated index tensors, per-target
  numpy solves, per-row frames, per-sample simulation);
- :mod:`.vectorised`: the best pure torch we could write without custom kernels.

Both compute gsnn_fast's numbers (model, inferer, regressor, simulation);
``tests/test_baselines.py`` checks them against gsnn_fast at small sizes.
"""
