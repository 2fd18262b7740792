"""ERI planning (dftad.integrals.eri_plan): Schwarz screening, the cache of its bounds, bad
arguments, and the plan names that dftad.integrals.two_electron re-exports."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dftad
from dftad import Basis, Molecule
from dftad.integrals import eri_plan, two_electron
from dftad.interop.pyscf import to_pyscf_mole

ATOL = 1e-10

# Two H2 molecules 20 Angstrom apart
TWO_H2 = Molecule.from_string("H 0 0 0; H 0 0 0.74; H 0 20 0; H 0 20 0.74")


@functools.cache
def two_h2_plan():
    """(Basis, plan) of TWO_H2 in 6-31G, built once."""
    b = Basis.build(TWO_H2, "6-31g")
    return b, eri_plan.build_plan(b, jnp.asarray(TWO_H2.coords))


def test_screening_drops_far_quartets_and_stays_exact():
    """Two H2 molecules 20 Angstrom apart: the Schwarz-screened plan skips quartets, and the
    full tensor still equals PySCF's (the skipped ones are below 1e-14)."""
    b, plan = two_h2_plan()
    nsh = b.nbas
    npair = nsh * (nsh + 1) // 2
    kept = sum(int(q.shape[0]) for q in plan.quartets)
    assert kept < npair * (npair + 1) // 2
    ours = np.asarray(jax.jit(two_electron.eri)(plan, b, jnp.asarray(TWO_H2.coords)))
    ref = to_pyscf_mole(TWO_H2, "6-31g").intor("int2e")
    assert np.abs(ours - ref).max() < ATOL
    # the (aa|bb) Coulomb blocks between the molecules are not screened away
    assert np.abs(ours[0, 0, 4, 4] - ref[0, 0, 4, 4]) < ATOL and ref[0, 0, 4, 4] > 1e-2


def test_schwarz_bounds_are_remembered_by_value():
    """The Schwarz pass is cached across setups (other functionals of one molecule and basis),
    keyed on the geometry and the basis data: a moved atom or a changed exponent is recomputed."""
    b, plan = two_h2_plan()
    sets = plan.bra_sets
    coords = np.asarray(TWO_H2.coords)
    moved = coords.copy()
    moved[0, 0] += 2.0
    scaled = dataclasses.replace(b, exponents=b.exponents * 1.5)
    for bas, c in [(b, coords), (b, moved), (scaled, coords)]:
        cached = eri_plan._schwarz(bas, jnp.asarray(c), sets)
        fresh = eri_plan._schwarz_uncached(bas, jnp.asarray(c), sets)
        assert all(np.array_equal(x, y) for x, y in zip(cached, fresh))
    first = eri_plan._schwarz(b, jnp.asarray(coords), sets)
    second = eri_plan._schwarz(b, jnp.asarray(moved), sets)
    assert any(not np.allclose(x, y) for x, y in zip(first, second))


def test_bad_plan_arguments():
    water = dftad.load("water")
    b = Basis.build(water, "sto-3g")
    c = jnp.asarray(water.coords)
    with pytest.raises(ValueError):
        eri_plan.build_plan(b, c, kind="5c")
    with pytest.raises(ValueError):
        eri_plan.build_plan(b, c, kind="3c")  # no auxiliary basis


def test_two_electron_reexports_the_plan():
    """Callers build and type plans through ``two_electron``; those names are the plan's."""
    assert two_electron.build_plan is eri_plan.build_plan
    assert two_electron.EriPlan is eri_plan.EriPlan
    assert two_electron.QuartetClass is eri_plan.QuartetClass
