"""Chapter 11: when to stop pre-training (``config.py``; ``rules.py``: the stopping rules
and ``lk.EarlyTicket``; ``cell.py``: one testbed's trajectories; ``analysis.py``: the rules
applied offline, what they saved and cost).
"""
