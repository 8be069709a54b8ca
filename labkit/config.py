"""Experiment configurations: ``get(name)`` gives experiment ``name``'s preset for the mode.

Sizes live in the experiments' own config modules (``labkit/experiments/<name>/config.py``:
one frozen dataclass per experiment, a quick and a full preset, overridable; book design,
section 2) and nowhere else; this module is the small registry that maps each name a chapter
or the command line uses to the subpackage holding its presets. A chapter calls
``cfg = lk.config.get("gfs")`` and shows ``cfg`` to the reader. Overrides are keywords:
``get("gfs", N=100)``. Invalid values fail at construction with an error naming the field.
Each config has a stable ``digest()`` (a hash of its fields, as open_lth names run folders)
for caching results. The command line's ``--set FIELD=VALUE`` goes through
:func:`parse_overrides` and the same checks.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import json
import os

from labkit.experiments.diet.config import DietConfig
from labkit.experiments.distributed.config import DistributedConfig
from labkit.experiments.fig1.config import Fig1Config
from labkit.experiments.prune_init.config import PruneInitConfig
from labkit.experiments.stopping.config import StoppingConfig
from labkit.experiments.tables.config import DeepConfig
from labkit.experiments.theory.config import GFSConfig, Lemma1Config, PolytopeConfig, RMTConfig
from labkit.experiments.threshold.config import ThresholdConfig
from labkit.infra.runtime import get_mode
from labkit.infra.settings import _Config

# experiment name -> the subpackage of labkit.experiments whose config module holds its
# presets (in the order the book meets them; error messages list them in this order)
REGISTRY: dict[str, str] = {
    "polytope": "theory", "gfs": "theory",
    "threshold": "threshold", "threshold_cpu": "threshold", "threshold_gpu": "threshold",
    "threshold_gpu_d100": "threshold",
    "rmt": "theory",
    "fig1": "fig1", "fig1_mnist1d": "fig1", "fig1_digits_cpu": "fig1",
    "fig1_mnist1d_cpu": "fig1", "fig1_mnist1d_gpu": "fig1", "fig1_lr": "fig1",
    "prune_init": "prune_init", "prune_init_cpu": "prune_init",
    "diet": "diet", "diet_cpu": "diet",
    "stopping": "stopping", "stopping_cpu": "stopping",
    "table1": "tables", "table2": "tables",
    "lemma1": "theory",
    "distributed": "distributed",
}

# name -> {"quick": config, "full": config}: the experiments' own preset tables (the same
# objects, so a test that patches one entry patches what the experiment reads)
PRESETS: dict[str, dict[str, _Config]] = {
    name: importlib.import_module(f"labkit.experiments.{package}.config").PRESETS[name]
    for name, package in REGISTRY.items()}

__all__ = ["DeepConfig", "DietConfig", "DistributedConfig", "Fig1Config", "GFSConfig",
           "Lemma1Config", "PRESETS", "PolytopeConfig", "PruneInitConfig", "REGISTRY",
           "RMTConfig", "StoppingConfig", "ThresholdConfig", "get", "parse_overrides"]


OVERRIDES_ENV = "LABKIT_OVERRIDES"  # JSON {"experiment": {"field": value}}: tools/gpu_check.py


def _env_overrides(name: str) -> dict:
    """The overrides ``$LABKIT_OVERRIDES`` gives experiment ``name``: a JSON object mapping
    experiment names to fields, so that a chapter can run unchanged at other sizes, e.g. as
    a plain script on a GPU machine (``tools/gpu_check.py``)."""
    text = os.environ.get(OVERRIDES_ENV, "").strip()
    if not text:
        return {}
    try:
        table = json.loads(text)
    except ValueError as err:
        raise ValueError(f"{OVERRIDES_ENV}: not valid JSON ({err}); expected an object like "
                         '{"threshold": {"k": 16}}') from err
    if not isinstance(table, dict) or not all(isinstance(v, dict) for v in table.values()):
        raise ValueError(f"{OVERRIDES_ENV}: expected an object mapping experiment names to "
                         f"objects of fields, got {text[:80]!r}")
    unknown = sorted(set(table) - set(PRESETS))
    if unknown:
        raise ValueError(f"{OVERRIDES_ENV}: unknown experiment {unknown[0]!r}; allowed: "
                         f"{', '.join(PRESETS)}")
    return table.get(name, {})


def get(name: str, mode: str | None = None, **overrides) -> _Config:
    """The preset of experiment ``name`` for ``mode`` (default ``$LABKIT_MODE``), with the
    overrides of ``$LABKIT_OVERRIDES`` and then the keyword overrides applied."""
    if name not in PRESETS:
        raise ValueError(f"name: unknown experiment {name!r}; allowed: {', '.join(PRESETS)}")
    cfg = PRESETS[name][get_mode(mode)]
    overrides = {**_env_overrides(name), **overrides}
    fields = {f.name for f in dataclasses.fields(cfg)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"{unknown[0]}: not a field of {type(cfg).__name__}; "
                         f"allowed: {', '.join(sorted(fields))}")
    return dataclasses.replace(cfg, **overrides)


def parse_overrides(name: str, items, mode: str | None = None) -> dict:
    """``["k=100", "seeds=0,1,2"]`` (the CLI's ``--set``) -> keyword overrides for
    :func:`get`. A value is read as a Python literal where it parses as one (``0.5``,
    ``(10, 20)``; a bare ``a,b`` is a tuple), else as a string; a single value for a tuple
    field becomes a one-element tuple. The config class then validates it as any keyword:
    a bad value fails naming the field."""
    cfg = get(name, mode)
    types = {f.name: f.type for f in dataclasses.fields(cfg)}
    overrides = {}
    for item in items or ():
        field, sep, text = item.partition("=")
        field = field.strip()
        if not sep or not field:
            raise ValueError(f"--set: expected FIELD=VALUE, got {item!r}")
        if field not in types:
            raise ValueError(f"{field}: not a field of {type(cfg).__name__}; "
                             f"allowed: {', '.join(sorted(types))}")
        try:
            value = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            value = text.strip()
            if types[field].startswith("tuple") and "," in value:  # names: a,b -> (a, b)
                value = tuple(v.strip() for v in value.split(","))
        if types[field].startswith("tuple"):
            value = tuple(value) if isinstance(value, (tuple, list)) else (value,)
        elif types[field] == "str" and not isinstance(value, str):
            value = text.strip()  # e.g. --set dtype=float32 stays a name, never a number
        overrides[field] = value
    return overrides
