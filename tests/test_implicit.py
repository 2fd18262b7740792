"""Implicit differentiation at the SCF fixed point (dftad.implicit) against central finite
differences of the converged SCF, for outputs that are *not* variational: the HOMO energy, the
HOMO-LUMO gap, the dipole moment and the density on fixed points.

Each case perturbs one kind of input along a random direction: nuclear coordinates, XC
parameters, a uniform electric field or the basis exponents. Forward mode (jax.jvp) is compared
with finite differences to 1e-6, and reverse mode (jax.vjp) with forward mode (<u, J v>).
"""

import dataclasses

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest
from _checks import fd_directional, fd_jacobian

import dftad
import dftad.properties
from dftad import energy, guess, hamiltonian
from dftad.density import eval_rho
from dftad.integrals.ao import eval_ao

FD_TOL = 1e-6
TIGHT = {"conv_tol": 1e-12, "conv_tol_grad": 1e-10, "grid_level": 2}
POINTS = jnp.array([[0.3, 0.2, 0.1], [-0.5, 0.9, 0.4], [0.0, -1.1, 0.7]])  # Bohr


def outputs(setup, coords, xc_params=None, field=None):
    """Non-variational SCF outputs as one vector: HOMO, gap, dipole (3), rho at POINTS (3)."""
    res = energy.kernel(setup, coords, xc_params, field=field).scf
    occ = setup.occupation
    e = occ.channels(res.mo_energy)[0]
    nocc = occ.nalpha
    dm = occ.total(res.dm)
    r = dftad.properties.dipole(setup, coords, res.dm)
    rho = eval_rho(eval_ao(setup.basis, coords, POINTS), dm, "LDA")
    return jnp.concatenate([e[nocc - 1:nocc], e[nocc:nocc + 1] - e[nocc - 1:nocc], r, rho])


def with_exponents(setup, exps):
    return dataclasses.replace(setup, basis=dataclasses.replace(setup.basis, exponents=exps))


def check_directional(fn, x0, direction, h, reverse=True):
    """jvp vs central FD along ``direction`` (five-point stencil, truncation O(h^4), so that h
    can stay well above the SCF noise); with ``reverse``, vjp vs jvp for a random cotangent."""
    jvp = jax.jit(lambda x, d: jax.jvp(fn, (x,), (d,)))
    y, jv = jvp(x0, direction)
    # the primal output of the same compiled function (one compile less)
    fd = fd_directional(lambda x: jvp(x, direction)[0], x0, direction, h, stencil=4)
    err = np.abs(np.asarray(jv) - fd).max()
    assert err < FD_TOL, (err, np.asarray(jv), fd)
    if not reverse:
        return
    u = jnp.asarray(np.random.default_rng(1).standard_normal(y.shape))
    (ju,) = jax.jit(lambda x, u: jax.vjp(fn, x)[1](u))(x0, u)
    lhs = float(jnp.vdot(u, jv))
    rhs = float(jnp.vdot(ju, direction))
    assert abs(lhs - rhs) < 1e-8 * max(1.0, abs(lhs)), (lhs, rhs)


def _unit(rng, shape):
    d = rng.standard_normal(shape)
    return jnp.asarray(d / np.linalg.norm(d))


CASES = [
    ("water", "sto-3g", "hf", {}),
    pytest.param("water", "sto-3g", "b3lyp", {}, marks=pytest.mark.slow),
    # open shell without degenerate frontier orbitals (OH's half-filled pi pair is not
    # differentiable: its SCF picks an orientation of the hole)
    ("methyl_radical", "sto-3g", "hf", {}),
    pytest.param("methyl_radical", "sto-3g", "pbe", {}, marks=pytest.mark.slow),
    pytest.param("water", "sto-3g", "scan", {}, marks=pytest.mark.slow),
    pytest.param("water", "sto-3g", "camb3lyp", {}, marks=pytest.mark.slow),
    pytest.param("water", "sto-3g", "b3lyp", {"density_fit": True}, marks=pytest.mark.slow),
]


@pytest.mark.parametrize("name,basis,xc,kw", CASES)
def test_coordinates(name, basis, xc, kw):
    mol = dftad.load(name)
    setup = dftad.build(mol, basis, xc, **TIGHT, **kw)
    d = _unit(np.random.default_rng(0), mol.coords.shape)
    check_directional(lambda c: outputs(setup, c), jnp.asarray(mol.coords), d, 1e-3)


def test_electric_field():
    mol = dftad.load("water")
    setup = dftad.build(mol, "sto-3g", "hf", **TIGHT)
    coords = jnp.asarray(mol.coords)
    check_directional(lambda f: outputs(setup, coords, field=f), jnp.zeros(3),
                      _unit(np.random.default_rng(2), (3,)), 1e-3)


# reverse mode through the implicit SCF is checked for the other inputs here (the adjoint solve
# is the same for every input), and reverse mode through the XC kernel in its parameters by
# test_xc's test_param_derivatives_fd: the XC parameters' vjp (35 s of compile) runs with -m slow
@pytest.mark.parametrize("reverse", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_xc_parameters(reverse):
    mol = dftad.load("water")
    setup = dftad.build(mol, "sto-3g", "b3lyp", **TIGHT)
    coords = jnp.asarray(mol.coords)
    p0 = setup.xc.params
    leaves, tree = jax.tree_util.tree_flatten(p0)
    rng = np.random.default_rng(3)
    direction = jax.tree_util.tree_unflatten(
        tree, [jnp.asarray(0.01 * rng.standard_normal(np.shape(x))) for x in leaves])
    flat0, unravel = jax.flatten_util.ravel_pytree(p0)
    dflat, _ = jax.flatten_util.ravel_pytree(direction)
    check_directional(lambda x: outputs(setup, coords, unravel(x)), flat0, dflat, 1e-3, reverse)


def test_basis_exponents():
    mol = dftad.load("water")
    setup = dftad.build(mol, "sto-3g", "hf", **TIGHT)
    coords = jnp.asarray(mol.coords)
    e0 = setup.basis.exponents
    d = _unit(np.random.default_rng(4), e0.shape) * e0  # relative perturbation
    check_directional(lambda e: outputs(with_exponents(setup, e), coords), e0, d, 1e-4)


def test_gradient_does_not_depend_on_the_scf_path():
    """The derivative is taken at the fixed point, not through the iterations: the same gradient
    (to the SCF convergence) from a poor initial guess (core Hamiltonian, many cycles) and from
    the converged density (one cycle). The compiled gradient is one program for both, whose
    memory cannot grow with the cycle count (a while_loop stores nothing per cycle)."""
    mol = dftad.load("water")
    setup = dftad.build(mol, "sto-3g", "hf", **TIGHT)
    coords = jnp.asarray(mol.coords)

    def homo(c, dm0):
        return energy.kernel(setup, c, dm0=dm0).scf.mo_energy[setup.occupation.homo]

    ints = jax.jit(hamiltonian.integrals)(setup, coords)  # one program, not op by op
    poor = guess.core_guess(ints.h1e, ints.s1e, setup.occupation)
    scf = jax.jit(lambda c, d: energy.kernel(setup, c, dm0=d).scf)  # one SCF program for both
    from_poor = scf(coords, poor)
    good = from_poor.dm
    n_poor, n_good = int(from_poor.cycles), int(scf(coords, good).cycles)
    assert n_poor > n_good + 5
    grad = jax.jit(jax.grad(homo))
    g_poor, g_good = grad(coords, poor), grad(coords, good)
    assert np.abs(np.asarray(g_poor) - np.asarray(g_good)).max() < 1e-8
    assert grad._cache_size() == 1


def test_second_derivative_of_a_non_variational_output():
    """d^2 HOMO / dF^2 (forward over reverse through the implicit SCF) vs five-point central
    differences of the first derivative."""
    mol = dftad.load("water")
    setup = dftad.build(mol, "sto-3g", "hf", **TIGHT)
    coords = jnp.asarray(mol.coords)

    def homo(f):
        return energy.kernel(setup, coords, field=f).scf.mo_energy[setup.occupation.homo]

    hess = np.asarray(jax.jit(jax.jacfwd(jax.grad(homo)))(jnp.zeros(3)))
    fd = fd_jacobian(jax.jit(jax.grad(homo)), np.zeros(3), h=1e-3, stencil=4)
    assert np.abs(hess - fd).max() < 1e-5, np.abs(hess - fd).max()


@pytest.mark.slow  # ~2.5 min (second-order steps and their jvp compiled for NO)
def test_non_aufbau_fixed_point():
    """UKS LDA NO / STO-3G: DIIS does not converge before the rescue shift (scf.py), and
    second-order steps finish it (energy.second_order), at a fixed point that is not aufbau (an
    alpha virtual orbital lies below the highest occupied one). The result's
    orbitals span its density (occupied first), and the implicit derivative is that of this
    solution: the response to a field along the bond (HOMO energy, dipole) equals five-point
    finite differences. The aufbau projector used before gave a polarisability 9e-3 au off.
    (The pi-hole orientation is a flat direction here, as for OH, so only quantities it does
    not change are compared. The grid makes that direction slightly bumpy: DIIS stalls on it at
    |[F,D]| ~ 1e-9 to 4e-7 depending on rounding (the machine, the compiled program), or goes on
    flipping, and second-order steps, which continue it here as energy.converge does and leave
    it non-aufbau, reach 1e-13 to 1e-8 (newton.py takes the steps whose predicted energy change
    is below rounding on the model's word; before that, one machine stalled at 2e-8). The
    convergence threshold is 1e-8: the residual lies along that flat direction, which changes
    neither compared quantity to first order.)"""
    mol = dftad.load("nitric_oxide")
    setup = dftad.build(mol, "sto-3g", "lda,vwn", conv_tol=1e-12, conv_tol_grad=1e-8, grid_level=2)
    coords = jnp.asarray(mol.coords)
    na = setup.occupation.nalpha

    def homo_and_dipole(fz):
        ints = hamiltonian.integrals(setup, coords, jnp.array([0.0, 0.0, fz]))
        res = energy.second_order(setup, ints, energy.kernel_from_integrals(setup, ints)).scf
        dip = dftad.properties.dipole(setup, coords, res.dm)
        return jnp.stack([res.mo_energy[0, na - 1], dip[2]]), res

    jvp = jax.jit(lambda f: jax.jvp(homo_and_dipole, (f,), (1.0,), has_aux=True))
    _, jv, res = jvp(0.0)
    assert bool(res.converged) and int(res.cycles) > setup.options.rescue_cycle
    e = np.asarray(res.mo_energy[0])
    assert e[na:].min() < e[:na].max()  # not aufbau (else this test is moot)
    s1e = np.asarray(hamiltonian.integrals(setup, coords).s1e)
    for c, d, occ, f, eps in zip(res.mo_coeff, res.dm, res.mo_occ, res.fock, res.mo_energy):
        c = np.asarray(c)
        np.testing.assert_allclose(c @ np.diag(np.asarray(occ)) @ c.T, d, atol=1e-12)
        np.testing.assert_allclose(np.asarray(f) @ c, s1e @ c * np.asarray(eps), atol=1e-6)
    # five-point stencil, h = 1e-2: truncation ~h^4; SCF noise / h stays below 1e-7
    fd = fd_directional(lambda f: jvp(f)[0], 0.0, 1.0, h=1e-2, stencil=4)
    np.testing.assert_allclose(np.asarray(jv), fd, atol=FD_TOL)
