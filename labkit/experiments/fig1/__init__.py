"""Chapter 6: Figure 1 (Section 5), GFS subnetworks against pre-training on sub-datasets of
MNIST or MNIST-1D (``config.py``; ``cell.py``: one (size, width) cell; ``analysis.py``: the
red line, its growth and the verdicts).
"""
