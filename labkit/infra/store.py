"""A resumable store of experiment results: one JSON file per finished cell of a sweep.

Each cell is keyed by a hash of the experiment name, its full parameters and
:data:`SCHEMA_VERSION` (open_lth names run folders the same way), so a changed setting or
result layout never reuses an old file. Writes are atomic (temporary file, ``fsync``,
``os.replace``): a crash leaves either the old file or the new one, never half of one. Each
file carries a checksum of its payload; a file that fails to parse or to verify is treated
as missing and recomputed, never used. Chapters 4 and 6.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
import os
import tempfile
import textwrap
import time
from pathlib import Path

SCHEMA_VERSION = 1
RESULTS_ENV = "LABKIT_RESULTS"


def _labkit_import(node) -> bool:
    """An import of labkit's own code: where a name comes from is the package's layout,
    not the computation (the parts a cell depends on are listed in its digest)."""
    if isinstance(node, ast.ImportFrom):
        return node.level > 0 or (node.module or "").split(".")[0] == "labkit"
    if isinstance(node, ast.Import):
        return any(a.name.split(".")[0] == "labkit" for a in node.names)
    return False


def _normalized(source: str) -> str:
    """The code of ``source`` without its comments, docstrings, layout or imports of labkit
    modules: an AST dump."""
    tree = ast.parse(textwrap.dedent(source))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            body = body[1:]
        if isinstance(body, list):
            node.body = [n for n in body if not _labkit_import(n)] or [ast.Pass()]
    return ast.dump(tree)


def code_digest(*parts) -> str:
    """Hash of the labkit code a cell's numbers depend on: part of a cell's key, so that a
    store never serves numbers computed by older code. Each part is a source file (a path
    relative to the package, ``"algorithms/gfs.py"``: all its code) or a function or class
    (its code only, so that an archived run survives edits to the analysis next to it).
    Comments, docstrings, layout and the import lines of labkit's own modules do not count:
    an edit to them, or a module moved to another folder, keeps the hours of an archived
    run (``tools/archive_keys.py`` re-keys the cells when a digest does change)."""
    here = Path(__file__).resolve().parent.parent  # labkit/
    texts = [_normalized((here / part).read_text()) if isinstance(part, str)
             else _normalized(inspect.getsource(part)) for part in parts]
    return hashlib.sha256("\0".join(texts).encode()).hexdigest()[:12]


def default_root(mode: str) -> Path:
    """``$LABKIT_RESULTS/<mode>`` if set, else ``results/<mode>`` under the repository."""
    base = os.environ.get(RESULTS_ENV)
    root = Path(base) if base else Path(__file__).resolve().parents[2] / "results"
    return root / mode


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and ``os.replace``: readers see
    the old file or the new one, never half of one (results tables, manifests, the
    distributed CLI's result)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _blob(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


class ResultStore:
    """Finished cells of one or more sweeps, as ``<root>/<experiment>/<key>.json``."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def key(self, experiment: str, params: dict) -> str:
        return hashlib.sha256(_blob([SCHEMA_VERSION, experiment, params]).encode()).hexdigest()[:16]

    def path(self, experiment: str, params: dict) -> Path:
        return self.root / experiment / f"{self.key(experiment, params)}.json"

    def load(self, experiment: str, params: dict):
        """The stored payload, or ``None`` when missing, unreadable or failing its checksum."""
        path = self.path(experiment, params)
        try:
            record = json.loads(path.read_text())
            payload = record["payload"]
            # compare as JSON sees them: a tuple in params is stored as a list
            ok = (record["schema"] == SCHEMA_VERSION
                  and record["params"] == json.loads(_blob(params))
                  and record["sha256"] == hashlib.sha256(_blob(payload).encode()).hexdigest())
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return payload if ok else None

    def seconds(self, experiment: str, params: dict) -> float | None:
        """How long the stored cell took to compute (``None``: unknown, or not stored)."""
        try:
            value = json.loads(self.path(experiment, params).read_text()).get("seconds")
        except (OSError, ValueError, AttributeError):
            return None
        return float(value) if isinstance(value, (int, float)) else None

    def save(self, experiment: str, params: dict, payload, seconds: float | None = None
             ) -> Path:
        path = self.path(experiment, params)
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {"schema": SCHEMA_VERSION, "experiment": experiment, "params": params,
                  "sha256": hashlib.sha256(_blob(payload).encode()).hexdigest(),
                  "payload": payload}
        if seconds is not None:  # for cost estimates (labkit.infra.runner.plan); not checksummed
            record["seconds"] = round(seconds, 3)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; results are for the whole group to read
        try:
            with os.fdopen(fd, "w") as f:
                f.write(_blob(record))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    def get_or_compute(self, experiment: str, params: dict, compute):
        """Return the stored payload, or compute it with ``compute()``, store it and return
        it. The second value says whether it was computed now."""
        payload = self.load(experiment, params)
        if payload is not None:
            return payload, False
        start = time.perf_counter()
        payload = compute()
        self.save(experiment, params, payload, seconds=time.perf_counter() - start)
        return payload, True
