"""Data parallel training (dftad.parallel): molecules spread over 2 CPU host devices give the
1-device loss and gradient. JAX fixes its device count at start-up, so the check runs in a
fresh Python process with ``--xla_force_host_platform_device_count=2`` (2, not 4: each device
compiles its own programs, and 2 devices with 2 species each test the same sharing in 25% less
time)."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from dftad import parallel, train

SCRIPT = textwrap.dedent("""
    import json, shutil, sys
    from pathlib import Path
    import jax, numpy as np
    from dftad import train

    assert len(jax.local_devices()) == 2, jax.local_devices()
    data = Path(sys.argv[1])
    (data / "species").mkdir(parents=True)
    for n in ("h2", "h", "oh", "o"):
        shutil.copy(f"molecules/w4-11/species/{n}.xyz", data / "species" / f"{n}.xyz")
    (data / "reactions.res").write_text(
        "$tmer {h2,h}/$f  x -1 2 $w 109.493\\n"
        "$tmer {oh,o,h}/$f  x -1 1 1 $w 107.213\\n")

    def trainer(devices):
        cfg = train.make_config({
            "functional": {"model": "b3lyp3", "start": {"a0": 0.24, "ax": 0.6, "ac": 0.9}},
            "data": {"path": str(data), "basis": "6-31g", "grid_level": 2},
            "scf": {"conv_tol": 1e-12, "conv_tol_grad": 1e-8},
            "run": {"devices": devices}})
        return train.Trainer.from_config(cfg)

    out = {}
    for devices in (1, 2):
        t = trainer(devices)
        theta = train.start_values(t.model, {"model": "b3lyp3",
                                             "start": {"a0": 0.24, "ax": 0.6, "ac": 0.9}})
        loss, grad, errors, failed = t.loss(t.data.reactions, theta)
        used = {n: sorted(d.id for d in sp.problem.s1e.devices()) for n, sp in t.species.items()}
        out[devices] = {"loss": loss, "grad": {k: float(v) for k, v in grad.items()},
                        "errors": errors, "failed": failed, "devices": used}
    print("RESULT " + json.dumps(out))
""")


def test_two_devices_give_the_one_device_gradient(tmp_path):
    """Four species (closed and open shell) on 2 host devices (each owned by device i mod 2 of
    the sorted names, its SCF's arrays really on it): the loss, errors and gradient equal one
    device's to 1e-12."""
    env = {**os.environ, "XLA_FLAGS": (os.environ.get("XLA_FLAGS", "")
                                       + " --xla_force_host_platform_device_count=2"),
           "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "data")], env=env,
                          capture_output=True, text=True, timeout=1800,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")][-1]
    out = json.loads(line[len("RESULT "):])
    one, two = out["1"], out["2"]
    assert not one["failed"] and not two["failed"] and len(one["errors"]) == 2
    assert all(ids == [0] for ids in one["devices"].values())
    expected = {n: [i % 2] for i, n in enumerate(sorted(one["devices"]))}
    assert two["devices"] == expected and len({d[0] for d in expected.values()}) == 2
    assert abs(two["loss"] - one["loss"]) <= 1e-12 * abs(one["loss"])
    for k, g in one["grad"].items():
        assert abs(two["grad"][k] - g) <= 1e-12 * max(abs(g), 1e-300), k
    for k, e in one["errors"].items():
        assert abs(two["errors"][k] - e) <= 1e-12 * max(abs(e), 1.0)


def test_device_count_errors():
    with pytest.raises(ValueError, match="devices asked for"):
        parallel.local_devices(10_000)
    with pytest.raises(train.ConfigError, match="devices must be"):
        train.make_config({"data": {"path": "x"}, "run": {"devices": -1}})


MULTIPROCESS = textwrap.dedent("""
    import json, sys
    role, port, data = sys.argv[1], sys.argv[2], sys.argv[3]
    import jax
    if role != "single":
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(coordinator_address=f"localhost:{port}", num_processes=2,
                                   process_id=int(role))
    from dftad import train
    cfg = train.make_config({
        "functional": {"model": "b3lyp3", "start": {"a0": 0.24, "ax": 0.6, "ac": 0.9}},
        "data": {"path": data, "basis": "6-31g", "grid_level": 2},
        "scf": {"conv_tol": 1e-12, "conv_tol_grad": 1e-8}})
    t = train.Trainer.from_config(cfg)
    theta = train.start_values(t.model, cfg["functional"])
    loss, grad, errors, failed = t.loss(t.data.reactions, theta)
    print("RESULT " + json.dumps({"loss": loss, "grad": {k: float(v) for k, v in grad.items()},
                                  "errors": errors, "failed": failed, "own": sorted(t.species)}))
""")


@pytest.mark.slow
def test_two_processes_give_the_one_process_gradient(tmp_path):
    """jax.distributed with two CPU processes (gloo collectives, a localhost coordinator): each
    computes its own two of the four species, and both end with the loss, errors and gradient
    of a single process, to 1e-12."""
    import shutil
    import socket

    data = tmp_path / "data"
    (data / "species").mkdir(parents=True)
    for n in ("h2", "h", "oh", "o"):
        shutil.copy(f"molecules/w4-11/species/{n}.xyz", data / "species" / f"{n}.xyz")
    (data / "reactions.res").write_text("$tmer {h2,h}/$f  x -1 2 $w 109.493\n"
                                        "$tmer {oh,o,h}/$f  x -1 1 1 $w 107.213\n")
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = str(s.getsockname()[1])
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    procs = [subprocess.Popen([sys.executable, "-c", MULTIPROCESS, role, port, str(data)],
                              env=env, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for role in ("0", "1", "single")]
    outs = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=1800)
        assert p.returncode == 0, stderr[-3000:]
        line = [x for x in stdout.splitlines() if x.startswith("RESULT ")][-1]
        outs.append(json.loads(line[len("RESULT "):]))
    first, second, single = outs
    assert first["own"] == ["h", "o"] and second["own"] == ["h2", "oh"]
    assert len(single["own"]) == 4 and not single["failed"] and len(single["errors"]) == 2
    for out in (first, second):
        assert abs(out["loss"] - single["loss"]) <= 1e-12 * abs(single["loss"])
        for k, g in single["grad"].items():
            assert abs(out["grad"][k] - g) <= 1e-12 * abs(g), k
        for k, e in single["errors"].items():
            assert abs(out["errors"][k] - e) <= 1e-12 * max(abs(e), 1.0)
