"""Chapters 1-3 and 5: the polytope drawn in the plane, GFS against exhaustive search and
Frank-Wolfe, Lemma 1 on pre-trained networks, Lemma 3's movement, Theorem 1's count and
sigma_min of the feature matrix (``config.py``: their settings; ``runs.py``: the runs).
"""
