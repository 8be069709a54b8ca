"""CPU pins: the one definition of the environment that makes quick-mode outputs the same
on every x86-64 machine CI or a reader may use (AVX2 or AVX-512, any core count).

Why: each numeric library picks its vectorized kernels by what the processor offers, and
chapter 7's training turns their last-bit differences into different tables (ten SGD steps
of the quick ResNet34 already end with different weights under ATen's ``default``,
``avx2`` and ``avx512`` kernels). So quick mode pins every dispatch to the AVX2 level, which
every CI machine has, and the thread count, which changes reduction orders:

- ATen (PyTorch's own kernels): ``ATEN_CPU_CAPABILITY``;
- oneDNN (PyTorch's CPU convolutions): ``ONEDNN_MAX_CPU_ISA`` (``DNNL_`` is its old name);
- MKL (PyTorch's matrix products): ``MKL_CBWR`` (conditional numerical reproducibility) at
  its ``COMPATIBLE`` branch, the one that Intel and AMD CPUs run alike,
  ``MKL_ENABLE_INSTRUCTIONS``, ``MKL_DYNAMIC`` off so the thread count is the one asked;
- OpenBLAS (NumPy's and SciPy's linear algebra): ``OPENBLAS_CORETYPE`` (some machines set
  it already, for old OpenBLAS builds; the pin overrides it with a kernel every AVX2 CPU
  runs);
- NumPy's own SIMD loops: ``NPY_DISABLE_CPU_FEATURES`` (its dispatch targets above X86_V3);
- numba (the fused GD step of :mod:`labkit.algorithms.fused_gd`): ``NUMBA_CPU_NAME`` and
  ``NUMBA_CPU_FEATURES`` (the code it compiles for the Haswell level);
- threads: ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``,
  ``NUMBA_NUM_THREADS``, all 2, or
  ``$LABKIT_THREADS`` for the worker processes of labkit's own launchers.

Each library reads its variable once, when it is loaded, so the pins must be in the
environment **before** NumPy or PyTorch is imported. Every launcher sets them from
:func:`pinned_env` (pytest's conftest for the nbval kernels, ``tools/refresh_notebooks.py``,
``tools/build_book.py``, ``.ci/run`` through ``python labkit/infra/cpu_pins.py --shell``, the
JupyterLab kernel of ``python labkit/infra/cpu_pins.py --install-kernel``); ``import labkit`` sets
them itself when nothing numeric is loaded yet (the ``python -m labkit`` CLI, scripts), and
in quick mode :func:`check` fails with a clear message when they did not take effect.

``LABKIT_PIN_CPU=0`` opts out: every library then uses the fastest kernels of the machine
and all its cores, and quick-mode numbers may differ from the stored references
(``book/running.md``). Full mode is never pinned.

This module uses the standard library only, so that launchers can run it as a script
(``python labkit/infra/cpu_pins.py``) without loading NumPy or PyTorch. Book design, section 5;
issue "CI fails on some machines".
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shlex
import sys
import warnings
from pathlib import Path

OPT_OUT = "LABKIT_PIN_CPU"
# the thread count changes reduction orders, so it is pinned too: to CI's core count, or to
# $LABKIT_THREADS, which labkit's own launchers set for worker processes that share the
# cores (chapter 8's ranks), whose results do not depend on it (tests/test_distributed.py)
THREADS_ENV = "LABKIT_THREADS"
THREADS = 2
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")
ISA_PINS: dict[str, str] = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "DNNL_MAX_CPU_ISA": "AVX2",
    # MKL's AVX2 branch exists on Intel CPUs only: on AMD ones MKL silently takes its AUTO
    # branch instead (Intel's CNR guide), whose products differ in the last bits (measured:
    # chapter 2 and 7's numbers on an AMD EPYC). COMPATIBLE is the branch that every x86-64
    # CPU runs the same (SSE2 code, 2-4x slower products; quick mode's shapes are small)
    "MKL_CBWR": "COMPATIBLE,STRICT",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "MKL_DYNAMIC": "FALSE",
    "OPENBLAS_CORETYPE": "Haswell",
    # NumPy 2.x dispatches to X86_V3 (AVX2 + FMA3), X86_V4 (AVX-512) and two later AVX-512
    # levels; turning off a level the machine lacks is allowed and does nothing
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",
    # numba (labkit.algorithms.fused_gd) compiles for the CPU it runs on, so the vector width of its
    # sums would follow the machine: target Haswell (AVX2 + FMA) instead; the features must
    # be named too, or numba adds the host's (AVX-512 included)
    "NUMBA_CPU_NAME": "haswell",
    "NUMBA_CPU_FEATURES": "+avx,+avx2,+fma,+f16c,+popcnt,+sse4.2",
}
# set by some machines or users; they would contradict a pin
UNSET = ("NPY_ENABLE_CPU_FEATURES", "OPENBLAS_VERBOSE", "ONEDNN_VERBOSE")
NUMERIC = ("numpy", "torch", "scipy", "numba")
KERNEL_NAME = "labkit"


def threads(environ=None) -> int:
    """The pinned thread count: ``$LABKIT_THREADS`` if set, else 2."""
    env = os.environ if environ is None else environ
    value = env.get(THREADS_ENV, str(THREADS)).strip()
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{THREADS_ENV}: {value!r} is not allowed; use a positive integer "
                         f"(the threads of one process; default {THREADS})")
    return int(value)


def pins(environ=None) -> dict[str, str]:
    """Every pinned variable and its value (the thread count from :func:`threads`)."""
    return {**ISA_PINS, **{name: str(threads(environ)) for name in THREAD_VARS}}


PINS = pins({})  # the defaults, as the reference notebooks were made

_applied_before_load = False
_before: dict[str, str | None] = {}  # what apply() overwrote, for unpinned_env()


class PinError(RuntimeError):
    """The CPU pins are not in effect in a quick-mode process."""


def enabled(environ=None) -> bool:
    """Pins apply unless ``LABKIT_PIN_CPU=0`` (or ``false``/``no``/``off``), and never in
    full mode."""
    env = os.environ if environ is None else environ
    value = env.get(OPT_OUT, "1").strip().lower()
    if value not in ("", "0", "1", "false", "true", "no", "yes", "off", "on"):
        raise ValueError(f"{OPT_OUT}: {value!r} is not allowed; use 1 (pin, the default) or "
                         "0 (use the fastest kernels of this machine)")
    mode = env.get("LABKIT_MODE", "quick").strip().lower() or "quick"
    return value not in ("0", "false", "no", "off") and mode == "quick"


def pinned_env(environ=None) -> dict[str, str]:
    """A copy of ``environ`` (default ``os.environ``) with the pins set, overriding any
    value already there; unchanged when the pins are off (:func:`enabled`)."""
    env = dict(os.environ if environ is None else environ)
    if enabled(env):
        _pin(env)
    return env


def _pin(env) -> None:
    """Set the pins in the mapping ``env`` (a dict or ``os.environ``), in place."""
    for name in UNSET:
        env.pop(name, None)
    env.update(pins(env))


def apply() -> bool:
    """Set the pins in ``os.environ`` (inherited by every child process). Returns whether
    they take effect in this process too, i.e. no numeric library is loaded yet."""
    global _applied_before_load
    if not enabled():
        return False
    fresh = not any(name in sys.modules for name in NUMERIC)
    for name in (*PINS, *UNSET):
        _before.setdefault(name, os.environ.get(name))
    _pin(os.environ)
    _applied_before_load = _applied_before_load or fresh
    return fresh


def unpinned_env() -> dict[str, str]:
    """``os.environ`` as it was before :func:`apply` set the pins (for a process that
    starts again in full mode)."""
    env = dict(os.environ)
    for name, value in _before.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def _initial_environ() -> dict[str, str] | None:
    """The environment this process started with (Linux), which is what the libraries
    read when they were loaded at start-up; ``None`` where it cannot be read."""
    try:
        raw = Path("/proc/self/environ").read_bytes()
    except OSError:
        return None
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def problems() -> list[str]:
    """What is not pinned in this process (empty when all is well or pins are off)."""
    if not enabled():
        return []
    found = []
    if not _applied_before_load:
        start = _initial_environ()
        start = dict(os.environ) if start is None else start
        for name, value in pins(start).items():
            if start.get(name) != value:
                found.append(f"{name}={start.get(name)!r} when the process started, "
                             f"needs {value!r}")
        found += [f"{name} is set" for name in UNSET if name in start]
    if "torch" in sys.modules:
        import torch

        cap = torch.backends.cpu.get_cpu_capability()
        if cap != "AVX2":
            found.append(f"PyTorch runs its {cap} kernels, needs AVX2"
                         + (" (this CPU lacks AVX2)" if cap == "DEFAULT" else ""))
        if torch.get_num_threads() != threads():
            found.append(f"PyTorch uses {torch.get_num_threads()} threads, needs {threads()}")
    if "numba" in sys.modules:
        from numba.core import config as numba_config

        if (numba_config.CPU_NAME, numba_config.CPU_FEATURES) != (
                ISA_PINS["NUMBA_CPU_NAME"], ISA_PINS["NUMBA_CPU_FEATURES"]):
            found.append(f"numba compiles for {numba_config.CPU_NAME or 'this CPU'}, needs "
                         f"{ISA_PINS['NUMBA_CPU_NAME']}")
    if "numpy" in sys.modules:
        try:
            from numpy._core._multiarray_umath import __cpu_features__ as features
        except ImportError:  # NumPy 1.x
            from numpy.core._multiarray_umath import __cpu_features__ as features
        above = [f for f in ISA_PINS["NPY_DISABLE_CPU_FEATURES"].split() if features.get(f)]
        if above:
            found.append(f"NumPy dispatches to {' '.join(above)}, needs at most X86_V3")
    return found


def check() -> None:
    """Fail with a clear message when a quick-mode process is not pinned. On a CPU that is
    not x86-64 the pins cannot hold (other kernels altogether): warn once instead."""
    if not enabled():
        return
    if platform.machine().lower() not in ("x86_64", "amd64"):
        warnings.warn(f"labkit: quick mode on {platform.machine()}: the reference outputs "
                      "were made on x86-64 with AVX2 kernels, so numbers from long training "
                      f"may differ (set {OPT_OUT}=0 to silence this)", stacklevel=2)
        return
    found = problems()
    if found:
        raise PinError(
            "labkit: quick mode needs its CPU pins in the environment before NumPy or "
            "PyTorch is loaded, so that its numbers match the stored references on any "
            "CPU. Not in effect here:\n  - " + "\n  - ".join(found) + "\nStart the process "
            "through a labkit launcher (pytest, tools/refresh_notebooks.py, "
            "tools/build_book.py, the 'labkit' Jupyter kernel from `python "
            "labkit/infra/cpu_pins.py --install-kernel`), or import labkit before numpy and "
            f"torch, or run `eval \"$(python labkit/infra/cpu_pins.py --shell)\"` first; or set "
            f"{OPT_OUT}=0 to use this machine's fastest kernels (numbers may then differ "
            "from the book's).")


def install_kernel(prefix: str | None = None) -> Path:
    """Write a Jupyter kernelspec ``labkit`` ("Python 3 (labkit, pinned CPU)") whose kernel
    starts with the pins, under ``prefix`` (default: this environment's ``sys.prefix``).
    JupyterLab then offers it beside the plain Python 3 kernel."""
    folder = Path(prefix or sys.prefix) / "share" / "jupyter" / "kernels" / KERNEL_NAME
    folder.mkdir(parents=True, exist_ok=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (labkit, pinned CPU)", "language": "python",
            "env": dict(PINS),
            "metadata": {"debugger": True}}
    (folder / "kernel.json").write_text(json.dumps(spec, indent=1) + "\n", encoding="utf8")
    return folder


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python labkit/infra/cpu_pins.py",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--shell", action="store_true",
                        help="print `export`/`unset` lines for eval in a POSIX shell")
    parser.add_argument("--install-kernel", action="store_true",
                        help="install the pinned 'labkit' Jupyter kernel in this environment")
    args = parser.parse_args(argv)
    if args.install_kernel:
        print(f"cpu_pins: kernel {KERNEL_NAME!r} written to {install_kernel()}")
    elif args.shell:
        if enabled():
            print("unset " + " ".join(UNSET))
            print("export " + " ".join(f"{k}={shlex.quote(v)}" for k, v in pins().items()))
    else:
        print(json.dumps(pins() if enabled() else {}, indent=1))
    return 0


@contextlib.contextmanager
def thread_env(threads: int):
    """Spawned children read these at import, before any of our code runs: the BLAS libraries
    take their thread counts from them (chapter 8's ranks, the runner's worker processes)."""
    names = (*THREAD_VARS, THREADS_ENV)
    saved = {v: os.environ.get(v) for v in names}
    os.environ.update({v: str(threads) for v in names})
    try:
        yield
    finally:
        for v, value in saved.items():
            if value is None:
                os.environ.pop(v, None)
            else:
                os.environ[v] = value


if __name__ == "__main__":
    sys.exit(main())
