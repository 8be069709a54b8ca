"""The CPU pins (labkit.infra.cpu_pins) make quick-mode numbers independent of the CPU's dispatch.

The main test trains a little of chapter 7 (the quick MobileNetV2 and ResNet34, ten SGD
steps) and runs one two-layer experiment (GD, GFS, an OpenBLAS SVD and NumPy SIMD loops) in
subprocesses whose environments set every dispatch variable to different values that any
AVX2 machine runs, e.g. ATen ``default`` vs ``avx512``, oneDNN SSE4.1 vs all, MKL's
``AVX2`` vs ``AUTO`` branch, OpenBLAS Prescott vs Sandy Bridge kernels, NumPy's AVX2
loops off vs on, 1 vs 3 threads. Started the way labkit's launchers start kernels, their
printed results must be identical; with the pins off (``LABKIT_PIN_CPU=0``, i.e. the code
before the pins existed) the same two runs differ, which shows the test can fail. The last
test runs the same probe on an emulated CPU without AVX-512 (qemu's Haswell) and compares it
with this machine's run bit for bit.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from labkit.infra import cpu_pins

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(platform.machine() != "x86_64",
                                reason="the pins are x86-64 dispatch settings")

# a chapter's order: NumPy and PyTorch first, labkit after (too late to pin in-process)
PROBE = textwrap.dedent("""
    import hashlib, sys, numpy as np, torch
    import labkit as lk
    from labkit.experiments.tables.cell import load_images, sgd

    def digest(t):
        t = t.detach().contiguous()
        sha = hashlib.sha1(t.numpy().tobytes()).hexdigest()[:12]
        return f"{t.double().sum().item():.10f} {sha}"

    sgd_steps, gd_steps = (int(a) for a in sys.argv[1:3])
    cfg = lk.config.get("table1")
    data = load_images("mnist32")
    for arch, width in zip(cfg.archs, cfg.widths):
        net = lk.build_deepnet(arch, width=width, in_channels=1, seed=0)
        sgd(net, data, np.arange(2000), start=0, stop=sgd_steps, total=100, lr=cfg.lr, cfg=cfg,
            seed=0, device="cpu")
        print(arch, digest(torch.cat([p.flatten() for p in net.parameters()])))
    X, y = lk.teacher_student(m=300, d=20, seed=0)
    net = lk.TwoLayerNet(20, 600, generator=torch.Generator().manual_seed(0))
    losses = lk.pretrain_gd(net, X, y, steps=gd_steps, lr=0.5)
    with torch.no_grad():
        res = lk.greedy_forward_selection(net.neuron_outputs(X), y, 40)
    A = np.tanh(2 * np.random.default_rng(0).standard_normal((400, 300)).astype(np.float32))
    s = np.linalg.svd(A @ A.T, compute_uv=False)
    print(f"two-layer {losses[-1]:.12e} {float(res.losses[-1]):.12e} {s[-1]:.10e}",
          np.exp(A).astype(np.float64).sum().hex())
    if sys.argv[3:] == ["fused"]:  # the fused GD step (numba), chapters 3-4's trainer
        Xf, yf = lk.teacher_student(m=40, d=10, seed=1)
        fnet = lk.TwoLayerNet(10, 600, generator=torch.Generator().manual_seed(1))
        Wf, bf = fnet.W.detach().clone()[None], fnet.b.detach().clone()[None]
        hist = lk.train_batched(Xf[None], yf[None], Wf, bf, steps=gd_steps, lr=0.5)
        print("fused", digest(Wf), digest(bf), f"{hist[-1, 0]:.12e}")
""")

# every dispatch variable, at two settings that any AVX2 machine runs
VARIANT_A = {
    "ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41",
    "DNNL_MAX_CPU_ISA": "SSE41", "MKL_CBWR": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
    "MKL_DYNAMIC": "TRUE", "OPENBLAS_CORETYPE": "Prescott",
    "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR",
    "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
    "NUMBA_CPU_NAME": "nehalem", "NUMBA_CPU_FEATURES": "+sse4.2", "NUMBA_NUM_THREADS": "1",
}
VARIANT_B = {
    "ATEN_CPU_CAPABILITY": "avx512", "ONEDNN_MAX_CPU_ISA": "ALL", "DNNL_MAX_CPU_ISA": "ALL",
    "MKL_CBWR": "AUTO", "MKL_ENABLE_INSTRUCTIONS": "AVX512", "MKL_DYNAMIC": "TRUE",
    "OPENBLAS_CORETYPE": "Sandybridge", "NPY_ENABLE_CPU_FEATURES": "X86_V3",
    "OMP_NUM_THREADS": "3", "MKL_NUM_THREADS": "3", "OPENBLAS_NUM_THREADS": "3",
    "NUMBA_CPU_NAME": "haswell", "NUMBA_CPU_FEATURES": "+avx2,+fma,+sse4.2",
    "NUMBA_NUM_THREADS": "3",
}
assert set(cpu_pins.PINS) <= set(VARIANT_A)  # every pinned variable is varied


def _bare_env(**extra) -> dict[str, str]:
    """This process's environment without any pin (the pytest process itself is pinned)."""
    env = {k: v for k, v in os.environ.items()
           if k not in cpu_pins.PINS and k not in cpu_pins.UNSET
           and k not in (cpu_pins.OPT_OUT, cpu_pins.THREADS_ENV)}
    return {**env, "LABKIT_MODE": "quick", **extra}


def _run(script: str, env: dict[str, str], check: bool = True, args=("10", "300"),
         prefix=()) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, sys.executable, "-c", script, *args], env=env, cwd=ROOT,
                          check=check, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def probe_outputs():
    runs = {
        "A pinned by the launcher": cpu_pins.pinned_env(_bare_env(**VARIANT_A)),
        "B pinned by the launcher": cpu_pins.pinned_env(_bare_env(**VARIANT_B)),
        "A unpinned": _bare_env(**VARIANT_A, LABKIT_PIN_CPU="0"),
        "B unpinned": _bare_env(**VARIANT_B, LABKIT_PIN_CPU="0"),
    }
    return {name: _run(PROBE, env, args=("10", "300", "fused")).stdout
            for name, env in runs.items()}


def test_pinned_outputs_identical_under_any_dispatch_settings(probe_outputs):
    a, b = probe_outputs["A pinned by the launcher"], probe_outputs["B pinned by the launcher"]
    assert len(a.splitlines()) == 4
    assert a == b


def test_unpinned_outputs_differ(probe_outputs):
    # the same two environments without the pins: the check above is able to fail
    a, b = probe_outputs["A unpinned"], probe_outputs["B unpinned"]
    assert a.splitlines()[0] != b.splitlines()[0], "chapter 7's training should differ"
    assert a != probe_outputs["A pinned by the launcher"]


def test_import_labkit_first_pins_itself(probe_outputs):
    # a script that imports labkit before NumPy/PyTorch needs no launcher (the CLI's case)
    script = "import labkit\n" + PROBE
    out = _run(script, _bare_env(**VARIANT_A), args=("10", "300", "fused")).stdout
    assert out == probe_outputs["A pinned by the launcher"]


def test_unpinned_quick_mode_is_refused_with_the_fix_in_the_message():
    result = _run("import numpy, torch\nimport labkit", _bare_env(**VARIANT_A), check=False)
    assert result.returncode != 0
    assert "PinError" in result.stderr
    for text in ("ATEN_CPU_CAPABILITY='default' when the process started",
                 "OPENBLAS_CORETYPE='Prescott' when", "LABKIT_PIN_CPU=0", "--install-kernel"):
        assert text in result.stderr
    # opted out, or in full mode, the same process runs
    for extra in ({"LABKIT_PIN_CPU": "0"}, {"LABKIT_MODE": "full"}):
        _run("import numpy, torch\nimport labkit", _bare_env(**VARIANT_A, **extra))


def test_bad_opt_out_value_names_the_variable():
    with pytest.raises(ValueError, match="LABKIT_PIN_CPU: 'maybe' is not allowed"):
        cpu_pins.enabled({"LABKIT_PIN_CPU": "maybe"})
    assert cpu_pins.pinned_env({"LABKIT_PIN_CPU": "off", "X": "1"}) == {
        "LABKIT_PIN_CPU": "off", "X": "1"}
    assert cpu_pins.pinned_env({"LABKIT_MODE": "full"}) == {"LABKIT_MODE": "full"}
    with pytest.raises(ValueError, match="LABKIT_THREADS: '0' is not allowed"):
        cpu_pins.pinned_env({"LABKIT_THREADS": "0"})
    # labkit's launchers give worker processes their share of the cores
    assert cpu_pins.pinned_env({"LABKIT_THREADS": "1"})["OMP_NUM_THREADS"] == "1"


def test_shell_lines_set_exactly_the_pins():
    script = f"eval \"$({sys.executable} labkit/infra/cpu_pins.py --shell)\" && env"
    env = _bare_env(NPY_ENABLE_CPU_FEATURES="X86_V3", OPENBLAS_CORETYPE="SkylakeX")
    out = subprocess.run(["bash", "-c", script], env=env, cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    seen = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    assert {k: seen.get(k) for k in cpu_pins.PINS} == cpu_pins.PINS
    assert "NPY_ENABLE_CPU_FEATURES" not in seen


def test_the_pinned_jupyter_kernel_starts_pinned(tmp_path):
    from jupyter_client.manager import start_new_kernel

    folder = cpu_pins.install_kernel(str(tmp_path))
    spec = json.loads((folder / "kernel.json").read_text())
    assert spec["env"] == cpu_pins.PINS
    os.environ["JUPYTER_PATH"] = str(tmp_path / "share" / "jupyter")
    try:
        # the kernel gets this process's environment less every pin, plus the kernelspec's
        km, kc = start_new_kernel(kernel_name=cpu_pins.KERNEL_NAME, env=_bare_env())
    finally:
        del os.environ["JUPYTER_PATH"]
    try:
        outputs = []
        kc.execute_interactive("import numpy, torch\nimport labkit\n"
                               "print(torch.backends.cpu.get_cpu_capability(), "
                               "torch.get_num_threads(), labkit.infra.cpu_pins.problems())",
                               output_hook=outputs.append, timeout=120)
        text = "".join(m["content"].get("text", "") for m in outputs
                       if m["msg_type"] == "stream")
        errors = [m["content"] for m in outputs if m["msg_type"] == "error"]
        assert not errors, errors
        assert text.strip() == "AVX2 2 []"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_cli_in_full_mode_starts_again_unpinned():
    # `--mode full` re-executes the CLI with the pins removed; CIFAR10 is then missing here
    result = _run("import runpy, sys\nsys.argv = ['labkit', 'run', 'table1', '--mode', 'full']\n"
                  "runpy.run_module('labkit', run_name='__main__')", _bare_env(), check=False)
    assert result.returncode == 2
    assert "CIFAR10: no data directory; set LABKIT_CIFAR_DIR" in result.stderr
    assert "warning: full mode on the CPU" in result.stderr
    assert "Traceback" not in result.stderr  # a missing dataset is one clean paragraph


QEMU = shutil.which("qemu-x86_64")


@pytest.mark.skipif(QEMU is None,
                    reason="needs qemu-x86_64 (Debian's qemu-user; .ci/run installs it)")
def test_same_numbers_on_an_emulated_avx2_cpu():
    """The machine that fails is one without AVX-512: emulate one. ``qemu-x86_64 -cpu
    Haswell`` runs this very Python on a CPU that offers AVX2 but not AVX-512 and reports
    other cache sizes, so every library dispatches as it would there (here, ATen reports
    AVX2 without any pin). Pinned, the numbers equal the host's bit for bit; unpinned on an
    AVX-512 host they would not (the AVX2 test above). One SGD step each of chapter 7's
    networks and 60 GD steps keep the emulated run at about two minutes."""
    args = ("1", "60")
    env = cpu_pins.pinned_env(_bare_env())
    host = _run(PROBE, env, args=args).stdout
    emulated = _run(PROBE, env, args=args, prefix=(QEMU, "-cpu", "Haswell"))
    assert emulated.stdout == host, emulated.stderr[-2000:]
    cap = _run("import torch; print(torch.backends.cpu.get_cpu_capability())",
               _bare_env(LABKIT_PIN_CPU="0"), prefix=(QEMU, "-cpu", "Haswell"))
    assert cap.stdout.strip() == "AVX2"  # the emulated CPU has no AVX-512
