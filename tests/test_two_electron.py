"""Two-electron integrals vs PySCF: 4-centre (s1 and s8), 3-centre and 2-centre Coulomb.

* values vs ``mol.intor('int2e')``, ``mol.intor('int2e', aosym='s8')``,
  ``pyscf.df.incore.aux_e2(mol, auxmol, 'int3c2e')`` and ``auxmol.intor('int2c2e')`` to 1e-10
  absolute (sto-3g .. cc-pVQZ with g functions behind `slow`);
* nuclear-coordinate derivatives (jacfwd and reverse-mode grad) vs ``int2e_ip1`` to 1e-9;
  exponent derivatives vs central finite differences;
* a plan made at one geometry is re-used at others without recompiling, and stays accurate;
  jit and vmap.

The ERI compile time grows with the number of angular-momentum classes, so the default run uses
small bases; every jitted function is compiled once per layout and shared through caches.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _checks import fd_jacobian
from pyscf import df

import dftad
from dftad import Basis, Molecule
from dftad.integrals import two_electron as te
from dftad.interop.pyscf import to_pyscf_mole

ATOL = 1e-10
ATOL_DERIV = 1e-9
FD_RTOL = 1e-6

MOLS = {
    # H, C, N, O, F and S in one (open-shell) molecule: the default s/p case
    "mixed": Molecule.from_string(
        "C 0 0 0; N 1.2 0.1 0; O -1.1 0.3 0.2; F 0 1.3 -0.4; H 0.2 -1.0 0.9; S 2.0 1.0 1.0", spin=1
    ),
    "water": dftad.load("water"),
    "h2s": dftad.load("hydrogen_sulfide"),
    "hf": dftad.load("hydrogen_fluoride"),
    "co": dftad.load("carbon_monoxide"),
    "hcn": Molecule.from_string("H 0 0 -1.064; C 0 0 0; N 0 0 1.156"),
    "h3+": Molecule.from_string("H 0 0 0; H 0.9 0 0; H 0.3 0.8 0.2", charge=1),
    "2h2": Molecule.from_string("H 0 0 0; H 0 0 0.74; H 0 20 0; H 0 20 0.74"),
}

# A cheap basis with d functions: s, s, d on H (3 pair classes, 6 quartet classes, (dd|dd)
# included), used where 6-31g* (21 quartet classes, ~1 min to compile here) is too slow.
SD_BASIS = {"H": [[0, [3.2, 1.0]], [0, [0.45, 1.0]], [2, [0.9, 1.0]]]}
BASES = {"sd": SD_BASIS}

ERI = jax.jit(te.eri)
ERI_S8 = jax.jit(te.eri_s8)
INT3C = jax.jit(te.int3c2e)
INT2C = jax.jit(te.int2c2e)


@functools.cache
def setup(molname, basis_name, cart=False):
    """(mol, Basis, plan, PySCF Mole): the plan is built once per case."""
    mol = MOLS[molname]
    basis = BASES.get(basis_name, basis_name)
    b = Basis.build(mol, basis, cart=cart)
    plan = te.build_plan(b, jnp.asarray(mol.coords))
    return mol, b, plan, to_pyscf_mole(mol, basis, cart)


# ---------------------------------------------------------------------- 4-centre values
@jax.jit
def eri_and_jacobian(plan, basis, coords):
    """(ij|kl) and jax.jacfwd of it, d(ij|kl)/dR as (natm, 3, n, n, n, n), in one pass."""

    def f(c):
        v = te.eri(plan, basis, c)
        return v, v

    jac, val = jax.jacfwd(f, has_aux=True)(coords)
    return val, jnp.moveaxis(jac, (4, 5), (0, 1))


# s1 values of the cases in WITH_JACOBIAN come from eri_and_jacobian (one compile shared with the
# derivative test of the same case)
DEFAULT_CASES = [("mixed", "sto-3g", False), ("h3+", "sd", False)]
SLOW_CASES = [
    ("mixed", "sto-3g", True),
    ("water", "6-31g*", False),
    ("water", "6-31g*", True),
    ("h2s", "def2-svp", False),
    ("hcn", "def2-svp", False),
    ("hf", "def2-tzvp", False),
    ("co", "cc-pvtz", False),
    ("hf", "cc-pvqz", False),
]
CASES = DEFAULT_CASES + [pytest.param(*c, marks=pytest.mark.slow) for c in SLOW_CASES]
# the s/d test basis only for s1 (its s8 would be one more compile; s8 with d functions is
# covered by the slow cases)
NO_S8 = {("h3+", "sd", False)}
S8_CASES = [c for c in DEFAULT_CASES if c not in NO_S8] + [
    pytest.param(*c, marks=pytest.mark.slow) for c in SLOW_CASES
]
WITH_JACOBIAN = {("water", "6-31g*", False), ("water", "sto-3g", False), ("h3+", "sd", False)}


@functools.cache
def eri_case(molname, basis_name, cart):
    mol, b, plan, pmol = setup(molname, basis_name, cart)
    c = jnp.asarray(mol.coords)
    if (molname, basis_name, cart) in WITH_JACOBIAN:
        s1 = np.asarray(eri_and_jacobian(plan, b, c)[0])
    else:
        s1 = np.asarray(ERI(plan, b, c))
    s8 = None if (molname, basis_name, cart) in NO_S8 else np.asarray(ERI_S8(plan, b, c))
    return s1, s8, pmol.intor("int2e"), pmol.intor("int2e", aosym="s8")


def assert_matches(ours, ref, label):
    """Same shape and max |ours - ref| < ATOL (the error is printed as MAXERR, for the logs)."""
    assert ours.shape == ref.shape
    err = np.abs(ours - ref).max()
    print(f"MAXERR {label} {err:.2e}")
    assert err < ATOL, f"{label}: max abs err {err:.2e}"


@pytest.mark.parametrize("molname,basis,cart", CASES)
def test_eri_matches_pyscf(molname, basis, cart):
    """eri == int2e (aosym s1, full tensor) to 1e-10 absolute."""
    s1, _, r1, _ = eri_case(molname, basis, cart)
    assert_matches(s1, r1, f"eri {molname} {basis} cart={cart} s1")


@pytest.mark.parametrize("molname,basis,cart", S8_CASES)
def test_eri_s8_matches_pyscf(molname, basis, cart):
    """eri_s8 == int2e(aosym='s8') to 1e-10 absolute."""
    _, s8, _, r8 = eri_case(molname, basis, cart)
    assert_matches(s8, r8, f"eri {molname} {basis} cart={cart} s8")


@pytest.mark.parametrize("molname,basis,cart", DEFAULT_CASES)
def test_eri_permutational_symmetry(molname, basis, cart):
    """The full tensor has the 8-fold symmetry exactly (scatter of unique quartets) and
    (ij|ij) >= 0."""
    s1 = eri_case(molname, basis, cart)[0]
    for perm in [(1, 0, 2, 3), (0, 1, 3, 2), (2, 3, 0, 1), (3, 2, 1, 0)]:
        np.testing.assert_array_equal(s1, s1.transpose(perm))
    n = s1.shape[0]
    diag = s1.reshape(n * n, n * n).diagonal()
    assert np.all(diag > -1e-14)


# ---------------------------------------------------------------------- 3c / 2c
DF_CASES = [
    ("water", "sto-3g", False, "etb"),  # PySCF's even-tempered aux (aug_etb): s, p, d on O
    pytest.param("water", "sto-3g", False, "def2-universal-jkfit", marks=pytest.mark.slow),  # g
    pytest.param("water", "def2-svp", False, "auto", marks=pytest.mark.slow),
    pytest.param("h2s", "def2-svp", False, "auto", marks=pytest.mark.slow),
    pytest.param("water", "6-31g*", True, "def2-universal-jkfit", marks=pytest.mark.slow),
    pytest.param("mixed", "sto-3g", False, "def2-universal-jkfit", marks=pytest.mark.slow),
]


@functools.cache
def df_setup(molname, basis_name, cart, auxname):
    mol, b, _, pmol = setup(molname, basis_name, cart)
    if auxname == "auto":
        auxname = df.addons.make_auxbasis(pmol)
    elif auxname == "etb":
        auxname = df.addons.aug_etb(pmol)
    # PySCF's aux_e2 needs the auxiliary basis cartesian when the orbital basis is
    auxmol = to_pyscf_mole(mol, auxname, cart=cart)
    aux = Basis.build(mol, auxname, cart=cart)
    assert aux.nao == auxmol.nao
    c = jnp.asarray(mol.coords)
    plan3 = te.build_plan(b, c, aux=aux, kind="3c")
    plan2 = te.build_plan(aux, c, kind="2c")
    return mol, b, aux, plan3, plan2, pmol, auxmol


@functools.cache
def df_case(molname, basis_name, cart, auxname):
    mol, b, aux, plan3, plan2, pmol, auxmol = df_setup(molname, basis_name, cart, auxname)
    c = jnp.asarray(mol.coords)
    v3 = np.asarray(INT3C(plan3, b, aux, c))
    v2 = np.asarray(INT2C(plan2, aux, c))
    return v3, v2, df.incore.aux_e2(pmol, auxmol, "int3c2e"), auxmol.intor("int2c2e")


@pytest.mark.parametrize("molname,basis,cart,auxname", DF_CASES)
def test_int3c2e_matches_pyscf(molname, basis, cart, auxname):
    v3, _, r3, _ = df_case(molname, basis, cart, auxname)
    assert_matches(v3, r3, f"3c {molname} {basis} cart={cart} aux={auxname}")


@pytest.mark.parametrize("molname,basis,cart,auxname", DF_CASES)
def test_int2c2e_matches_pyscf(molname, basis, cart, auxname):
    _, v2, _, r2 = df_case(molname, basis, cart, auxname)
    assert_matches(v2, r2, f"2c {molname} aux={auxname}")
    assert np.linalg.eigvalsh(v2).min() > 0  # (P|Q) is a Coulomb metric: positive definite


def test_2c_of_orbital_basis_equals_eri_block():
    """build_plan(kind='2c') without aux gives (P|Q) of the basis itself (= int2c2e of it)."""
    mol, b, _, pmol = setup("water", "sto-3g")
    plan2 = te.build_plan(b, jnp.asarray(mol.coords), kind="2c")
    ours = np.asarray(INT2C(plan2, b, jnp.asarray(mol.coords)))
    assert np.abs(ours - pmol.intor("int2c2e")).max() < ATOL


@pytest.mark.slow
def test_int3c2e_jacfwd_coords_matches_pyscf():
    """d(ij|P)/dR from jacfwd vs int3c2e_ip1 (orbital centres) and int3c2e_ip2 (aux centre)."""
    mol, b, aux, plan3, _, pmol, auxmol = df_setup("water", "sto-3g", False, "def2-universal-jkfit")
    c = jnp.asarray(mol.coords)
    jac = jax.jit(jax.jacfwd(lambda x: te.int3c2e(plan3, b, aux, x)))(c)
    ours = np.asarray(jnp.transpose(jac, (3, 4, 0, 1, 2)))
    ip1 = df.incore.aux_e2(pmol, auxmol, "int3c2e_ip1", comp=3)  # (3, n, n, naux) (nabla i j|P)
    ip2 = df.incore.aux_e2(pmol, auxmol, "int3c2e_ip2", comp=3)  # (ij|nabla P)
    ref = np.zeros_like(ours)
    aoslice, auxslice = pmol.aoslice_by_atom(), auxmol.aoslice_by_atom()
    for a in range(mol.natm):
        p0, p1 = aoslice[a, 2:]
        q0, q1 = auxslice[a, 2:]
        g = np.zeros_like(ip1)
        g[:, p0:p1] = -ip1[:, p0:p1]
        ref[a] = g + g.transpose(0, 2, 1, 3)
        ref[a][..., q0:q1] -= ip2[..., q0:q1]
    assert np.abs(ours - ref).max() < ATOL_DERIV


# ---------------------------------------------------------------------- derivatives
def pyscf_deriv_eri(pmol):
    """d(ij|kl)/dR_A (natm, 3, n, n, n, n) from int2e_ip1 = (nabla i j|kl) and its permutations
    for the four positions."""
    ip1 = pmol.intor("int2e_ip1")
    out = np.zeros((pmol.natm,) + ip1.shape)
    for a, (_, _, p0, p1) in enumerate(pmol.aoslice_by_atom()):
        g = np.zeros_like(ip1)
        g[:, p0:p1] = -ip1[:, p0:p1]
        # positions: i; j = (nabla j i|kl); k = (nabla k l|ij); l = (nabla l k|ij)
        out[a] = (g + g.transpose(0, 2, 1, 3, 4) + g.transpose(0, 3, 4, 1, 2)
                  + g.transpose(0, 3, 4, 2, 1))
    return out


JAC_CASES = [
    ("water", "sto-3g", False),
    ("h3+", "sd", False),  # d functions
    pytest.param("water", "6-31g*", False, marks=pytest.mark.slow),
]


@pytest.mark.parametrize("molname,basis,cart", JAC_CASES)
def test_eri_jacfwd_coords_matches_pyscf(molname, basis, cart):
    """jax.jacfwd-type forward derivative of the full ERI tensor vs int2e_ip1 to 1e-9."""
    mol, b, plan, pmol = setup(molname, basis, cart)
    val, jac = eri_and_jacobian(plan, b, jnp.asarray(mol.coords))
    val, jac = np.asarray(val), np.asarray(jac)
    ref = pyscf_deriv_eri(pmol)
    assert jac.shape == ref.shape
    assert np.abs(val - pmol.intor("int2e")).max() < ATOL
    err = np.abs(jac - ref).max()
    print(f"MAXERR eri-deriv {molname} {basis} d(ij|kl)/dR {err:.2e}")
    assert err < ATOL_DERIV, f"{molname} {basis}: d(ij|kl)/dR max abs err {err:.2e}"
    assert np.abs(ref).max() > 0.1
    assert np.abs(jac.sum(axis=0)).max() < 1e-10  # translational invariance


# one jitted eri whose traces are counted per basis layout (shared by the exponent finite
# differences and the no-recompile test)
TRACES: dict = {}


@jax.jit
def eri_counted(plan, basis, coords):
    TRACES[basis.layout] = TRACES.get(basis.layout, 0) + 1  # runs only while tracing
    return te.eri(plan, basis, coords)


def of_exps_jit(plan, b, e, c):
    """eri_counted with the exponents replaced by ``e`` (same layout: no retrace)."""
    return eri_counted(plan, Basis(b.layout, jnp.asarray(e), b.coefficients), c)


def fd_relative(fn, e0, step):
    """Central differences of ``fn`` in each exponent with the relative step ``step`` (the
    exponents span 0.1 to 1e5): fd_jacobian in s, where e = e0 (1 + s), divided by e0."""
    return fd_jacobian(lambda s: fn(e0 * (1 + s)), np.zeros_like(e0), step) / e0


def _coulomb_exchange(d, g):
    return 0.5 * jnp.einsum("ij,ijkl,kl->", d, g, d) - 0.25 * jnp.einsum("ij,ikjl,kl->", d, g, d)


def _pyscf_coulomb_exchange_gradient(pmol, d):
    """d/dR of 1/2 D(ij|kl)D - 1/4 D(ik|jl)D from PySCF's int2e_ip1."""
    dg = pyscf_deriv_eri(pmol)
    return (0.5 * np.einsum("ij,axijkl,kl->ax", d, dg, d)
            - 0.25 * np.einsum("ij,axikjl,kl->ax", d, dg, d))


@functools.cache
def coulomb_derivatives():
    """For E(R, a) = 1/2 D(ij|kl)D - 1/4 D(ik|jl)D (water sto-3g, random symmetric D), from one
    compile: dE/dR and dE/da by jax.grad (reverse mode, through the rematerialised scan) and the
    coordinate Hessian by jax.jacfwd of that gradient (forward over reverse, Boys JVP twice)."""
    mol, b, plan, pmol = setup("water", "sto-3g")
    d = np.random.default_rng(2).normal(size=(b.nao, b.nao))
    d = d + d.T

    def energy(x, e):
        g = te.eri(plan, Basis(b.layout, e, b.coefficients), x.reshape(-1, 3))
        return _coulomb_exchange(jnp.asarray(d), g)

    def grads(x, e):
        gx, ge = jax.grad(energy, argnums=(0, 1))(x, e)
        return gx, (gx, ge)

    x0 = jnp.asarray(mol.coords).ravel()
    hess, (gx, ge) = jax.jit(jax.jacfwd(grads, has_aux=True))(x0, b.exponents)
    return mol, b, plan, pmol, d, np.asarray(gx).reshape(-1, 3), np.asarray(ge), np.asarray(hess)


def test_grad_reverse_mode_coords():
    """dE/dR by jax.grad equals the contraction of PySCF's int2e_ip1 derivatives to 1e-9."""
    _, _, _, pmol, d, gx, _, _ = coulomb_derivatives()
    ref = _pyscf_coulomb_exchange_gradient(pmol, d)
    assert np.abs(ref).max() > 1e-2
    assert np.abs(gx - ref).max() < ATOL_DERIV


def test_grad_reverse_mode_exponents_vs_finite_differences():
    """dE/d(exponent) by jax.grad equals central differences of E (relative step 1e-4) to 1e-6
    of its scale."""
    mol, b, plan, _, d, _, ge, _ = coulomb_derivatives()
    c0, e0 = jnp.asarray(mol.coords), np.asarray(b.exponents)

    def e_of(exps):
        return float(_coulomb_exchange(jnp.asarray(d), of_exps_jit(plan, b, exps, c0)))

    fd = fd_relative(e_of, e0, 1e-4)
    scale = np.abs(ge).max()
    assert scale > 1e-3
    assert np.abs(ge - fd).max() < FD_RTOL * scale


def test_hessian_coords_vs_finite_differences():
    """The coordinate Hessian is symmetric, translation invariant and equals central
    differences of PySCF's analytic gradient (step 1e-4 Bohr) to 1e-6 of its scale."""
    mol, _, _, _, d, _, _, hess = coulomb_derivatives()
    x0 = np.asarray(mol.coords).ravel()
    scale = np.abs(hess).max()
    assert hess.shape == (x0.size, x0.size)
    assert np.all(np.isfinite(hess)) and scale > 1e-2
    np.testing.assert_allclose(hess, hess.T, rtol=0, atol=1e-10 * scale)

    def pyscf_gradient(x):
        pmol = to_pyscf_mole(mol.with_coords(np.asarray(x).reshape(-1, 3)), "sto-3g")
        return _pyscf_coulomb_exchange_gradient(pmol, d).ravel()

    fd = fd_jacobian(pyscf_gradient, x0, 1e-4)
    err = np.abs(hess - fd).max()
    print(f"MAXERR eri-hessian water sto-3g {err:.2e} (scale {scale:.2e})")
    assert err < FD_RTOL * scale
    assert np.abs(hess.reshape(-1, 3, 3).sum(axis=1)).max() < 1e-9 * scale


@pytest.mark.slow
@pytest.mark.parametrize("molname,basis", [("water", "sto-3g"), ("h3+", "sd")])
def test_jacfwd_exponents_vs_finite_differences(molname, basis):
    """d(ij|kl)/d(exponent), the whole tensor for every primitive (jacfwd through the Basis
    pytree), vs central differences with relative step 1e-4 (the plan is fixed)."""
    mol, b, plan, _ = setup(molname, basis)
    c = jnp.asarray(mol.coords)

    def of_exps(e):
        return te.eri(plan, dataclasses.replace(b, exponents=e), c)

    e0 = np.asarray(b.exponents)
    jac = np.asarray(jax.jit(jax.jacfwd(of_exps))(jnp.asarray(e0)))
    fd = fd_relative(lambda e: of_exps_jit(plan, b, e, c), e0, 1e-4)
    scale = np.abs(jac).max()
    assert scale > 1e-2
    assert np.abs(jac - fd).max() < FD_RTOL * scale
    assert np.all(np.abs(jac).max(axis=(0, 1, 2, 3)) > 1e-6)  # every primitive contributes


# ---------------------------------------------------------------------- compile once, jit, vmap
GEOMETRIES = [
    np.zeros((3, 3)),
    np.array([[0.0, 0.0, 0.1], [0.0, 0.15, -0.1], [0.05, -0.1, 0.0]]),
    np.array([[0.0, 0.0, 0.0], [0.0, -0.2, 0.25], [0.0, 0.3, 0.2]]),
]


def test_new_geometry_does_not_recompile():
    """A jitted eri, with the plan from the first geometry, is traced once for three geometries
    (and other exponents), and its results equal PySCF's int2e at each geometry."""
    mol, b, plan, _ = setup("water", "sto-3g")
    traces = None
    for dx in GEOMETRIES:
        x = mol.coords + dx
        ours = np.asarray(eri_counted(plan, b, jnp.asarray(x)))
        # after the first call (a trace, or none when another test on this worker traced it)
        traces = TRACES[b.layout] if traces is None else traces
        ref = to_pyscf_mole(mol.with_coords(x), "sto-3g").intor("int2e")
        assert np.abs(ours - ref).max() < ATOL
    size = eri_counted._cache_size()
    c0 = jnp.asarray(mol.coords)
    other = of_exps_jit(plan, b, b.exponents * 1.03, c0)
    assert np.abs(np.asarray(other) - np.asarray(eri_counted(plan, b, c0))).max() > 1e-4
    assert TRACES[b.layout] == traces
    assert eri_counted._cache_size() == size


def test_3c_new_geometry_does_not_recompile():
    """Same for int3c2e and int2c2e (shared module-level jits, plan from the first geometry)."""
    mol, b, aux, plan3, plan2, _, _ = df_setup("water", "sto-3g", False, "etb")
    # first compile (called here, not through the cached df_case: the conftest fixture may have
    # cleared JAX's caches since df_case ran)
    c0 = jnp.asarray(mol.coords)
    jax.block_until_ready((INT3C(plan3, b, aux, c0), INT2C(plan2, aux, c0)))
    auxbasis = df.addons.aug_etb(to_pyscf_mole(mol, "sto-3g"))
    n3, n2 = INT3C._cache_size(), INT2C._cache_size()
    assert n3 >= 1 and n2 >= 1
    for dx in GEOMETRIES[1:]:
        x = mol.coords + dx
        pm = to_pyscf_mole(mol.with_coords(x), "sto-3g")
        am = to_pyscf_mole(mol.with_coords(x), auxbasis)
        v3 = np.asarray(INT3C(plan3, b, aux, jnp.asarray(x)))
        v2 = np.asarray(INT2C(plan2, aux, jnp.asarray(x)))
        assert np.abs(v3 - df.incore.aux_e2(pm, am, "int3c2e")).max() < ATOL
        assert np.abs(v2 - am.intor("int2c2e")).max() < ATOL
    assert INT3C._cache_size() == n3 and INT2C._cache_size() == n2


def test_vmap_over_geometries():
    """vmap of eri_s8 over three geometries (plan from the first) equals PySCF at each one."""
    mol, b, plan, _ = setup("2h2", "6-31g")
    rng = np.random.default_rng(4)
    xs = mol.coords[None] + 0.2 * rng.normal(size=(3, mol.natm, 3))
    xs[0] = mol.coords
    vmapped = jax.jit(jax.vmap(te.eri_s8, in_axes=(None, None, 0)))
    batched = np.asarray(vmapped(plan, b, jnp.asarray(xs)))
    assert batched.shape[0] == 3
    for k in range(3):
        ref = to_pyscf_mole(mol.with_coords(xs[k]), "6-31g").intor("int2e", aosym="s8")
        assert np.abs(batched[k] - ref).max() < ATOL
    assert np.abs(batched[0] - batched[2]).max() > 1e-3


def test_plan_is_a_pytree():
    """The plan flattens to index arrays (traced children) and rebuilds to an equal plan."""
    _, b, plan, _ = setup("water", "sto-3g")
    leaves, treedef = jax.tree_util.tree_flatten(plan)
    assert leaves and all(isinstance(x, jax.Array) for x in leaves)
    assert all(jnp.issubdtype(x.dtype, jnp.integer) for x in leaves)
    rebuilt = jax.tree_util.tree_unflatten(treedef, leaves)
    c = jnp.asarray(MOLS["water"].coords)
    ref = np.asarray(eri_counted(plan, b, c))
    traces = TRACES[b.layout]  # after the original plan's trace (other tests may share it)
    np.testing.assert_array_equal(np.asarray(eri_counted(rebuilt, b, c)), ref)
    assert TRACES[b.layout] == traces  # same static structure: no retrace


@pytest.mark.parametrize("basis,omega", [("sto-3g", None), ("sto-3g", 0.33),
                                         pytest.param("6-31g*", None, marks=pytest.mark.slow)])
def test_eri_energy_equals_full_tensor_contraction(basis, omega):
    """eri_energy (unique shell quartets times their images) equals the contraction of the full
    tensor, with Coulomb and spin-resolved exchange densities, and so does its gradient."""
    mol, b, plan, _ = setup("water", basis)
    c = jnp.asarray(mol.coords)
    rng = np.random.default_rng(3)
    n = b.nao
    d = rng.standard_normal((n, n))
    d = jnp.asarray(d + d.T)
    dx = rng.standard_normal((2, n, n))
    dx = jnp.asarray(dx + dx.transpose(0, 2, 1))

    def full(c):
        e = te.eri(plan, b, c, omega)
        return (0.5 * jnp.einsum("ij,ijkl,kl", d, e, d)
                - 0.3 * jnp.einsum("sil,ijkl,sjk", dx, e, dx))

    def direct(c):
        return te.eri_energy(plan, b, c, d, dx, 0.3, omega)

    def exchange_only(c):  # minus 0.3 times the exchange contraction of the full tensor: zero
        return (te.eri_energy(plan, b, c, None, dx, 0.3, omega)
                + 0.3 * jnp.einsum("sil,ijkl,sjk", dx, te.eri(plan, b, c, omega), dx))

    # one program (run op by op, the graph took ~50 s)
    e, e_ref, g, g_ref, e_x = jax.jit(lambda c: (direct(c), full(c), jax.grad(direct)(c),
                                                 jax.grad(full)(c), exchange_only(c)))(c)
    assert abs(float(e) - float(e_ref)) < 1e-9
    assert np.abs(np.asarray(g - g_ref)).max() < 1e-9
    assert abs(float(e_x)) < 1e-9


@pytest.mark.parametrize("L", [0, 1, 3, 6])
def test_hermite_r_cube_derivatives_equal_ad_of_the_recursion(L):
    """The R cube's custom JVP (one order up, plus the alpha scaling relation) equals automatic
    differentiation through the recursion itself, to first and second order, on every meaningful
    entry (t + u + v <= L), including the long-range regime (large alpha |PQ|^2)."""
    from dftad.integrals import hermite

    rng = np.random.default_rng(L)
    alpha = jnp.asarray(rng.uniform(0.05, 8.0, 6))
    xyz = jnp.asarray(rng.normal(scale=2.0, size=(6, 3)))
    idx = hermite.cube_index(L, hermite.hermite_indices(L))

    def meaningful(cube_fn):
        return lambda a, x: cube_fn(L, a, x).reshape(a.shape[0], -1)[:, idx]

    ours, ref = meaningful(hermite.hermite_r_cube), meaningful(hermite.hermite_r_cube.fun)
    da, dx = jnp.asarray(rng.normal(size=6)), jnp.asarray(rng.normal(size=(6, 3)))
    w = jnp.asarray(rng.normal(size=(6, len(idx))))

    def derivatives(f):
        """(value, jvp) and reverse mode followed by a second derivative (forward over
        reverse)."""
        g = jax.grad(lambda a, x: jnp.sum(w * f(a, x)), argnums=(0, 1))
        return jax.jvp(f, (alpha, xyz), (da, dx)), jax.jvp(g, (alpha, xyz), (da, dx))

    # one program for both (op by op, the unrolled recursion compiled ~400 small programs)
    ((v, t), second), ((v_ref, t_ref), second_ref) = jax.jit(
        lambda: (derivatives(ours), derivatives(ref)))()
    scale = np.abs(np.asarray(v_ref)).max()
    np.testing.assert_allclose(v, v_ref, rtol=0, atol=1e-14 * scale)
    np.testing.assert_allclose(t, t_ref, rtol=0, atol=1e-12 * np.abs(np.asarray(t_ref)).max())
    for a, b in zip(jax.tree.leaves(second), jax.tree.leaves(second_ref)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-11 * np.abs(np.asarray(b)).max())


def test_operators_of_a_range_separated_functional_share_one_kernel():
    """per_operator traces the class kernels once for (1/r12, erf(omega r12)/r12): 1/r12 as
    omega = inf is exact, and both tensors equal PySCF's (``int2e`` and ``int2e`` under
    ``with_range_coulomb``) to 1e-10; the derivative in omega equals central finite
    differences."""
    from dftad.integrals.eri_kernel import per_operator

    mol, b, plan, pmol = setup("water", "sto-3g")
    c = jnp.asarray(mol.coords)
    omega = 0.33
    h = 1e-4

    def both(w):
        return per_operator(lambda x: te.eri(plan, b, c, x), (None, w))

    def lr_sum(w):  # a scalar of the erf tensor, beside the Coulomb operator
        return jnp.sum(both(w)[1] ** 2)

    # one program: the tensors, the omega derivative and the two displaced values
    (coul, lr), g, up, down = jax.jit(lambda w: (both(w), jax.grad(lr_sum)(w), lr_sum(w + h),
                                                 lr_sum(w - h)))(omega)
    assert_matches(np.asarray(coul), pmol.intor("int2e"), "eri 1/r12 beside erf")
    with pmol.with_range_coulomb(omega):
        assert_matches(np.asarray(lr), pmol.intor("int2e"), "eri erf(0.33 r12)/r12")
    fd = (float(up) - float(down)) / (2 * h)
    assert abs(float(g) - fd) < FD_RTOL * abs(fd), (float(g), fd)


@pytest.mark.parametrize("molname,basis,omega", [("mixed", "sto-3g", None),
                                                 ("h3+", "sd", None), ("h3+", "sd", 0.33)])
def test_written_reverse_pass_equals_jax_reverse_pass(molname, basis, omega):
    """eri_blocks_pullback (the class kernels' reverse pass written out for classes up to
    WRITTEN_MAX_L, JAX's above; bra sums as a matrix product where the plan has bra rows) equals
    jax.vjp of eri_blocks in the coordinates to 1e-12 of its scale, and so does its derivative
    along a displacement (forward mode over it, the Hessians', which runs JAX's reverse pass)."""
    from dftad.integrals.eri_plan import WRITTEN_MAX_L

    mol, b, plan, _ = setup(molname, basis)
    orders = [plan.bra_sets[c.bra].la + plan.bra_sets[c.bra].lb + plan.ket_sets[c.ket].la
              + plan.ket_sets[c.ket].lb for c in plan.classes]
    written = [L <= WRITTEN_MAX_L for L in orders]
    assert any(written)
    if molname == "h3+":  # (dd|..) classes take JAX's reverse pass, (ds|ss) the bra rows
        assert not all(written)
        assert any(rows for rows, w in zip(plan.bra_rows, written) if w)
    c = jnp.asarray(mol.coords)
    rng = np.random.default_rng(5)
    shapes = jax.eval_shape(lambda c: te.eri_blocks(plan, b, c, omega), c)
    bars = tuple(jnp.asarray(rng.standard_normal(s.shape)) for s in shapes)
    dc = jnp.asarray(rng.standard_normal(c.shape))

    def ref(c):
        return jax.vjp(lambda c: te.eri_blocks(plan, b, c, omega), c)[1](bars)[0]

    def new(c):
        return te.eri_blocks_pullback(plan, b, c, bars, omega)

    g_ref, dg_ref, g, dg = jax.jit(lambda c: (*jax.jvp(ref, (c,), (dc,)),
                                              *jax.jvp(new, (c,), (dc,))))(c)
    for x, y in ((g, g_ref), (dg, dg_ref)):
        scale = float(jnp.abs(y).max())
        assert scale > 1e-3
        assert float(jnp.abs(x - y).max()) < 1e-12 * scale


@pytest.mark.parametrize("ls", [(1, 0, 1, 0), (1, 1, 1, 0), (2, 0, 1, 0), (0, 0, 1, 1)])
@pytest.mark.parametrize("omega", [None, 0.3])
def test_quartets_last_axis_equal_the_matrix_products(ls, omega):
    """The quartet-last evaluation of a class (:func:`eri_kernel._quartets_last`, the values of
    small classes) equals the batched matrix products (:func:`eri_kernel._quartets_first`) to
    1e-13 relative, and :func:`eri_kernel.primitive_quartets` takes it for these classes
    with the products' first and second derivatives, through the Boys function's long-range
    regime too (large alpha |PQ|^2)."""
    from dftad.basis import ncart
    from dftad.integrals import eri_kernel as ek
    from dftad.integrals import hermite

    la, lb, lc, ld = ls
    lab, lcd = la + lb, lc + ld
    nab, ncd = ncart(la) * ncart(lb), ncart(lc) * ncart(ld)
    hab, hcd = len(hermite.hermite_indices(lab)), len(hermite.hermite_indices(lcd))
    assert ncd > 1 and hab * ncd * (hcd + nab) <= ek.LAST_AXIS_MAX_FLOPS  # the form under test
    rng = np.random.default_rng(sum(ls))
    c = 64

    def pair(h, n):
        return (jnp.asarray(rng.uniform(0.1, 30.0, c)),
                jnp.asarray(rng.normal(scale=2.0, size=(c, 3))),
                jnp.asarray(rng.normal(size=(c, h, n))))

    bra, ket = pair(hab, nab), pair(hcd, ncd)
    new = ek._quartets_last(bra, ket, lab, lcd, omega)
    ref = ek._quartets_first(bra, ket, lab, lcd, omega)
    assert np.abs(np.asarray(new - ref)).max() < 1e-13 * np.abs(np.asarray(ref)).max()

    def f(form):
        return lambda b, k: form(b, k, lab, lcd, omega)

    t = jax.tree.map(lambda x: jnp.asarray(rng.normal(size=x.shape)), (bra, ket))
    ours = f(ek.primitive_quartets)
    first = f(ek._quartets_first)
    out, jv = jax.jvp(ours, (bra, ket), t)
    assert np.abs(np.asarray(out - ref)).max() < 1e-13 * np.abs(np.asarray(ref)).max()
    assert np.allclose(jv, jax.jvp(first, (bra, ket), t)[1], rtol=0, atol=1e-12 * np.abs(jv).max())

    def hvp(form):
        g = jax.grad(lambda b: jnp.sum(jnp.sin(form(b, ket))))
        return jax.jvp(g, (bra,), (t[0],))[1]

    for x, y in zip(jax.tree.leaves(hvp(ours)), jax.tree.leaves(hvp(first))):
        assert np.allclose(x, y, rtol=1e-12, atol=1e-12 * np.abs(y).max())
