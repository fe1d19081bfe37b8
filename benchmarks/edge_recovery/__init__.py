"""Edge-recovery benchmark: held-out function -> function edges on several graph families.

``python -m benchmarks.edge_recovery [--quick] [--out DIR]``; see docs/EDGE_RECOVERY.md.
"""
