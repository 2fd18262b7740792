"""Internal stability: the AD orbital Hessian against PySCF's, the Davidson solver, and following an
instability to a minimum (:mod:`dftad.stability`)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _pyscf import mean_field
from pyscf.soscf import newton_ah

import dftad
from dftad import energy, stability


def _pyscf_mf(mol, basis, xc):
    return mean_field(mol, basis, xc)


def _converged(name, basis, xc):
    mol = dftad.load(name)
    setup = dftad.build(mol, basis, xc)
    coords = jnp.asarray(mol.coords)
    res = jax.jit(energy.kernel)(setup, coords)
    assert bool(res.converged)
    return mol, setup, coords, res


@pytest.mark.parametrize("name,xc", [
    ("hydroxyl_radical", "scan"),
    ("water", "camb3lyp"),
    pytest.param("hydroxyl_radical", "hf", marks=pytest.mark.slow),
    pytest.param("water", "pbe", marks=pytest.mark.slow),
])
def test_orbital_hessian_equals_pyscf(name, xc):
    """d2E/dkappa2 by AD equals PySCF's hand-coded orbital Hessian (``newton_ah.gen_g_hop_*``,
    whose rotation parameter is twice ours, hence the factor 2) at dftad's converged orbitals,
    meta-GGA and range separation included; the Davidson eigenvalue is the dense one's lowest."""
    mol, setup, coords, res = _converged(name, "sto-3g", xc)
    ints = stability._integrals(setup, coords)
    n = stability.size(setup)
    # column by column through the program stability.analyze compiles (one column, xc_params
    # passed): one compile of the Hessian-vector product serves both
    hess = np.column_stack([
        np.asarray(stability._hessian_block(setup, ints, res.scf.mo_coeff,
                                            jnp.asarray(col[:, None]), None))
        for col in np.eye(n)])
    mf = _pyscf_mf(mol, "sto-3g", xc)
    mo, occ = np.asarray(res.scf.mo_coeff), np.asarray(res.scf.mo_occ)
    if xc != "hf":
        mf.grids.build()
    gen = newton_ah.gen_g_hop_rhf if setup.restricted else newton_ah.gen_g_hop_uhf
    _, hop, _ = gen(mf, mo, occ)
    ref = 2.0 * np.stack([hop(e) for e in np.eye(n)], axis=1)
    np.testing.assert_allclose(hess, ref, atol=1e-9)
    st = stability.analyze(setup, coords, res, ints=ints)
    lowest = np.linalg.eigvalsh(hess)[0]
    assert abs(st.lowest - lowest) < 1e-8
    assert st.stable == (lowest > stability.UNSTABLE_BELOW)
    assert abs(abs(st.rotation @ hess @ st.rotation) - abs(lowest)) < 1e-8


def test_davidson_lowest_eigenpair():
    """Diagonally dominant symmetric matrix (an orbital Hessian's shape), a negative lowest
    eigenvalue: Davidson agrees with ``eigh`` in the value and the vector, with far fewer
    products than the dimension."""
    rng = np.random.default_rng(1)
    n = 400
    a = rng.standard_normal((n, n)) * 0.05
    m = np.diag(np.linspace(-0.3, 20.0, n)) + a + a.T
    w, v = np.linalg.eigh(m)
    value, vec, nmv = stability.lowest_eigenpair(lambda x: m @ x, np.diag(m).copy(), tol=1e-8)
    assert abs(value - w[0]) < 1e-10
    assert abs(abs(vec @ v[:, 0]) - 1.0) < 1e-10
    assert nmv < 60


@pytest.mark.slow
def test_follow_leaves_a_saddle_for_a_stable_minimum():
    """UKS SCAN OH / STO-3G: dftad's SCF from the SAD guess ends on a saddle point (beta hole in
    sigma). Following the instability gives a lower solution that dftad and PySCF both call
    stable, at which PySCF's energy equals dftad's and PySCF's SCF stays."""
    mol, setup, coords, res = _converged("hydroxyl_radical", "sto-3g", "scan")
    first = stability.analyze(setup, coords, res)
    assert not first.stable and first.lowest < -1e-3
    final, st = stability.follow(setup, coords, res)
    assert bool(final.converged) and st.stable and st.restarts >= 1
    assert float(final.e_tot) < float(res.e_tot) - 1e-5
    mf = _pyscf_mf(mol, "sto-3g", "scan")
    mf.conv_tol = 1e-12
    dm = np.asarray(final.scf.dm)
    assert abs(mf.energy_tot(dm) - float(final.e_tot)) < 1e-9
    assert abs(mf.kernel(dm) - float(final.e_tot)) < 1e-9
    assert mf.stability(return_status=True)[2]


def test_follow_keeps_a_stable_solution():
    """Closed-shell water HF / STO-3G is a minimum: no restart, same result back."""
    _, setup, coords, res = _converged("water", "sto-3g", "hf")
    final, st = stability.follow(setup, coords, res)
    assert st.stable and st.restarts == 0 and st.lowest > 0.1
    assert final is res
