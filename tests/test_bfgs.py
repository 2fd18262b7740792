"""The batched JAX BFGS minimiser (:mod:`dftad.bfgs`): a batch of conformers gives what each
gives alone, compiles once per shape, and finds geomeTRIC's minimum (HF/STO-3G water)."""

import jax
import numpy as np
import pytest

import dftad
from dftad import bfgs, geomopt
from dftad.constants import BOHR_ANGSTROM

NCONF = 8
COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
_minimize_jit = jax.jit(bfgs.minimize, static_argnames=("max_steps",))


def _conformers(mol, n, seed):
    """``n`` copies of ``mol``'s coordinates, each atom moved by 0.05-0.15 Bohr (random
    direction)."""
    rng = np.random.default_rng(seed)
    c = np.asarray(mol.coords)
    d = rng.normal(size=(n, *c.shape))
    d *= rng.uniform(0.05, 0.15, size=(n, c.shape[0], 1)) / np.linalg.norm(d, axis=-1,
                                                                            keepdims=True)
    return c[None] + d


def _distances_angstrom(coords):
    c = np.asarray(coords)
    return np.linalg.norm(c[:, None] - c[None], axis=-1) * BOHR_ANGSTROM


@pytest.fixture(scope="module")
def water():
    mol = dftad.load("water")
    setup = dftad.build(mol, "sto-3g", "hf")
    batch = _conformers(mol, NCONF, 0)
    return mol, setup, batch, bfgs.minimize_batch(setup, batch)


def test_batch_equals_one_at_a_time(water):
    _, setup, batch, res = water
    assert np.all(np.asarray(res.converged))
    for i in range(NCONF):
        one = _minimize_jit(setup, batch[i])
        assert bool(one.converged)
        assert int(one.steps) == int(res.steps[i])
        assert abs(float(one.e_tot) - float(res.e_tot[i])) < 1e-6
        np.testing.assert_allclose(np.asarray(res.coords[i]) * BOHR_ANGSTROM,
                                   np.asarray(one.coords) * BOHR_ANGSTROM, atol=1e-4, rtol=0)


def test_batch_compiles_once(water):
    mol, setup, _, _ = water
    other = _conformers(mol, NCONF, 1)
    compiles = []

    def listener(event, duration, **kwargs):
        if event == COMPILE_EVENT:
            compiles.append(duration)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        jax.jit(lambda x: x * 3.0 + 1.0)(np.ones(7))  # the listener sees a compile
        assert len(compiles) == 1
        compiles.clear()
        res = bfgs.minimize_batch(setup, other)
        jax.block_until_ready(res)
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert compiles == []
    assert np.all(np.asarray(res.converged))


def test_final_forces_meet_criterion(water):
    _, _, _, res = water
    forces = np.asarray(res.forces)
    max_force = np.linalg.norm(forces, axis=-1).max(axis=-1)
    rms_force = np.sqrt(np.mean(np.sum(forces**2, axis=-1), axis=-1))
    assert np.all(max_force < bfgs.GAU[2]) and np.all(rms_force < bfgs.GAU[1])
    np.testing.assert_allclose(np.asarray(res.max_force), max_force, rtol=1e-12)
    energies = np.asarray(res.energies)
    for i in range(NCONF):  # the last accepted evaluation is the returned minimum
        e = energies[i, : int(res.steps[i])]
        assert np.all(np.isfinite(e)) and np.all(np.isnan(energies[i, int(res.steps[i]):]))
        assert float(res.e_tot[i]) == pytest.approx(np.min(e), abs=1e-12)


def test_same_minimum_as_geometric(water):
    mol, _, _, res = water
    opt = geomopt.optimize(mol, "sto-3g", "hf", convergence="gau_tight")
    assert opt.converged
    for i in range(NCONF):
        assert abs(float(res.e_tot[i]) - opt.e_tot) < 1e-5
        np.testing.assert_allclose(_distances_angstrom(res.coords[i]),
                                   _distances_angstrom(opt.mol.coords), atol=1e-3, rtol=0)
