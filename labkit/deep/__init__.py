"""Deep-network tools (chapters 7, 10 and 11): channel groups traced from a network's graph
(:mod:`~labkit.deep.graph`), channel GFS (:mod:`~labkit.deep.channel_gfs`), physical pruning
and fine-tuning (:mod:`~labkit.deep.prune`), the torchvision networks and their stages
(:mod:`~labkit.deep.nets`, :mod:`~labkit.deep.zoo`), training (:mod:`~labkit.deep.train`) and
image data (:mod:`~labkit.deep.data`).

The names below are defined here, not in the modules that use them, so that reading them
(the experiments' config checks, at ``import labkit``) does not load torchvision.
"""

ARCHS = ("resnet34", "mobilenet_v2")  # the paper's Table 1-2 architectures
SOURCES = ("mnist32", "cifar10", "imagenet")  # image data sources (labkit.deep.data)
