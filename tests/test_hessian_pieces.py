"""The analytic RHF Hessian through pieces (:mod:`dftad.hessian_pieces`) against PySCF's
``hessian.rhf``, and its dipole derivatives against finite differences of converged dipoles."""

import jax
import numpy as np
import pytest
from pyscf import gto, scf

import dftad
from dftad import energy, forces, hessian_pieces, properties

TIGHT = {"conv_tol": 1e-12, "conv_tol_grad": 1e-10}


def _distorted_water():
    """Water without symmetry (every Hessian element distinct), Bohr."""
    mol = dftad.load("water")
    coords = np.asarray(mol.coords) + np.array([[0.05, -0.03, 0.02], [-0.04, 0.06, 0.01],
                                                [0.02, 0.01, -0.07]])
    return mol, coords


def _pyscf_hessian(symbols, coords, basis):
    """PySCF's analytic RHF Hessian (A, i, B, j), and the 5-point finite differences of its
    analytic gradients (step 2e-3 Bohr): the reference to ~1e-9, where the analytic one is off
    by up to ~1.4e-7 (its CPHF's own tolerance: it differs from its finite differences as much,
    while dftad's agrees with them to 3e-10)."""
    pmol = gto.M(atom=list(zip(symbols, coords)), unit="Bohr", basis=basis, verbose=0)

    def rhf(c):  # to 1e-9, then on to 1e-12 with a fresh DIIS: PySCF's DIIS asked for 1e-12
        # from the start fails now and then here (3 of 108 SCFs, "Internal Error" from eigh)
        mf = scf.RHF(pmol.set_geom_(c, unit="Bohr", inplace=False))
        mf.conv_tol = 1e-9
        mf.kernel()
        mf.conv_tol, mf.conv_tol_grad = 1e-12, 1e-9
        mf.kernel(mf.make_rdm1())
        assert mf.converged
        return mf

    analytic = rhf(coords).Hessian().kernel().transpose(0, 2, 1, 3)  # (A, B, i, j) -> (A, i, B, j)
    h, fd = 2e-3, np.zeros_like(analytic)
    for a in range(len(coords)):
        for i in range(3):
            g = []
            for s in (2, 1, -1, -2):
                c = np.array(coords, dtype=float)
                c[a, i] += s * h
                g.append(rhf(c).nuc_grad_method().kernel())
            fd[a, i] = (-g[0] + 8 * g[1] - 8 * g[2] + g[3]) / (12 * h)
    return analytic, fd


def test_nuclear_hessian_equals_finite_differences():
    """d^2 E_nuc/dR dR against central differences of the analytic nuclear gradient."""
    _, coords = _distorted_water()
    charges = np.array([8.0, 1.0, 1.0])
    h = 1e-5
    fd = np.zeros((3, 3, 3, 3))
    for a in range(3):
        for i in range(3):
            d = np.zeros_like(coords)
            d[a, i] = h
            fd[a, i] = (forces.nuclear_repulsion_gradient(coords + d, charges)
                        - forces.nuclear_repulsion_gradient(coords - d, charges)) / (2 * h)
    np.testing.assert_allclose(hessian_pieces.nuclear_hessian(coords, charges), fd, atol=1e-8)


def test_rhf_hessian_and_dipole_derivatives():
    """Water HF/3-21G away from symmetry: the Hessian equals finite differences of PySCF's
    analytic gradients to 1e-8 Ha/Bohr^2 (PySCF's analytic Hessian to 1e-6) and is symmetric;
    the gradient is :func:`dftad.run`'s; d mu/dR equals central differences of the converged
    dipole (step 1e-4 Bohr) to 1e-6 a.u."""
    mol, coords = _distorted_water()
    setup = dftad.build(mol, "3-21g", "hf", **TIGHT)
    done = []
    d = hessian_pieces.second_derivatives(setup, coords, lambda k, n: done.append((k, n)))
    assert done == [(1, 3), (2, 3), (3, 3)]
    hess = np.asarray(d.hessian)
    analytic, fd = _pyscf_hessian(mol.symbols, coords, "3-21g")
    assert np.abs(hess - fd).max() < 1e-8
    assert np.abs(hess - analytic).max() < 1e-6
    flat = hess.reshape(9, 9)
    assert np.abs(flat - flat.T).max() < 1e-9

    res = energy.kernel_stepwise(setup, jax.device_put(coords))
    np.testing.assert_allclose(d.gradient, forces.gradient_stepwise(setup, coords, res.scf),
                               atol=1e-12)
    step = 1e-4
    fd = np.zeros((3, 3, 3))
    for a in range(3):
        for i in range(3):
            mu = []
            for sign in (1, -1):
                c = coords.copy()
                c[a, i] += sign * step
                r = energy.kernel_stepwise(setup, jax.device_put(c))
                mu.append(np.asarray(properties.dipole(setup, c, r.scf.dm)))
            fd[:, a, i] = (mu[0] - mu[1]) / (2 * step)
    np.testing.assert_allclose(d.dipole_derivative, fd, atol=1e-6)


def test_only_closed_shell_hartree_fock():
    """DFT, open shells and density fitting are not the pieces' Hessian: a clear error (and
    :func:`dftad.properties.second_derivatives_stepwise` takes the AD path for them)."""
    mol = dftad.load("water")
    for setup in (dftad.build(mol, "sto-3g", "b3lyp"),
                  dftad.build(dftad.load("methyl_radical"), "sto-3g", "hf"),
                  dftad.build(mol, "sto-3g", "hf", density_fit=True)):
        assert not hessian_pieces.supported(setup)
        with pytest.raises(NotImplementedError, match="closed-shell Hartree-Fock"):
            hessian_pieces.hessian(setup, mol.coords)


@pytest.mark.slow
@pytest.mark.parametrize("basis", ["def2-svp", "def2-tzvp"])
def test_rhf_hessian_with_d_and_f_functions(basis):
    """Water away from symmetry in def2-SVP (d) and def2-TZVP (f): finite differences of
    PySCF's gradients to 1e-8 (its analytic Hessian to 1e-6)."""
    mol, coords = _distorted_water()
    setup = dftad.build(mol, basis, "hf", **TIGHT)
    hess = hessian_pieces.hessian(setup, coords)
    analytic, fd = _pyscf_hessian(mol.symbols, coords, basis)
    assert np.abs(hess - fd).max() < 1e-8
    assert np.abs(hess - analytic).max() < 1e-6


def test_cphf_that_does_not_converge_is_reported(monkeypatch, capsys):
    """A CPHF that conjugate gradients do not converge is an error, not a number: `dftad
    frequencies` says so and exits 3 (as for an SCF that does not converge)."""
    from dftad import cli

    monkeypatch.setattr(hessian_pieces, "_cg", lambda apply, b, *a, **kw: (np.zeros_like(b),
                                                                           False))
    code = cli.main(["frequencies", "hydrogen", "--basis", "sto-3g", "--xc", "hf"])
    assert code == 3
    assert "CPHF equations did not converge" in capsys.readouterr().err


def test_conjugate_gradients_solve_every_column():
    """The CPHF's conjugate gradients (columns together, each stopped at its own residual)
    solve a symmetric positive definite system to the asked tolerance, a zero column included,
    and say when 200 iterations are not enough."""
    rng = np.random.default_rng(0)
    a = rng.normal(size=(40, 40))
    a = a @ a.T + 0.5 * np.eye(40)
    b = rng.normal(size=(5, 40))
    b[2] = 0.0
    diag = np.diag(a).copy()
    x, converged = hessian_pieces._cg(lambda p: p @ a, b, lambda r: r / diag, 1e-12)
    assert converged
    ref = np.linalg.solve(a, b.T).T
    assert np.abs(x - ref).max() < 1e-9 * np.abs(ref).max()
    assert not x[2].any()
    _, converged = hessian_pieces._cg(lambda p: p @ a, b, lambda r: r, 1e-12, maxiter=3)
    assert not converged
