"""Chapter 8's settings (``config.py``): distributed GFS and its cost model; the algorithm
itself is :mod:`labkit.distributed`.
"""
