"""Chapter 4: how much pre-training Theorem 3's threshold needs, in the theorem's regime
(``config.py``: settings and presets; ``cell.py``: one (m, N, d, step rule) cell on the CPU,
``cell_gpu.py`` the same on a GPU; ``analysis.py``: thresholds, growth laws, verdicts).
"""
