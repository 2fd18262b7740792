"""Directional derivatives of the one-electron pieces along a displacement of all nuclei
(dftad.integrals.one_electron_pieces.matrices_tangent, gradient_tangent) against forward mode
through the whole-program integrals (dftad.integrals.one_electron) and finite differences."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dftad
from dftad.integrals import one_electron, one_electron_pieces


@pytest.fixture(scope="module")
def water():
    """Water in def2-SVP (d functions on O), a random unit displacement of its nuclei (Bohr),
    random symmetric D and W."""
    mol = dftad.load("water")
    setup = dftad.build(mol, "def2-svp", "hf")
    rng = np.random.default_rng(7)
    dcoords = rng.normal(size=np.shape(mol.coords))
    d = rng.normal(size=(2, setup.nao, setup.nao))
    dm, w = d + d.transpose(0, 2, 1)
    return (setup.basis, jnp.asarray(mol.coords), setup.charges,
            dcoords / np.linalg.norm(dcoords), dm, w)


def _lagrangian(basis, charges, dm, w):
    """E1(coords) = sum D (T + V) - sum W S, whole program."""
    def e1(c):
        return (jnp.sum(dm * (one_electron.kinetic(basis, c)
                              + one_electron.nuclear(basis, c, charges)))
                - jnp.sum(w * one_electron.overlap(basis, c)))
    return e1


def test_matrices_tangent_equals_forward_mode_of_the_whole_program(water):
    """dS, dT, dV along the displacement (centres and the nuclei of V moving) equal jax.jvp of
    the whole-program S, T, V to 1e-12 (relative to the largest entry, at least 1); zero past
    nao."""
    basis, coords, charges, dcoords, _, _ = water
    n = basis.nao

    def stv(c):
        return jnp.stack([one_electron.overlap(basis, c), one_electron.kinetic(basis, c),
                          one_electron.nuclear(basis, c, charges)])

    ref = np.asarray(jax.jit(lambda c, t: jax.jvp(stv, (c,), (t,))[1])(coords, dcoords))
    got = np.asarray(one_electron_pieces.matrices_tangent(basis, coords, charges, dcoords))
    assert got.shape[0] == 3 and got.shape[1] == got.shape[2] >= n
    assert np.abs(got[:, n:]).max(initial=0.0) == 0.0
    assert np.abs(got[:, :, n:]).max(initial=0.0) == 0.0
    for k in range(3):
        scale = max(1.0, np.abs(ref[k]).max())
        assert np.abs(got[k, :n, :n] - ref[k]).max() < 1e-12 * scale


@pytest.mark.slow  # the whole program's forward over reverse compiles for ~30 s; the default
# run keeps the finite differences below and test_hessian_pieces' Hessian
def test_gradient_tangent_equals_forward_over_reverse_of_the_whole_program(water):
    """d/de of the gradient of E1 = sum D (T + V) - sum W S at fixed D, W (a Hessian column)
    equals jax.jvp of jax.grad of the whole-program E1 to 1e-12 relative (1e-10 absolute)."""
    basis, coords, charges, dcoords, dm, w = water
    e1 = _lagrangian(basis, charges, dm, w)
    ref = np.asarray(jax.jit(lambda c, t: jax.jvp(jax.grad(e1), (c,), (t,))[1])(coords, dcoords))
    got = one_electron_pieces.gradient_tangent(basis, coords, charges, dm, w, dcoords)
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() < min(1e-10, 1e-12 * np.abs(ref).max())


def test_gradient_tangent_equals_finite_differences_of_the_gradient_piece(water):
    """Independent of AD references: the fourth-order central difference (step 1e-4 Bohr) of
    the pieces' own gradient along the displacement equals gradient_tangent to 1e-7 (the plain
    central difference errs by ~1e-7 here, its h^2 term)."""
    basis, coords, charges, dcoords, dm, w = water
    h = 1e-4

    def g(e):
        return np.asarray(one_electron_pieces.gradient(basis, coords + e * dcoords, charges,
                                                       dm, w))

    fd = (8 * (g(h) - g(-h)) - (g(2 * h) - g(-2 * h))) / (12 * h)
    got = one_electron_pieces.gradient_tangent(basis, coords, charges, dm, w, dcoords)
    assert np.abs(got - fd).max() < 1e-7
