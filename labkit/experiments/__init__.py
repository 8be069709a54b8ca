"""One subpackage per chapter that runs an experiment: its settings and presets
(``config.py``), what one cell of its sweep computes (``cell.py``, with the code digest in
the cell's key), and its analysis (``analysis.py``). ``labkit.config`` maps the experiment
names to them; the chapters' figures are in :mod:`labkit.plotting`.

- ``theory``: chapters 1-3 and 5 (the polytope, GFS and Frank-Wolfe, Lemma 1, sigma_min);
- ``threshold``: chapter 4 (how much pre-training Theorem 3 needs);
- ``fig1``: chapter 6 (Figure 1);
- ``tables``: chapter 7 (Tables 1-2, deep networks);
- ``distributed``: chapter 8's settings (the algorithm is :mod:`labkit.distributed`);
- ``prune_init``: chapter 9 (pruning at initialization, Yang et al. 2023);
- ``diet``: chapter 10 (lottery tickets on a data diet, Paul et al. 2022);
- ``stopping``: chapter 11 (when to stop pre-training);
- ``gpu_runs``: the paper-scale GPU archives of chapters 4 and 6.
"""
