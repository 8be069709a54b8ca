"""The base of every experiment's settings: a frozen dataclass whose fields are checked at
construction (an error names the field and what is allowed), printed one field per line,
and hashed into a stable ``digest()`` (open_lth names run folders the same way).

Each experiment subpackage (``labkit/experiments/<name>/config.py``) defines its dataclass on
:class:`_Config` and its presets; ``labkit.config`` maps experiment names to them.

The field checks are written out (``_Config.__post_init__`` and each ``validate``) rather than
delegated to a validation library: pydantic, the obvious one, needs its compiled core, which
the GPU machine's registry-less Python cannot install from pure wheels, and the coercion it
would replace is some 30 lines; what remains are the experiments' own invariants, which any
library would take as hand-written validators too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import html
import json

import numpy as np


def _check_schedule(field: str, values, min_len: int = 1) -> None:
    """Checkpoints: at least ``min_len`` non-negative, strictly increasing iterations."""
    steps = zip(values, values[1:], strict=False)
    if len(values) < min_len or values[0] < 0 or any(b <= a for a, b in steps):
        raise ValueError(f"{field}: must be non-negative and strictly increasing "
                         f"(at least {min_len}), got {values!r}")


def _check_widths(widths) -> None:
    if not widths or min(widths) < 1:
        raise ValueError(f"widths: must be positive integers, got {widths!r}")


def _check_seeds(seeds) -> None:
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds: must be distinct non-negative integers, got {seeds!r}")


class _Config:
    """Shared validation and hashing for the experiment dataclasses."""

    _positive: tuple[str, ...] = ()
    _non_negative: tuple[str, ...] = ()
    # fields that take one of a few names: {field: allowed names} (the activation, say)
    _choices: dict[str, tuple[str, ...]] = {}

    def __post_init__(self):
        # store canonical types, so that equal configs have equal digests (400.0 -> 400)
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.type == "int":
                if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) \
                        or value != int(value):
                    raise ValueError(f"{f.name}: must be an integer, got {value!r}")
                value = int(value)
            elif f.type == "float":
                if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                    raise ValueError(f"{f.name}: must be a number, got {value!r}")
                value = float(value)
            elif f.type == "tuple[int, ...]":
                if any(isinstance(v, bool) or int(v) != v for v in value):
                    raise ValueError(f"{f.name}: must hold integers, got {value!r}")
                value = tuple(int(v) for v in value)
            elif f.type == "tuple[str, ...]":
                value = tuple(value)
            elif f.type == "tuple[float, ...]":
                if any(isinstance(v, bool) or not isinstance(v, (int, float, np.number))
                       for v in value):
                    raise ValueError(f"{f.name}: must hold numbers, got {value!r}")
                value = tuple(float(v) for v in value)
            object.__setattr__(self, f.name, value)
        for field in self._positive:
            if not getattr(self, field) > 0:
                raise ValueError(f"{field}: must be positive, got {getattr(self, field)!r}")
        for field in self._non_negative:
            if not getattr(self, field) >= 0:
                raise ValueError(f"{field}: must be non-negative, got {getattr(self, field)!r}")
        for field, allowed in self._choices.items():
            if getattr(self, field) not in allowed:
                raise ValueError(f"{field}: unknown {field} {getattr(self, field)!r}; "
                                 f"allowed: {', '.join(allowed)}")
        self.validate()

    def validate(self) -> None:
        """Experiment-specific checks (overridden)."""

    def __repr__(self) -> str:
        """One field per line, a long value wrapped onto indented lines, so that a printed
        config fits an 88-character column."""
        import pprint

        lines = []
        for f in dataclasses.fields(self):
            head = f"    {f.name}="
            text = pprint.pformat(getattr(self, f.name), width=87 - len(head), compact=True)
            first, *rest = text.splitlines()
            lines += [head + first, *(" " * len(head) + line for line in rest)]
            lines[-1] += ","
        return "\n".join([f"{type(self).__name__}(", *lines, ")"])

    def _repr_html_(self) -> str:
        """A small table for notebooks and the book's pages: field and value pairs, three
        to a row."""
        cells = [f"<th>{f.name}</th><td>{html.escape(repr(getattr(self, f.name)))}</td>"
                 for f in dataclasses.fields(self)]
        rows = ["<tr>" + "".join(cells[i:i + 3]) + "</tr>" for i in range(0, len(cells), 3)]
        return (f'<table class="labkit-config"><caption>{type(self).__name__}</caption>'
                + "".join(rows) + "</table>")

    def digest(self) -> str:
        """Stable 12-hex-digit hash of the experiment name and all fields."""
        blob = json.dumps([type(self).__name__, dataclasses.asdict(self)], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]
