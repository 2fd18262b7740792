"""One-electron integrals (overlap, kinetic, nuclear attraction, dipole, quadrupole) vs PySCF.

* values vs ``mol.intor`` to 1e-10 absolute, spherical and cartesian, sto-3g .. cc-pVQZ (g), on a
  molecule with H, C, N, O, F and S (open shell);
* nuclear-coordinate derivatives (jacfwd, grad) vs PySCF's derivative integrals to 1e-9,
  including the operator term of the nuclear attraction;
* second derivatives (jax.hessian) and exponent derivatives vs central finite differences;
* no recompilation for new geometries or exponents; jit and vmap.

Each dftad matrix is computed once per (basis, cart) by one jitted function and shared; PySCF
references are computed once per module.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _checks import fd_jacobian

import dftad
from dftad import Basis, Molecule
from dftad.integrals.one_electron import hcore, kinetic, multipole, nuclear, overlap
from dftad.interop.pyscf import to_pyscf_mole

ATOL = 1e-10
ATOL_DERIV = 1e-9
FD_RTOL = 1e-6

MIXED = Molecule.from_string(
    "C 0 0 0; N 1.2 0.1 0; O -1.1 0.3 0.2; F 0 1.3 -0.4; H 0.2 -1.0 0.9; S 2.0 1.0 1.0", spin=1
)
WATER = dftad.load("water")
ORIGIN = np.array([0.3, -0.7, 1.1])  # Bohr, a non-trivial multipole origin

INTEGRALS = ["ovlp", "kin", "nuc", "r", "rr", "r_orig", "rr_orig"]

# Default: s/p (sto-3g, with S), cartesian 6d (6-31g*), f functions (cc-pvtz).
# Behind `slow`: every other (basis, cart) combination, including g functions (cc-pvqz).
DEFAULT_CASES = [("sto-3g", False), ("6-31g*", True), ("cc-pvtz", False)]
SLOW_CASES = [
    ("sto-3g", True), ("6-31g*", False), ("def2-svp", False), ("def2-svp", True),
    ("def2-tzvp", False), ("def2-tzvp", True), ("cc-pvtz", True), ("cc-pvqz", False),
    ("cc-pvqz", True),
]
CASES = DEFAULT_CASES + [pytest.param(*c, marks=pytest.mark.slow) for c in SLOW_CASES]


def charges_of(mol):
    return jnp.asarray(mol.atomic_numbers, dtype=jnp.float64)


def _all_one_electron(basis, coords, charges, origin):
    return {
        "ovlp": overlap(basis, coords),
        "kin": kinetic(basis, coords),
        "nuc": nuclear(basis, coords, charges),
        "r": multipole(basis, coords, order=1, origin=origin),
        "rr": multipole(basis, coords, order=2, origin=origin),
    }


ONE_E = jax.jit(_all_one_electron)  # compiles once per basis layout; origin and charges traced


def pyscf_one_electron(pmol, origin=None):
    out = {k: pmol.intor("int1e_" + k) for k in ("ovlp", "kin", "nuc")}
    if origin is None:
        out["r"], out["rr"] = pmol.intor("int1e_r"), pmol.intor("int1e_rr")
    else:
        with pmol.with_common_orig(origin):
            out["r"], out["rr"] = pmol.intor("int1e_r"), pmol.intor("int1e_rr")
    return out


def _stv(basis, coords, charges):
    return overlap(basis, coords), kinetic(basis, coords), nuclear(basis, coords, charges)


@jax.jit
def one_e_and_jacobian(basis, coords, charges, origin):
    """All one-electron matrices and jax.jacfwd of S, T, V in the coordinates, one compile:
    (dict of matrices, dict of derivatives (natm, 3, nao, nao))."""

    def f(c):
        stv = _stv(basis, c, charges)
        return stv, stv

    jac, (s, t, v) = jax.jacfwd(f, has_aux=True)(coords)
    vals = {
        "ovlp": s, "kin": t, "nuc": v,
        "r": multipole(basis, coords, order=1, origin=origin),
        "rr": multipole(basis, coords, order=2, origin=origin),
    }
    return vals, dict(zip(("ovlp", "kin", "nuc"), (jnp.transpose(j, (2, 3, 0, 1)) for j in jac)))


# (basis, cart) whose values come from one_e_and_jacobian (shared with the derivative tests)
WITH_JACOBIAN = {("sto-3g", False), ("6-31g*", True)}


@functools.cache
def one_e_case(basis_name, cart):
    """(ours, reference) dicts of all one-electron matrices of MIXED, NumPy arrays."""
    mol = MIXED
    b = Basis.build(mol, basis_name, cart=cart)
    pmol = to_pyscf_mole(mol, basis_name, cart)
    c, z = jnp.asarray(mol.coords), charges_of(mol)
    if (basis_name, cart) in WITH_JACOBIAN:
        fn = lambda o: one_e_and_jacobian(b, c, z, o)[0]  # noqa: E731
    else:
        fn = lambda o: ONE_E(b, c, z, o)  # noqa: E731
    ours = {k: np.asarray(v) for k, v in fn(jnp.zeros(3)).items()}
    at_o = fn(jnp.asarray(ORIGIN))
    ours["r_orig"], ours["rr_orig"] = np.asarray(at_o["r"]), np.asarray(at_o["rr"])
    ref = pyscf_one_electron(pmol)
    ref_o = pyscf_one_electron(pmol, ORIGIN)
    ref["r_orig"], ref["rr_orig"] = ref_o["r"], ref_o["rr"]
    assert b.nao == pmol.nao
    return ours, ref


# ---------------------------------------------------------------------- values vs PySCF
@pytest.mark.parametrize("basis,cart", CASES)
@pytest.mark.parametrize("name", INTEGRALS)
def test_matches_pyscf(basis, cart, name):
    """int1e_ovlp/kin/nuc/r/rr (r, rr about the origin and about ORIGIN) to 1e-10 absolute."""
    ours, ref = one_e_case(basis, cart)
    assert ours[name].shape == ref[name].shape
    err = np.abs(ours[name] - ref[name]).max()
    print(f"MAXERR 1e {basis} cart={cart} {name} {err:.2e}")
    assert err < ATOL, f"{basis} cart={cart} {name}: max abs err {err:.2e}"


@pytest.mark.parametrize("basis,cart", DEFAULT_CASES)
def test_symmetry_and_normalisation(basis, cart):
    """Every matrix is symmetric; spherical AOs are normalised (S_ii = 1)."""
    ours, _ = one_e_case(basis, cart)
    for name, m in ours.items():
        np.testing.assert_allclose(m, np.swapaxes(m, -1, -2), rtol=0, atol=1e-14, err_msg=name)
    if not cart:
        np.testing.assert_allclose(np.diag(ours["ovlp"]), 1.0, rtol=0, atol=1e-13)
    # the quadrupole about ORIGIN follows from the one about 0: (r-O)(r-O) = rr - O r - r O + O O
    n = ours["ovlp"].shape[0]
    rr0, r0, s = ours["rr"].reshape(3, 3, n, n), ours["r"], ours["ovlp"]
    o = ORIGIN
    shifted = (rr0 - o[:, None, None, None] * r0[None] - o[None, :, None, None] * r0[:, None]
               + np.outer(o, o)[:, :, None, None] * s)
    np.testing.assert_allclose(ours["rr_orig"].reshape(3, 3, n, n), shifted, rtol=0, atol=1e-11)


def test_nuclear_arbitrary_charges():
    """V with non-integer charges Z_C equals -sum_C Z_C <i|1/|r - R_C||j> (PySCF int1e_rinv)."""
    b = Basis.build(MIXED, "sto-3g")
    pmol = to_pyscf_mole(MIXED, "sto-3g")
    q = np.array([0.7, -1.3, 2.25, 0.0, 3.5, -0.4])
    # same layout and function as the default sto-3g case: no new compile
    vals, _ = one_e_and_jacobian(b, jnp.asarray(MIXED.coords), jnp.asarray(q), jnp.zeros(3))
    ours = np.asarray(vals["nuc"])
    ref = np.zeros_like(ours)
    for a in range(MIXED.natm):
        with pmol.with_rinv_at_nucleus(a):
            ref -= q[a] * pmol.intor("int1e_rinv")
    assert np.abs(ours - ref).max() < ATOL


def test_bad_multipole_order():
    b = Basis.build(WATER, "sto-3g")
    with pytest.raises(ValueError):
        multipole(b, jnp.asarray(WATER.coords), order=3)


# ---------------------------------------------------------------------- nuclear derivatives
def pyscf_deriv_1e(pmol):
    """dS, dT, dV / dR_A as (natm, 3, nao, nao), built from int1e_ipovlp/ipkin/ipnuc and the
    operator term int1e_iprinv, as pyscf.grad.rhf.hcore_generator does."""
    natm, nao = pmol.natm, pmol.nao
    ip = {k: pmol.intor("int1e_ip" + k) for k in ("ovlp", "kin", "nuc")}
    out = {k: np.zeros((natm, 3, nao, nao)) for k in ("ovlp", "kin", "nuc")}
    for a, (_, _, p0, p1) in enumerate(pmol.aoslice_by_atom()):
        for k in ("ovlp", "kin"):
            d = np.zeros((3, nao, nao))
            d[:, p0:p1] = -ip[k][:, p0:p1]
            out[k][a] = d + d.transpose(0, 2, 1)
        with pmol.with_rinv_at_nucleus(a):
            d = pmol.intor("int1e_iprinv") * -pmol.atom_charge(a)
        d[:, p0:p1] -= ip["nuc"][:, p0:p1]
        out["nuc"][a] = d + d.transpose(0, 2, 1)
    return out


DERIV_CASES = [
    ("mixed", "sto-3g", False),
    ("mixed", "6-31g*", True),
    pytest.param("mixed", "def2-svp", False, marks=pytest.mark.slow),
    pytest.param("mixed", "6-31g*", False, marks=pytest.mark.slow),
    pytest.param("water", "cc-pvtz", False, marks=pytest.mark.slow),
]
MOLS = {"mixed": MIXED, "water": WATER}


@functools.cache
def deriv_case(molname, basis_name, cart):
    mol = MOLS[molname]
    b = Basis.build(mol, basis_name, cart=cart)
    _, ours = one_e_and_jacobian(b, jnp.asarray(mol.coords), charges_of(mol), jnp.zeros(3))
    ref = pyscf_deriv_1e(to_pyscf_mole(mol, basis_name, cart))
    return {k: np.asarray(v) for k, v in ours.items()}, ref


@pytest.mark.parametrize("molname,basis,cart", DERIV_CASES)
@pytest.mark.parametrize("name", ["ovlp", "kin", "nuc"])
def test_jacfwd_coords_matches_pyscf(molname, basis, cart, name):
    """jax.jacfwd of S, T, V in the nuclear coordinates vs int1e_ipovlp/ipkin/ipnuc(+iprinv)."""
    ours, ref = deriv_case(molname, basis, cart)
    assert ours[name].shape == ref[name].shape
    err = np.abs(ours[name] - ref[name]).max()
    print(f"MAXERR 1e-deriv {molname} {basis} cart={cart} d{name}/dR {err:.2e}")
    assert err < ATOL_DERIV, f"{molname} {basis} d{name}/dR: max abs err {err:.2e}"
    assert np.abs(ref[name]).max() > 1e-2  # the comparison is not vacuous
    # translational invariance (independent of PySCF)
    assert np.abs(ours[name].sum(axis=0)).max() < 1e-10


def _random_density(n, seed):
    d = np.random.default_rng(seed).normal(size=(n, n))
    return d + d.T


def _pyscf_energy_gradient(mol, basis, d, weights=(1.0, 1.0, 1.0)):
    """d/dR of sum_ij D_ij (w_S S + w_T T + w_V V)_ij from PySCF derivative integrals."""
    ref = pyscf_deriv_1e(to_pyscf_mole(mol, basis))
    m = sum(w * ref[k] for w, k in zip(weights, ("ovlp", "kin", "nuc")))
    return np.einsum("axij,ij->ax", m, d)


@functools.cache
def grad_and_hessian_case():
    """jax.grad (reverse mode) and jax.hessian (forward over reverse) of
    E(R) = sum_ij D_ij (S + T/2 - 2V)_ij for water sto-3g, from one compile."""
    mol, basis = WATER, "sto-3g"
    b = Basis.build(mol, basis)
    z = charges_of(mol)
    d = _random_density(b.nao, 3)

    def energy(x):
        s, t, v = _stv(b, x.reshape(-1, 3), z)
        return jnp.sum(d * (s + 0.5 * t - 2.0 * v))

    def grad_twice(x):
        g = jax.grad(energy)(x)
        return g, g

    hess, grad = jax.jit(jax.jacfwd(grad_twice, has_aux=True))(jnp.asarray(mol.coords).ravel())
    return mol, basis, d, np.asarray(grad).reshape(-1, 3), np.asarray(hess)


WEIGHTS = (1.0, 0.5, -2.0)


def test_grad_reverse_mode_matches_pyscf():
    """jax.grad of sum_ij D_ij (S + T/2 - 2V)_ij equals the contraction of PySCF's derivative
    integrals with D (water sto-3g)."""
    mol, basis, d, grad, _ = grad_and_hessian_case()
    ref = _pyscf_energy_gradient(mol, basis, d, WEIGHTS)
    assert np.abs(ref).max() > 1e-2
    assert np.abs(grad - ref).max() < ATOL_DERIV


def test_hessian_coords_vs_finite_differences():
    """The Hessian of the same function (second derivatives through the Boys custom JVP) is
    symmetric, translation invariant and equals central finite differences of PySCF's analytic
    gradient."""
    mol, basis, d, _, hess = grad_and_hessian_case()
    x0 = np.asarray(mol.coords).ravel()
    assert hess.shape == (x0.size, x0.size) and np.all(np.isfinite(hess))
    scale = np.abs(hess).max()
    np.testing.assert_allclose(hess, hess.T, rtol=0, atol=1e-10 * scale)

    def pyscf_gradient(x):
        moved = mol.with_coords(np.asarray(x).reshape(-1, 3))
        return _pyscf_energy_gradient(moved, basis, d, WEIGHTS).ravel()

    fd = fd_jacobian(pyscf_gradient, x0, 1e-4)
    assert np.abs(hess - fd).max() < FD_RTOL * scale
    assert np.abs(hess.reshape(-1, 3, 3).sum(axis=1)).max() < 1e-9 * scale  # translations


# ---------------------------------------------------------------------- exponent derivatives
@pytest.mark.parametrize("basis", ["sto-3g", pytest.param("6-31g*", marks=pytest.mark.slow)])
def test_jacfwd_exponents_vs_finite_differences(basis):
    """d(S, T, V)/d(exponents) by jacfwd through the Basis pytree vs central differences with a
    relative step of 1e-4 on each primitive exponent (water; 6-31g* adds d primitives)."""
    mol = WATER
    b = Basis.build(mol, basis)
    c, z = jnp.asarray(mol.coords), charges_of(mol)

    def stv_of(e):
        return jnp.stack(_stv(dataclasses.replace(b, exponents=e), c, z))

    f = jax.jit(stv_of)
    e0 = np.asarray(b.exponents)
    jac = np.asarray(jax.jit(jax.jacfwd(stv_of))(jnp.asarray(e0)))  # (3, nao, nao, nprim)
    assert jac.shape == (3, b.nao, b.nao, e0.size)
    # relative steps (exponents span 0.1 to 1e5): differences in s, where e = e0 (1 + s)
    fd = fd_jacobian(lambda s: f(e0 * (1 + s)), np.zeros_like(e0), 1e-4) / e0
    for i, name in enumerate(("ovlp", "kin", "nuc")):
        scale = np.abs(jac[i]).max()
        assert scale > 1e-3
        err = np.abs(jac[i] - fd[i]).max()
        print(f"MAXERR 1e-exp water {basis} d{name}/dexp {err:.2e} (scale {scale:.2e})")
        assert err < FD_RTOL * scale, f"d{name}/dexp: {err:.2e} vs scale {scale:.2e}"
    # every primitive matters somewhere (no exponent is silently treated as a constant)
    assert np.all(np.abs(jac).max(axis=(0, 1, 2)) > 1e-8)


# ---------------------------------------------------------------------- compile once, jit, vmap
def test_new_geometry_does_not_recompile():
    """One jitted function of (basis, coords) giving S, T, V and hcore is traced once and re-used
    at three geometries and with other exponents; the results match PySCF at each geometry."""
    traces = []

    @jax.jit
    def f(basis, coords, charges):
        traces.append(1)  # runs only while tracing
        return _stv(basis, coords, charges) + (hcore(basis, coords, charges),)

    mol = WATER
    b = Basis.build(mol, "sto-3g")
    z = charges_of(mol)
    geoms = [
        mol.coords,
        mol.coords + np.array([[0.0, 0.0, 0.1], [0.0, 0.2, -0.1], [0.05, -0.1, 0.0]]),
        mol.coords * 1.1 + 0.3,
    ]
    for x in geoms:
        s, t, v, h = f(b, jnp.asarray(x), z)
        pmol = to_pyscf_mole(mol.with_coords(x), "sto-3g")
        for ours, key in zip((s, t, v), ("ovlp", "kin", "nuc")):
            assert np.abs(np.asarray(ours) - pmol.intor("int1e_" + key)).max() < ATOL
        h_ref = pmol.intor("int1e_kin") + pmol.intor("int1e_nuc")
        assert np.abs(np.asarray(h) - h_ref).max() < ATOL
    # other exponents: still no retrace
    s_new = f(Basis(b.layout, b.exponents * 1.05, b.coefficients), jnp.asarray(geoms[0]), z)[0]
    assert np.abs(np.asarray(s_new) - np.asarray(f(b, jnp.asarray(geoms[0]), z)[0])).max() > 1e-4
    assert len(traces) == 1
    assert f._cache_size() == 1


def test_vmap_over_geometries():
    """vmap of S and V over three geometries equals PySCF at each geometry."""
    mol = MIXED
    b = Basis.build(mol, "sto-3g")
    z = charges_of(mol)
    rng = np.random.default_rng(11)
    xs = mol.coords[None] + 0.1 * rng.normal(size=(3, mol.natm, 3))
    vs, vv = jax.jit(jax.vmap(lambda c: (overlap(b, c), nuclear(b, c, z))))(jnp.asarray(xs))
    assert vs.shape == vv.shape == (3, b.nao, b.nao)
    for k in range(3):
        pmol = to_pyscf_mole(mol.with_coords(xs[k]), "sto-3g")
        assert np.abs(np.asarray(vs[k]) - pmol.intor("int1e_ovlp")).max() < ATOL
        assert np.abs(np.asarray(vv[k]) - pmol.intor("int1e_nuc")).max() < ATOL
    assert np.abs(np.asarray(vs[0] - vs[1])).max() > 1e-3  # the geometries really differ
