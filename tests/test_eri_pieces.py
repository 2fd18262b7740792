"""ERIs from the compiled pieces every molecule shares (dftad.integrals.eri_pieces) against the
whole-program evaluation (dftad.integrals.two_electron), and that two molecules share them."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dftad
from dftad import energy, forces
from dftad.integrals import eri_pieces, eri_plan, two_electron
from dftad.integrals.eri_kernel import class_integrals, hermite_pairs


def _setup(name, basis="6-31g", xc="hf"):
    mol = dftad.load(name)
    return dftad.build(mol, basis, xc), jnp.asarray(mol.coords)


def _densities(nao, seed=0):
    d = np.random.default_rng(seed).normal(size=(2, nao, nao))
    return jnp.asarray(d + d.transpose(0, 2, 1))


@pytest.mark.parametrize("omega", [None, 0.33])
def test_padded_pieces_equal_the_whole_program(omega):
    """Chunks padded to the class's fixed size, accumulators and s8 packing padded to power-of-two
    buckets, the density padded to a bucketed nao: the same tensor and gradient to 1e-12."""
    setup, coords = _setup("formaldehyde")
    plan, basis = setup.jk.plan, setup.basis
    ref = jax.jit(two_electron.eri)(plan, basis, coords, omega)
    got = eri_pieces.eri(plan, basis, coords, omega)
    assert got.shape == ref.shape
    assert float(jnp.abs(got - ref).max()) < 1e-12
    dm = _densities(setup.nao)
    dm_tot = dm[0] + dm[1]

    def e2(c):
        return two_electron.eri_energy(plan, basis, c, dm_tot, dm, 0.3, omega)

    g_ref = jax.jit(jax.grad(e2))(coords)
    g = eri_pieces.gradient(plan, basis, coords, [(omega, dm_tot, dm, 0.3)])
    assert float(jnp.abs(g - g_ref).max()) < 1e-12 * float(jnp.abs(g_ref).max())


def test_schwarz_bounds_from_the_pieces():
    """sqrt(max |(ab|ab)|) per shell pair (cartesian functions) equals the whole-program class
    kernel's diagonal quartets to 1e-12."""
    setup, coords = _setup("water", "def2-svp")
    basis = setup.basis
    bounds = eri_pieces.schwarz(basis, coords, setup.jk.plan.bra_sets)
    for ps, got in zip(setup.jk.plan.bra_sets, bounds):
        n = ps.cls.npair
        cls, idx, _ = eri_plan._make_class(0, 0, ps, ps, np.stack([np.arange(n)] * 2, axis=1))
        lab = ps.la + ps.lb
        v = class_integrals(hermite_pairs(basis, coords, ps, False),
                            hermite_pairs(basis, coords, ps, True), lab, lab, *idx, cls.nq)
        ref = np.sqrt(np.abs(np.diagonal(np.asarray(v), axis1=1, axis2=2)).max(axis=1))
        assert got.shape == ref.shape
        assert np.abs(got - ref).max() < 1e-12 * ref.max()


def test_two_molecules_share_the_compiled_pieces():
    """Energies and forces of water, then of methanol (same elements and basis, twice the atoms,
    never seen): methanol compiles no new class piece, and its results equal the whole program's
    (energy to 1e-10 Ha, forces to 1e-8 Ha/Bohr)."""
    water, cw = _setup("water")
    res = energy.kernel_stepwise(water, cw)
    forces.gradient_stepwise(water, cw, res.scf)
    counts = (eri_pieces._quartets._cache_size(), eri_pieces._quartets_grad._cache_size())
    methanol, cm = _setup("methanol")
    res = energy.kernel_stepwise(methanol, cm)
    grad = forces.gradient_stepwise(methanol, cm, res.scf)
    assert (eri_pieces._quartets._cache_size(), eri_pieces._quartets_grad._cache_size()) == counts
    ref = jax.jit(forces.energy_and_forces)(methanol, cm)
    assert abs(float(res.e_tot - ref.e_tot)) < 1e-10
    assert float(jnp.abs(grad + ref.forces).max()) < 1e-8
