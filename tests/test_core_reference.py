"""The reshaped core computes the numbers the core computed before it (issue 18): energies,
components, forces, a nuclear Hessian and a polarizability, to 1e-12.

The reference file ``tests/data/core_reference.json`` was written by
``scripts/make_core_reference.py`` on the commit it names (the last one before the reshaping),
with the SCF converged to |[F,D]| ~ 5e-14 so that what is compared at 1e-12 is the fixed point
and not the path the SCF took to it (at the default 1e-7 the components carry ~1e-8 of it);
those numbers were checked against PySCF by that commit's own tests. This is a regression test
of the refactoring, not a physics test: the physics tests compare with PySCF directly.

A case with a ``dm0`` (oh_uks_pbe, a saddle point of the UKS energy) starts every SCF from that
converged density of the reference commit: from the setup's guess the state the SCF ends in
depends on rounding (a program's fusion decided it; see the file's ``dm0_note``).
"""

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dftad

REFERENCE = pathlib.Path(__file__).parent / "data" / "core_reference.json"
TOL = 1e-12
CASES = json.loads(REFERENCE.read_text())["cases"]


def _case(name):
    ref = CASES[name]
    mol = dftad.load(ref["molecule"])
    setup = dftad.build(mol, ref["basis"], ref["xc"], **ref["options"])
    dm0 = jnp.asarray(ref["dm0"]) if "dm0" in ref else None
    return ref, setup, jnp.asarray(mol.coords), dm0


@pytest.mark.parametrize("name", sorted(CASES))
def test_energy_and_forces_reproduce_reference(name):
    ref, setup, coords, dm0 = _case(name)
    res = jax.jit(dftad.energy_and_forces)(setup, coords, dm0=dm0)
    assert bool(res.converged)
    assert abs(float(res.e_tot) - ref["e_tot"]) < TOL
    components = res.components._asdict()
    for key, value in ref["components"].items():
        assert abs(float(components[key]) - value) < TOL, key
    assert float(components["e_disp"]) == 0.0  # no dispersion correction in these cases
    np.testing.assert_allclose(np.asarray(res.forces), ref["forces"], rtol=0, atol=TOL)


@pytest.mark.slow  # 3-6 min per case on 2 cores: compiling forward-over-reverse through the SCF
@pytest.mark.parametrize("name", sorted(CASES))
def test_hessian_and_polarizability_reproduce_reference(name):
    ref, setup, coords, dm0 = _case(name)
    np.testing.assert_allclose(np.asarray(jax.jit(dftad.hessian)(setup, coords, dm0=dm0)),
                               ref["hessian"], rtol=0, atol=TOL)
    np.testing.assert_allclose(np.asarray(jax.jit(dftad.polarizability)(setup, coords, dm0=dm0)),
                               ref["polarizability"], rtol=0, atol=TOL)
