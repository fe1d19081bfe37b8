"""gsnn_fast benchmark suite (pytest-benchmark); ``python -m benchmarks.run`` regenerates
``benchmarks/results/<machine>.{json,md,png}``. See benchmarks/README.md."""
