"""Chapter 7: Tables 1-2 (Appendix E), channel GFS on ResNet34 and MobileNetV2
(``config.py``; ``layerwise.py``: pre-training and one layer-wise pruning run; ``cell.py``:
a cell, the calibration of the tolerance and the sweep; ``analysis.py``: the paper's tables
beside ours).
"""
