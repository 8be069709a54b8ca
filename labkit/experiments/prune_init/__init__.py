"""Chapter 9: Yang et al.'s pruning at initialization on signal-plus-noise patches and the
bridge to GFS (``config.py``; ``cell.py``: one (signal, seed) cell; ``analysis.py``).
"""
