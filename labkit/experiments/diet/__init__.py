"""Chapter 10: lottery tickets on a data diet (Paul et al. 2022) and GFS's red line against
the pre-training data (``config.py``; ``resnet.py``: the network; ``cell.py``: one IMP or
GFS cell; ``analysis.py``).
"""
