"""Distributed GFS (Appendix D, Algorithm 2; chapter 8) against centralized GFS.

The reference is ``labkit.greedy_forward_selection`` (itself tested against slow references
in test_gfs.py), run in this process; a plain brute-force loop written here checks the
instances without near-ties as well. Distributed runs use gloo on CPU: one process in this
process's own group, two and three spawned processes, and a torchrun launch. Every selection
and every loss must be *identical* (bitwise), ties included: duplicated rows sit on both sides
of the rank boundaries of 2 and 3 processes. Failure tests inject a crash or a hang on one
rank and check that the other exits with an error instead of hanging.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import time
from pathlib import Path

import dist_faults
import numpy as np
import pytest
import torch
import torch.distributed as dist

import labkit
from labkit import distributed as D
from labkit.distributed import __main__ as cli
from labkit.distributed import launch

N = 37  # not divisible by 2 or 3: blocks [0,19) [19,37) and [0,13) [13,25) [25,37)
M = 40
COPIES = {12: (13, 30), 18: (19,)}  # original -> duplicates (same rank / other ranks)


def brute_force(Phi, y, k, loss, replacement):
    """GFS from the definition: each candidate multiset's output averaged from scratch,
    strict '<' so that exact ties go to the lowest index."""
    Phi, y = np.asarray(Phi, np.float64), np.asarray(y, np.float64)
    S = []
    for _ in range(k):
        best_i, best = None, np.inf
        for i in range(len(Phi)):
            if not replacement and i in S:
                continue
            z = Phi[S + [i]].mean(0)
            value = (np.mean((z - y) ** 2) if loss == "mse" else
                     np.mean(np.logaddexp(0, z) - y * z))
            if value < best:
                best_i, best = i, value
        S.append(best_i)
    return np.array(S)


def _labels(rng, target, loss):
    if loss == "mse":
        return np.clip(target + 0.05 * rng.normal(size=target.shape), -1, 1)
    return (target > 0).astype(float)


def make_problems() -> dict:
    rng = np.random.default_rng(2024)
    problems = {}
    for loss in ("mse", "bce"):
        for replacement in (True, False):
            k = N + 8 if replacement else N  # past N with replacement: repeats happen
            Phi = rng.normal(size=(N, M))
            y = _labels(rng, rng.normal(size=M) * 0.5, loss)
            problems[f"random-{loss}-{'rep' if replacement else 'norep'}"] = dict(
                Phi=Phi, y=y, k=k, loss=loss, replacement=replacement)
            # ties: the best rows have copies on the same and on later ranks
            Phi = rng.normal(size=(N, M)) * (3 if loss == "bce" else 1)
            for original, copies in COPIES.items():
                Phi[list(copies)] = Phi[original]
            y = _labels(rng, 0.5 * (Phi[12] + Phi[18]), loss)
            problems[f"ties-{loss}-{'rep' if replacement else 'norep'}"] = dict(
                Phi=Phi, y=y, k=k, loss=loss, replacement=replacement)
    for replacement in (True, False):
        # small integers: many exact ties between different multisets
        problems[f"integers-{'rep' if replacement else 'norep'}"] = dict(
            Phi=rng.integers(-2, 3, size=(N, 5)).astype(float),
            y=rng.integers(-2, 3, size=5).astype(float), k=20, loss="mse",
            replacement=replacement)
    Phi = rng.normal(size=(N, M)).astype(np.float32)
    Phi[30] = Phi[12]
    problems["float32-ties"] = dict(Phi=Phi, y=np.clip(Phi[12], -1, 1), k=10, loss="mse",
                                    replacement=True)
    # fewer neurons than processes: with P = 3 some rank holds nothing
    problems["N2-bce"] = dict(Phi=rng.normal(size=(2, M)), y=(rng.random(M) > 0.5) * 1.0,
                              k=2, loss="bce", replacement=False)
    problems["N1-mse"] = dict(Phi=rng.normal(size=(1, M)), y=rng.uniform(-1, 1, M), k=3,
                              loss="mse", replacement=True)
    return problems


PROBLEMS = make_problems()
NAMES = list(PROBLEMS)
CENTRAL = {name: labkit.greedy_forward_selection(**p) for name, p in PROBLEMS.items()}


def assert_identical(res, name):
    ref = CENTRAL[name]
    np.testing.assert_array_equal(res.order, ref.order, err_msg=f"{name}: selections differ")
    np.testing.assert_array_equal(res.losses, ref.losses, err_msg=f"{name}: losses differ")
    np.testing.assert_array_equal(res.counts, ref.counts)
    assert (res.loss, res.replacement) == (ref.loss, ref.replacement)


@pytest.fixture(scope="module")
def one_process_runs():
    """P = 1: this process is the whole (gloo) group."""
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{D.free_port()}",
                            rank=0, world_size=1)
    try:
        return {name: D.distributed_gfs(p["Phi"], p["y"], p["k"], loss=p["loss"],
                                        replacement=p["replacement"])
                for name, p in PROBLEMS.items()}
    finally:  # released at once: the CLI test below makes its own group in this process
        dist.destroy_process_group()


@pytest.fixture(scope="module", params=[2, 3], ids=["P2", "P3"])
def spawned_runs(request):
    """All problems in one launch of P spawned processes (start-up costs seconds)."""
    P = request.param
    runs = D.spawn_gfs_batch(list(PROBLEMS.values()), nprocs=P, timeout_s=30, deadline_s=120)
    return P, dict(zip(NAMES, runs, strict=True))


# --------------------------------------------------------------------- the reference itself


@pytest.mark.parametrize("name", [n for n in NAMES if n.startswith(("random", "ties"))])
def test_reference_agrees_with_brute_force(name):
    p = PROBLEMS[name]
    np.testing.assert_array_equal(CENTRAL[name].order,
                                  brute_force(p["Phi"], p["y"], p["k"], p["loss"],
                                              p["replacement"]))


@pytest.mark.parametrize("loss", ["mse", "bce"])
def test_tie_instances_really_tie_across_ranks(loss):
    """The duplicates are picked as intended, so the tie tests test something."""
    rep, norep = CENTRAL[f"ties-{loss}-rep"].order, CENTRAL[f"ties-{loss}-norep"].order
    assert set(rep[:2]) == {12, 18}
    assert not {13, 19, 30} & set(rep)
    pos = {int(i): j for j, i in enumerate(norep)}
    assert pos[12] < pos[13] < pos[30] and pos[18] < pos[19]
    assert pos[13] < 4  # the copy is wanted early, while its twin is already taken


# ------------------------------------------------------------- distributed == centralized


@pytest.mark.parametrize("name", NAMES)
def test_one_process_identical(one_process_runs, name):
    res, times = one_process_runs[name]
    assert_identical(res, name)
    assert times["step_s"].shape == (PROBLEMS[name]["k"],)


@pytest.mark.parametrize("name", NAMES)
def test_spawned_identical(spawned_runs, name):
    P, runs = spawned_runs
    res, timings = runs[name]
    assert_identical(res, name)
    p = PROBLEMS[name]
    assert timings["nprocs"] == P and timings["step_s"].shape == (P, p["k"])
    m, itemsize = p["Phi"].shape[1], p["Phi"].itemsize
    assert timings["bytes_per_step"] == D.bytes_per_step(m, P, itemsize=itemsize,
                                                         loss=p["loss"])


# ------------------------------------------------------------------------------- failures


@pytest.fixture
def fault(monkeypatch):
    """``fault(rank, step, mode)``: the next spawned run has that rank fail after that
    step (``tests/dist_faults.py``; labkit's loop has no fault hook)."""
    def set_fault(*spec):
        monkeypatch.setattr(launch, "_worker", functools.partial(dist_faults.worker,
                                                                 fault=spec))
    return set_fault


def test_crashed_rank_makes_the_others_fail_not_hang(fault):
    p = PROBLEMS["random-mse-rep"]
    start = time.monotonic()
    fault(1, 2, "crash")
    with pytest.raises(D.DistributedGFSError) as err:
        D.spawn_gfs(p["Phi"], p["y"], 10, nprocs=2, timeout_s=5, deadline_s=90)
    elapsed = time.monotonic() - start
    outcomes = err.value.outcomes
    assert all(o["exitcode"] is not None for o in outcomes.values()), "a process is still alive"
    assert outcomes[1]["exitcode"] == 3
    # the survivor noticed by itself (not terminated by the launcher), at the next collective
    assert outcomes[0]["exitcode"] == 1 and not outcomes[0]["terminated"]
    assert "rank 0" in outcomes[0]["error"] and "step 3" in outcomes[0]["error"]
    assert "peer process died" in outcomes[0]["error"]
    assert "rank 1: exit code 3" in str(err.value)
    assert elapsed < 90


def test_silent_rank_times_out(fault):
    p = PROBLEMS["random-bce-rep"]
    start = time.monotonic()
    fault(1, 1, "hang")
    with pytest.raises(D.DistributedGFSError) as err:
        D.spawn_gfs(p["Phi"], p["y"], 10, loss="bce", nprocs=2, timeout_s=1, deadline_s=90)
    elapsed = time.monotonic() - start
    outcomes = err.value.outcomes
    assert all(o["exitcode"] is not None for o in outcomes.values())
    assert not outcomes[0]["terminated"] and "timeout (1 s)" in outcomes[0]["error"]
    assert "Timed out" in outcomes[0]["error"]
    assert outcomes[1]["terminated"]  # the silent rank had to be stopped
    assert elapsed < 90


def test_deadline_stops_every_rank(fault):
    """A run past ``deadline_s`` is stopped whole, every rank reported as terminated."""
    p = PROBLEMS["random-mse-rep"]
    fault(0, 0, "hang")
    start = time.monotonic()
    with pytest.raises(D.DistributedGFSError) as err:
        D.spawn_gfs(p["Phi"], p["y"], 5, nprocs=2, timeout_s=60, deadline_s=20)
    assert time.monotonic() - start < 60  # the deadline, not the 60 s collective timeout
    assert all(o["terminated"] for o in err.value.outcomes.values())


# ------------------------------------------------------------------------- command line


def test_import_labkit_loads_no_distributed_machinery():
    """``import labkit`` leaves labkit.distributed and torch's elastic launcher unloaded
    (torch itself always imports ``torch.distributed``'s core)."""
    code = ("import sys, labkit; print(sorted(m for m in sys.modules if m.startswith("
            "('labkit.distributed', 'torch.distributed.elastic', 'torch.distributed.run'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]", out
    assert hasattr(labkit, "spawn_gfs")  # loaded on first use


def test_torchrun_cli_matches_centralized(tmp_path):
    rng = np.random.default_rng(5)
    Phi = rng.normal(size=(11, 7))  # P = 2: rows [0, 6) and [6, 11)
    Phi[8] = Phi[3]
    y = np.clip(Phi[3] + 0.1 * rng.normal(size=7), -1, 1)
    np.savez(tmp_path / "phi.npz", Phi=Phi, y=y)
    out = tmp_path / "out" / "result.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
           "2", "-m", "labkit.distributed", "--data", str(tmp_path / "phi.npz"), "--k", "9",
           "--no-replacement", "--out", str(out), "--timeout", "30"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=150)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # `import labkit` does not import labkit.distributed, so runpy runs it once per rank
    assert "RuntimeWarning" not in proc.stderr, proc.stderr[-3000:]
    got = json.loads(out.read_text())
    ref = labkit.greedy_forward_selection(Phi, y, 9, replacement=False)
    assert got["order"] == ref.order.tolist() and got["losses"] == ref.losses.tolist()
    assert (got["nprocs"], got["N"], got["m"]) == (2, 11, 7)
    assert got["bytes_per_step"] == D.bytes_per_step(7, 2)
    assert not list(out.parent.glob(".*.tmp"))


def test_torchrun_failure_summary_names_the_failing_rank(tmp_path):
    """``@record`` on the CLI's main: torchrun's summary carries the failing rank's error
    instead of "error_file: <N/A>"."""
    rng = np.random.default_rng(5)
    np.savez(tmp_path / "phi.npz", Phi=rng.normal(size=(11, 7)), y=rng.uniform(-1, 1, 7))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
           "2", dist_faults.__file__, "1:2:raise", "--data", str(tmp_path / "phi.npz"),
           "--k", "5", "--out", str(tmp_path / "out.json"), "--timeout", "20"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=150)
    assert proc.returncode != 0
    summary = proc.stderr[proc.stderr.rfind("Failures:"):]
    assert "injected fault on rank 1 after step 2" in summary, proc.stderr[-3000:]
    assert "error_file: <N/A>" not in summary.split("Root Cause")[-1]


def test_cli_network_checkpoint_single_process(tmp_path, monkeypatch):
    """--net: the ranks build their rows of Phi from a TwoLayerNet state dict."""
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(D.free_port()))
    X, y = labkit.teacher_student(30, 4, seed=1)
    net = labkit.TwoLayerNet(4, 16, activation="relu", generator=torch.Generator().manual_seed(0))
    torch.save(net.state_dict(), tmp_path / "net.pt")
    torch.save({"X": X, "y": y}, tmp_path / "xy.pt")
    out = tmp_path / "r.json"
    cli.main(["--net", str(tmp_path / "net.pt"), "--activation", "relu", "--data",
            str(tmp_path / "xy.pt"), "--k", "12", "--out", str(out)])
    with torch.no_grad():
        ref = labkit.greedy_forward_selection(net.neuron_outputs(X), y, 12)
    got = json.loads(out.read_text())
    assert got["order"] == ref.order.tolist() and got["losses"] == ref.losses.tolist()


@pytest.mark.parametrize("save", ["npz", "npz-compressed", "npy", "pt"])
def test_cli_reads_its_rows_memory_mapped(tmp_path, save):
    """What a rank reads: a memory map of the stored matrix (only its rows are paged in)
    wherever the format allows, with the same values as loading it whole."""
    rng = np.random.default_rng(3)
    Phi, y = rng.normal(size=(9, 4)).astype(np.float32), rng.uniform(-1, 1, 4)
    path = tmp_path / "phi.npz"
    if save == "npz":
        np.savez(path, Phi=Phi, y=y)
    elif save == "npz-compressed":
        np.savez_compressed(path, Phi=Phi, y=y)
    elif save == "npy":
        path = tmp_path / "Phi.npy"
        np.save(path, Phi)
        np.save(tmp_path / "y.npy", y)
    else:
        path = tmp_path / "phi.pt"
        torch.save({"Phi": torch.from_numpy(Phi), "y": torch.from_numpy(y)}, path)
    got = cli._load_table(path, ("Phi", "y"))
    np.testing.assert_array_equal(np.asarray(got["Phi"]), Phi)
    np.testing.assert_array_equal(np.asarray(got["y"]), y)
    if save in ("npz", "npy"):
        assert isinstance(got["Phi"], np.memmap)
    elif save == "pt":  # torch.load(mmap=True): the file is mapped into this process
        assert str(path) in Path("/proc/self/maps").read_text()


@pytest.mark.parametrize("args, words", [
    (["--data", "missing.npz", "--k", "3", "--out", "o.json"], ["--data", "no such file"]),
    (["--data", "{phi}", "--k", "0", "--out", "o.json"], ["--k", "positive"]),
    (["--data", "{phi}", "--k", "50", "--no-replacement", "--out", "o.json"],
     ["k: 50 exceeds", "N=11"]),
    (["--data", "{phi}", "--k", "3", "--loss", "hinge", "--out", "o.json"],
     ["--loss", "invalid choice", "mse"]),
    (["--data", "{xy}", "--k", "3", "--out", "o.json"], ["--data", "lacks Phi"]),
])
def test_cli_bad_input(tmp_path, capsys, monkeypatch, args, words):
    monkeypatch.chdir(tmp_path)
    np.savez(tmp_path / "phi.npz", Phi=np.ones((11, 3)), y=np.zeros(3))
    np.savez(tmp_path / "xy.npz", X=np.ones((3, 2)), y=np.zeros(3))
    args = [a.format(phi="phi.npz", xy="xy.npz") for a in args]
    with pytest.raises(SystemExit) as exit_:
        cli.main(args)
    assert exit_.value.code == 2
    message = capsys.readouterr().err
    assert all(w in message for w in words), message
    assert not (tmp_path / "o.json").exists()


# ---------------------------------------------------------------------------- bad input


def _message(call) -> str:
    with pytest.raises(ValueError) as err:
        call()
    return str(err.value)


@pytest.mark.parametrize("kwargs", [
    dict(k=38, replacement=False), dict(k=0), dict(k=2.5), dict(loss="hinge"),
    dict(y=np.full(M, 2.0), loss="bce"), dict(Phi=np.ones(5)), dict(y=np.zeros(3)),
])
def test_same_input_errors_as_centralized(kwargs):
    """Checked before anything is spawned, with the centralized function's messages."""
    p = PROBLEMS["random-mse-rep"]
    args = dict(Phi=p["Phi"], y=p["y"], k=5, loss="mse", replacement=True) | kwargs
    expected = _message(lambda: labkit.greedy_forward_selection(**args))
    assert _message(lambda: D.spawn_gfs(**args, nprocs=2)) == expected


@pytest.mark.parametrize("nprocs", [0, -1, 1.5, True])
def test_bad_process_count(nprocs):
    p = PROBLEMS["random-mse-rep"]
    assert _message(lambda: D.spawn_gfs(p["Phi"], p["y"], 3, nprocs=nprocs)).startswith(
        "nprocs: must be a positive integer")


def test_bad_timeout_and_problem_list():
    p = PROBLEMS["random-mse-rep"]
    assert "timeout_s" in _message(lambda: D.spawn_gfs(p["Phi"], p["y"], 3, timeout_s=0))
    assert "problems[0]" in _message(lambda: D.spawn_gfs_batch([{"Phi": p["Phi"]}]))
    assert "problems: empty" in _message(lambda: D.spawn_gfs_batch([]))


# ------------------------------------------------------------ partition, bytes, cost model


@pytest.mark.parametrize("N_", [1, 2, 5, 36, 37, 100])
@pytest.mark.parametrize("P", [1, 2, 3, 4, 7])
def test_partition_is_contiguous_and_even(N_, P):
    bounds = D.partition_neurons(N_, P)
    sizes = [hi - lo for lo, hi in bounds]
    assert len(bounds) == P and bounds[0][0] == 0 and bounds[-1][1] == N_
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))
    assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)


def test_partition_bad_input():
    assert _message(lambda: D.partition_neurons(0, 2)).startswith("N:")
    assert _message(lambda: D.partition_neurons(5, 0)).startswith("nprocs:")


def test_bytes_per_step():
    assert D.bytes_per_step(1000, 1) == 0
    assert D.bytes_per_step(1000, 2) == 2 * (8 + 8) + 8000
    assert D.bytes_per_step(1000, 4, itemsize=4, loss="bce") == 4 * (2 * 4 + 8) + 4000
    assert _message(lambda: D.bytes_per_step(10, 2, loss="l1")).startswith("loss:")


def test_cost_model_fit_recovers_its_parameters():
    import pandas as pd

    truth = D.CostModel(overhead_s=2e-4, s_per_entry=1e-9, latency_s=5e-5, bandwidth_Bps=2e9)
    rows = []
    for N_ in (500, 2000, 8000):
        for m in (1000, 20000):
            for P in (1, 2, 3, 4):
                step = float(truth.step_time(N_, m, P))
                comm = float(truth.step_time(0, m, P)) - truth.overhead_s  # no scoring
                rows.append(dict(N=N_, m=m, nprocs=P, itemsize=8, step_s=step, comm_s=comm))
    fit = D.fit_cost_model(pd.DataFrame(rows))
    for field in ("overhead_s", "s_per_entry", "latency_s", "bandwidth_Bps"):
        assert getattr(fit, field) == pytest.approx(getattr(truth, field), rel=1e-6), field
    assert truth.speedup(10**6, 1000, 4) > 3.5 > truth.speedup(64, 1000, 4)
    # latency and bandwidth measured separately (measure_collectives' columns)
    probe = pd.DataFrame({"nprocs": 2, "bytes": [8e3, 8e4, 8e5],
                          "allreduce_s": truth.latency_s,
                          "broadcast_s": [truth.latency_s + b / truth.bandwidth_Bps
                                          for b in (8e3, 8e4, 8e5)]})
    both = D.fit_cost_model(pd.DataFrame(rows), probe)
    assert both.latency_s == pytest.approx(truth.latency_s, rel=1e-9)
    assert both.bandwidth_Bps == pytest.approx(truth.bandwidth_Bps, rel=1e-6)
    n_star = float(truth.break_even(1000, 4))  # between two multiples of P it crosses 1
    assert truth.speedup(4 * np.floor(n_star / 4), 1000, 4) < 1 < truth.speedup(
        4 * np.ceil(n_star / 4), 1000, 4)


def test_channel_cost_model_fit_and_bound():
    truth = D.ChannelCostModel(fixed_s=2.0, per_candidate_s=0.5, latency_s=1e-3)
    n = np.array([10, 25, 50])
    fit = D.fit_channel_cost(n, truth.step_time(n, 1), truth.latency_s)
    assert fit.fixed_s == pytest.approx(2.0, rel=1e-9)
    assert fit.per_candidate_s == pytest.approx(0.5, rel=1e-9)
    # closed form: t(50, 4) = 2 + 0.5 * ceil(50/4) + 2 rounds of latency
    assert float(truth.step_time(50, 4)) == pytest.approx(2 + 0.5 * 13 + 2e-3)
    # the unsplit fixed part bounds the speed-up: (2 + 0.5 * 50) / 2 = 13.5 for any P
    assert float(truth.speedup(50, 50)) == pytest.approx(27 / (2 + 0.5 + 6e-3))
    assert float(truth.speedup(50, 10**6)) < 13.5
    assert float(truth.speedup(50, 2)) == pytest.approx(27 / (2 + 12.5 + 1e-3))
    with pytest.raises(ValueError, match="^n_candidates:"):
        D.fit_channel_cost([5, 5], [1.0, 1.0], 0.0)
    with pytest.raises(ValueError, match="^latency_s:"):
        D.fit_channel_cost([5, 10], [1.0, 2.0], -1.0)


def test_usable_nprocs_on_cpu():
    assert D.usable_nprocs((1, 2, 64), device="cpu") == (1, 2, 64)
