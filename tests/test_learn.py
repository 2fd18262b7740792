"""Learnable functionals (dftad.xc.models), their SCF-consistent parameter gradients
(dftad.learn) and training (dftad.train): gradients against finite differences of converged
energies and losses, against the implicitly differentiated whole program, checkpoints and
resuming."""

import dataclasses
import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from pyscf import gto, scf

import dftad
from dftad import learn, train
from dftad.constants import HARTREE_KCAL
from dftad.xc import parse_xc
from dftad.xc.models import B3LYP3, Subset, get_path, model_from_config, set_path

BASIS = "6-31g"
TIGHT = {"conv_tol": 1e-12, "conv_tol_grad": 1e-8}


def _dataset(tmp_path, reactions):
    """A dataset folder with W4-11 species and the given .res lines."""
    (tmp_path / "species").mkdir(parents=True)
    names = {n for line in reactions for n in line.split("{")[1].split("}")[0].split(",")}
    for n in names:
        shutil.copy(f"molecules/w4-11/species/{n}.xyz", tmp_path / "species" / f"{n}.xyz")
    (tmp_path / "reactions.res").write_text("\n".join(reactions) + "\n")
    return tmp_path


H2 = "$tmer {h2,h}/$f  x -1 2 $w 109.493"
OH = "$tmer {oh,o,h}/$f  x -1 1 1 $w 107.213"


# ---------------------------------------------------------------------- models
def test_b3lyp3_at_its_defaults_is_b3lyp():
    f, ref = B3LYP3().functional(B3LYP3().init()), parse_xc("b3lyp")
    assert f.components == ref.components
    for a, b in zip(jax.tree.leaves(f.params), jax.tree.leaves(ref.params)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-15)


def test_subset_paths_and_errors():
    f = parse_xc("pbe")
    assert float(get_path(f.params, "components.0.kappa")) == pytest.approx(0.804)
    p = set_path(f.params, "components.0.kappa", jnp.asarray(0.9))
    assert float(get_path(p, "components.0.kappa")) == 0.9
    assert float(get_path(f.params, "components.0.kappa")) == pytest.approx(0.804)
    with pytest.raises(ValueError, match=r"no parameter 'components\.0\.kapa'"):
        Subset("pbe", ("components.0.kapa",))
    with pytest.raises(ValueError, match="group of parameters"):
        Subset("pbe", ("components.0",))
    with pytest.raises(ValueError, match="not range separated"):
        Subset("b3lyp", ("omega",))
    with pytest.raises(ValueError, match="no exact exchange"):
        Subset("pbe", ("alpha",))
    with pytest.raises(ValueError, match="unknown model"):
        model_from_config({"model": "b3lyp4"})
    b97 = Subset("b97", ("components.0.c_x", "components.0.c_ss", "components.0.c_ab", "alpha"))
    assert sum(np.size(v) for v in b97.init().values()) >= 9


# ---------------------------------------------------------------------- gradients
def _species(name, model, **kwargs):
    mol = dftad.load(f"molecules/w4-11/species/{name}.xyz")
    return learn.Species.build(name, mol, model.functional(model.init()), BASIS, grid_level=2,
                               **{**TIGHT, **kwargs})


@pytest.mark.parametrize("name, model", [
    ("h2o", B3LYP3()),
    ("oh", B3LYP3()),
    ("h2o", Subset("pbe0", ("components.0.kappa", "components.0.mu", "alpha"))),
    ("nh2", Subset("b97", ("components.0.c_x", "components.0.c_ab", "alpha"))),
])
def test_energy_gradient_equals_finite_differences(name, model):
    """dE/dtheta at the converged density (Hellmann-Feynman through the SCF pieces) equals
    central differences of converged SCF energies, closed and open shell, to 1e-6 relative."""
    sp = _species(name, model)
    theta = model.init()
    p = learn.energy_and_grad(sp, model, theta)
    assert p.converged
    h = 1e-4
    for key, value in theta.items():
        for i in np.ndindex(np.shape(value)):
            e = []
            for s in (1.0, -1.0):
                t = dict(theta)
                t[key] = jnp.asarray(value).at[i].add(s * h)
                e.append(learn.energy_and_grad(sp, model, t).e_tot)
            fd = (e[0] - e[1]) / (2 * h)
            g = float(np.asarray(p.grad[key])[i])
            assert abs(g - fd) <= 1e-6 * max(abs(fd), 1e-3), (key, i, g, fd)


def test_gradient_does_not_depend_on_the_scf_path():
    """The same converged density reached in few or in many (damped) cycles gives the same
    gradient: it is evaluated at the fixed point from the density alone
    (learn.params_gradient), nothing of the iterations is kept or differentiated. After few or
    many cycles it runs the very same compiled executables on inputs of the same shapes (none is
    added), so its memory and time cannot depend on the cycles (benchmarks/training.py times
    them)."""
    model = B3LYP3()
    fast = learn.energy_and_grad(_species("h2o", model), model, model.init(), warm_start=False)
    pieces = (learn._xc_params_block, learn._exchange_energies)
    compiled = [p.cache_size() for p in pieces]
    slow_sp = _species("h2o", model, damp=0.8, diis_start_cycle=40, max_cycle=200)
    slow = learn.energy_and_grad(slow_sp, model, model.init(), warm_start=False)
    assert [p.cache_size() for p in pieces] == compiled and all(compiled)
    assert slow.converged and fast.converged
    assert slow.cycles >= 40 > 3 * fast.cycles / 2
    for k in fast.grad:
        np.testing.assert_allclose(slow.grad[k], fast.grad[k], rtol=1e-7)


@pytest.mark.slow
@pytest.mark.parametrize("name, model", [
    ("nh2", B3LYP3()),
    ("h2o", Subset("wb97x", ("omega", "alpha"))),
])
def test_gradient_equals_the_implicit_whole_program(name, model):
    """The pieces' Hellmann-Feynman gradient equals jax.grad of the implicitly differentiated
    SCF program (energy.kernel); omega only through the latter, checked against finite
    differences. (Open shell: NH2, not OH, whose flat pi-hole direction lets the two SCF paths
    stop at energies 9e-7 Ha apart. Converged to 1e-10: the SCF noise of the energies over h
    stays well below 1e-6 of the omega derivative.)"""
    sp = _species(name, model, conv_tol_grad=1e-10)
    theta = model.init()
    ref = learn.energy_and_grad_implicit(sp, model, theta)
    if "omega" not in theta:
        got = learn.energy_and_grad(sp, model, theta)
        assert abs(got.e_tot - ref.e_tot) < 1e-9
        for k in theta:
            np.testing.assert_allclose(got.grad[k], ref.grad[k], rtol=1e-7)
        return
    with pytest.raises(ValueError, match="omega"):
        learn.energy_and_grad(sp, model, theta)
    # five-point stencil: the central difference's h^2 error is 1.2e-6 of the derivative at
    # h = 1e-4 (measured: it falls 4x per halving of h, to the analytic value)
    h = 1e-4
    e = [learn.energy_and_grad_implicit(sp, model, {**theta, "omega": theta["omega"] + s}).e_tot
         for s in (h, -h, 2 * h, -2 * h)]
    fd = (8 * (e[0] - e[1]) - (e[2] - e[3])) / (12 * h)
    assert abs(float(ref.grad["omega"]) - fd) <= 1e-6 * abs(fd)


# ---------------------------------------------------------------------- training
def _config(tmp_path, data, steps=3, **run):
    return train.make_config({
        "functional": {"model": "b3lyp3", "start": {"a0": 0.24, "ax": 0.6, "ac": 0.9}},
        "data": {"path": str(data), "basis": BASIS, "grid_level": 2},
        "scf": TIGHT,
        "optimizer": {"name": "adam", "learning_rate": 0.01},
        "run": {"steps": steps, "batch": 1, "seed": 3, "checkpoint": str(tmp_path / "run"),
                "eval_every": 0, **run},
    })


def _assert_central_differences(trainer, reactions, theta, grad, h=1e-5):
    """grad equals central differences of the SCF-converged loss to 1e-6 relative."""
    for k in theta:
        lp = trainer.loss(reactions, {**theta, k: theta[k] + h})[0]
        lm = trainer.loss(reactions, {**theta, k: theta[k] - h})[0]
        fd = (lp - lm) / (2 * h)
        assert abs(float(grad[k]) - fd) <= 1e-6 * abs(fd), (k, float(grad[k]), fd)


def test_loss_gradient_equals_finite_differences(tmp_path):
    """The reaction-energy loss's gradient (kcal/mol units, open-shell atoms included) equals
    central differences of the SCF-converged loss to 1e-6 relative."""
    cfg = _config(tmp_path, _dataset(tmp_path / "data", [H2, OH]))
    trainer = train.Trainer.from_config(cfg)
    theta = train.start_values(trainer.model, cfg["functional"])
    reactions = trainer.data.reactions
    _, grad, errors, failed = trainer.loss(reactions, theta)
    assert not failed and len(errors) == 2
    _assert_central_differences(trainer, reactions, theta, grad)


def test_resume_gives_the_same_parameters_bit_for_bit(tmp_path):
    """A run stopped after one step and resumed ends with exactly the parameters (and losses)
    of a run that was never interrupted."""
    data = _dataset(tmp_path / "data", [H2, OH])
    whole = train.run(_config(tmp_path / "a", data), progress=False)
    cfg = _config(tmp_path / "b", data)
    first = train.run(cfg, progress=False, stop_after=1)
    assert first.step == 1
    resumed = train.run(cfg, resume=True, progress=False)
    assert resumed.step == whole.step == 3
    for k in whole.theta:
        assert np.array_equal(np.asarray(whole.theta[k]), np.asarray(resumed.theta[k]))
    assert [r["loss"] for r in whole.rows] == [r["loss"] for r in resumed.rows]
    text = (tmp_path / "b" / "run" / "metrics.csv").read_text().splitlines()
    assert text[0].startswith("step,loss") and len(text) == 4


def test_unconverged_species_are_left_out(tmp_path, monkeypatch):
    """A species whose SCF does not converge removes its reactions from that step's loss and is
    reported; the parameters stay finite."""
    cfg = _config(tmp_path, _dataset(tmp_path / "data", [H2, OH]), steps=1, batch=2)
    real = learn.energy_and_grad

    def flaky(sp, model, theta, warm_start=True):
        p = real(sp, model, theta, warm_start)
        return learn.Point(float("nan"), p.grad, False, 100) if sp.name == "oh" else p

    monkeypatch.setattr(learn, "energy_and_grad", flaky)
    state = train.run(cfg, progress=False)
    assert state.rows[0]["unconverged"] == "oh" and state.rows[0]["reactions"] == 1
    assert all(np.isfinite(np.asarray(v)).all() for v in state.theta.values())


@pytest.mark.parametrize("text, message", [
    ("[data]\nbasis = 'sto-3g'\n", "needs path"),
    ("[dat]\npath = 'x'\n", "unknown table"),
    ("[data]\npath = 'x'\nbasiss = 1\n", "unknown key 'basiss'"),
    ("[data]\npath = 'x'\n[run]\nsteps = 0\n", "positive integer"),
    ("[data\npath = 'x'\n", "not valid TOML"),
])
def test_bad_configs(tmp_path, text, message):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(train.ConfigError, match=message):
        train.read_config(path)


def test_cli_train_report_and_trained_functional(tmp_path, capsys):
    """`dftad train CONFIG` runs, writes the checkpoint, metrics, report and the trained
    functional, which `dftad energy --xc FILE` then uses like a named one; a second run into
    the same folder without --resume is refused; a bad config exits 2."""
    from dftad import cli

    data = _dataset(tmp_path / "data", [H2])
    run = tmp_path / "run"
    config = tmp_path / "c.toml"
    config.write_text(f"""
[functional]
model = "b3lyp3"
start = {{ a0 = 0.25 }}
[data]
path = "{data}"
basis = "{BASIS}"
grid_level = 1
[run]
steps = 2
batch = 1
checkpoint = "{run}"
""")
    assert cli.main(["train", str(config), "--compare", "pbe"]) == 0
    out = capsys.readouterr().out
    assert "| split | reactions | start | trained | pbe |" in out
    for name in ("checkpoint.pkl", "metrics.csv", "report.md", "functional.json", "loss.png"):
        assert (run / name).is_file(), name
    model, theta = __import__("dftad.xc.models", fromlist=["x"]).load_functional(
        run / "functional.json")
    state = train.load_state(str(run))
    for k in theta:
        assert np.array_equal(np.asarray(theta[k]), np.asarray(state.theta[k]))
    assert cli.main(["energy", "molecules/w4-11/species/h2.xyz", "--basis", BASIS,
                     "--xc", str(run / "functional.json"), "--json"]) == 0
    e_file = __import__("json").loads(capsys.readouterr().out)["energy"]
    res = dftad.run(dftad.load("molecules/w4-11/species/h2.xyz"), BASIS,
                    model.functional(theta))
    assert abs(e_file - float(res.e_tot)) < 1e-10
    assert cli.main(["train", str(config), "--no-report"]) == 2
    assert "--resume" in capsys.readouterr().err
    config.write_text("[data]\n")
    assert cli.main(["train", str(config)]) == 2


def test_training_recovers_b3lyp_coefficients(tmp_path):
    """Reference reaction energies from dftad's own B3LYP; started from its three coefficients
    perturbed by 20%, training (Levenberg-Marquardt on the reaction errors) recovers them to
    1e-3."""

    atoms = {"h2": ("h",), "oh": ("o", "h"), "h2o": ("o", "h"), "nh3": ("n", "h")}
    model = B3LYP3()
    energies = {s: learn.energy_and_grad(_species(s, model), model, model.init()).e_tot
                for s in set(atoms) | {"h", "o", "n"}}
    lines = []
    for mol, parts in atoms.items():
        symbols = dftad.load(f"molecules/w4-11/species/{mol}.xyz").symbols
        counts = [sum(x == a.upper() for x in symbols) for a in parts]
        ref = HARTREE_KCAL * (sum(c * energies[a] for a, c in zip(parts, counts))
                              - energies[mol])
        lines.append(f"$tmer {{{mol},{','.join(parts)}}}/$f  x -1 "
                     f"{' '.join(map(str, counts))} $w {ref:.12f}")
    cfg = _config(tmp_path, _dataset(tmp_path / "data", lines), steps=6)
    cfg["functional"]["start"] = {"a0": 0.24, "ax": 0.864, "ac": 0.972}
    cfg["optimizer"] = {"name": "levenberg_marquardt"}
    state = train.run(cfg, progress=False)
    for k, v in model.init().items():
        assert abs(float(state.theta[k]) - float(v)) < 1e-3, (k, float(state.theta[k]))
    assert state.rows[-1]["loss"] < 1e-6


@pytest.mark.parametrize("name, model, theta", [
    ("h2o", B3LYP3(), {"a0": 0.25, "ax": 0.7, "ac": 0.85}),
    ("nh2", Subset("pbe", ("components.0.kappa", "components.1.beta")), None),
    ("h2o", Subset("wb97x", ("omega", "alpha")), {"omega": 0.35, "alpha": 0.9}),
])
def test_trained_functional_runs_inside_pyscf(name, model, theta):
    """A trained functional exported to PySCF (its custom-functional hook, evaluated by dftad)
    gives PySCF's SCF the energy dftad's SCF gets on the same grid, to 1e-8 Ha (open shell:
    NH2, whose singly occupied orbital is not degenerate; OH's two pi orbitals give two SCF
    solutions the grid separates by ~6e-8 Ha, and either code may land on either)."""
    from pyscf import dft

    from dftad.interop.pyscf import to_pyscf_mole, use_functional

    theta = theta or {k: 1.1 * v for k, v in model.init().items()}
    f = model.functional({k: jnp.asarray(v) for k, v in theta.items()})
    mol = dftad.load(f"molecules/w4-11/species/{name}.xyz")
    ours = dftad.run(mol, BASIS, f, grid_level=2, conv_tol=1e-12)
    pmol = to_pyscf_mole(mol, BASIS)
    mf = dft.RKS(pmol) if mol.spin == 0 else dft.UKS(pmol)
    mf.grids.level, mf.conv_tol = 2, 1e-10
    use_functional(mf, f).kernel()
    assert mf.converged
    assert abs(mf.e_tot - float(ours.e_tot)) < 1e-8


def test_neural_model_saves_loads_and_trains(tmp_path):
    """A neural model from a config trains a step and its saved file gives back the same
    functional (same energy density)."""
    from dftad.xc.models import load_functional, save_functional

    cfg = _config(tmp_path, _dataset(tmp_path / "data", [H2]), steps=1)
    cfg["functional"] = {"model": "neural", "base": "pbe", "hidden": [4], "seed": 1}
    state = train.run(cfg, progress=False)
    assert state.rows[0]["reactions"] == 1
    trainer = train.Trainer.from_config(cfg)
    save_functional(tmp_path / "f.json", trainer.model, state.theta)
    model, theta = load_functional(tmp_path / "f.json")
    assert model == trainer.model
    rho = jnp.asarray(np.random.default_rng(0).uniform(0.01, 1.0, 50))
    sigma = rho ** 2
    a = trainer.model.functional(state.theta).energy_density(
        trainer.model.functional(state.theta).params, rho, sigma)
    b = model.functional(theta).energy_density(model.functional(theta).params, rho, sigma)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_no_compilation_after_the_first_epoch(tmp_path):
    """Molecules of different sizes in one batch (H2, OH and their atoms): after the first epoch
    (one step over both reactions) further steps compile no XLA program (JAX's monitoring
    hook): every species shares the SCF and gradient pieces, new parameter values are data."""
    cfg = _config(tmp_path, _dataset(tmp_path / "data", [H2, OH]), steps=1, batch=2)
    compiles = []

    def count(event, duration, **_):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(duration)

    train.run(cfg, progress=False)
    cfg["run"]["steps"] = 3
    jax.monitoring.register_event_duration_secs_listener(count)
    try:
        state = train.run(cfg, resume=True, progress=False)
    finally:
        jax.monitoring.unregister_event_duration_listener(count)
    assert state.step == 3 and all(r["reactions"] == 2 for r in state.rows)
    assert compiles == []


@pytest.mark.slow
def test_force_loss_gradient_equals_finite_differences(tmp_path):
    """A loss with a force term (zero reference forces; the forces depend on the density's
    response, differentiated implicitly at the fixed point) has the gradient of central
    differences of the SCF-converged loss, to 1e-6 relative; closed (H2O, with given reference
    forces) and open shell (OH, zero reference forces)."""
    data = _dataset(tmp_path / "data", [OH, "$tmer {h2o,o,h}/$f  x -1 1 2 $w 232.6"])
    _references(data, {"h2o": {"forces": [[0.0, 0.0, 0.002], [0.0, 0.001, -0.001],
                                          [0.0, -0.001, -0.001]]}})
    cfg = _config(tmp_path, data)
    cfg["loss"]["forces"] = 0.5
    trainer = train.Trainer.from_config(cfg)
    theta = train.start_values(trainer.model, cfg["functional"])
    reactions = trainer.data.reactions
    loss, grad, _, failed = trainer.loss(reactions, theta)
    assert not failed
    # the force term is really there
    assert loss > dataclasses.replace(trainer, force_weight=0.0).loss(reactions, theta)[0]
    # a larger step: the force term carries the SCF convergence noise of the forces (~1e-8 Ha/Bohr
    # in (kcal/mol/A)^2), divided by h
    _assert_central_differences(trainer, reactions, theta, grad, h=1e-4)


def _references(folder, table, densities=()):
    """Write references.json (and, for ``densities``, PySCF HF/UHF density matrices of those
    species in BASIS) into the dataset ``folder``."""
    table = {k: dict(v) for k, v in table.items()}
    for name in densities:
        mol = dftad.load(f"molecules/w4-11/species/{name}.xyz")
        pmol = gto.M(atom=mol.to_pyscf_atom(), unit="Bohr", basis=BASIS, charge=mol.charge,
                     spin=mol.spin, verbose=0)
        dm = (scf.RHF if mol.spin == 0 else scf.UHF)(pmol).run().make_rdm1()
        np.save(folder / f"{name}.npy", dm if dm.ndim == 2 else dm.sum(axis=0))
        table.setdefault(name, {})["density"] = {"file": f"{name}.npy", "basis": BASIS}
    (folder / "references.json").write_text(json.dumps(table))


def test_total_energy_loss_gradient_equals_finite_differences(tmp_path):
    """Reference total energies (per species, optional: the H atom has none) add
    w_E mean (E - E_ref)^2 to the reaction loss; the weighted sum's gradient equals central
    differences of the SCF-converged loss to 1e-6 relative."""
    data = _dataset(tmp_path / "data", [H2, OH])
    _references(data, {"h2": {"energy": -1.18}, "oh": {"energy": -75.72},
                       "o": {"energy": -75.05}})
    cfg = _config(tmp_path, data)
    cfg["loss"].update(reactions=0.5, energies=2.0)
    trainer = train.Trainer.from_config(cfg)
    theta = train.start_values(trainer.model, cfg["functional"])
    reactions = trainer.data.reactions
    loss, grad, errors, failed = trainer.loss(reactions, theta)
    assert not failed and len(errors) == 2
    points = trainer.energies(["h2", "oh", "o"], theta)
    expected = 0.5 * np.mean([e * e for e in errors.values()]) + 2.0 * np.mean(
        [(HARTREE_KCAL * (points[n].e_tot - e)) ** 2
         for n, e in (("h2", -1.18), ("oh", -75.72), ("o", -75.05))])
    assert abs(loss - expected) <= 1e-10 * expected
    _assert_central_differences(trainer, reactions, theta, grad)


@pytest.mark.slow
def test_density_loss_gradient_equals_finite_differences(tmp_path):
    """A density term (reference densities: PySCF's HF/UHF in the same basis, closed shell H2O
    and open shell NH2; the SCF density's response to theta differentiated implicitly) has the
    gradient of central differences of the SCF-converged loss, to 1e-6 relative. (Not OH: the
    orientation of its pi hole is a flat direction of the energy, so its density, unlike its
    energy, is not a well-defined function of theta.)"""
    data = _dataset(tmp_path / "data", ["$tmer {nh2,n,h}/$f  x -1 1 2 $w 181.5",
                                        "$tmer {h2o,o,h}/$f  x -1 1 2 $w 232.6"])
    _references(data, {}, densities=("h2o", "nh2"))
    cfg = _config(tmp_path, data)
    cfg["loss"].update(reactions=0.0, densities=100.0)
    # the densities converged further than the energy tests need: the loss is linear in the
    # density error, whose SCF noise (~conv_tol_grad) over h would reach 1e-6 of the gradient
    cfg["scf"]["conv_tol_grad"] = 1e-10
    trainer = train.Trainer.from_config(cfg)
    theta = train.start_values(trainer.model, cfg["functional"])
    reactions = trainer.data.reactions
    loss, grad, _, failed = trainer.loss(reactions, theta)
    assert not failed and loss > 0
    _assert_central_differences(trainer, reactions, theta, grad, h=1e-4)
