"""AO values and derivatives on points vs PySCF's eval_gto, AD checks, no-recompile check."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _checks import fd_directional, fd_jacobian
from pyscf import dft

from dftad import Basis, Molecule
from dftad.grid import split_blocks
from dftad.integrals.ao import eval_ao
from dftad.interop.pyscf import to_pyscf_mole

ATOL = 1e-10

MIXED = Molecule.from_string(
    "C 0 0 0; N 1.2 0.1 0; O -1.1 0.3 0.2; F 0 1.3 -0.4; H 0.2 -1.0 0.9; S 2.0 1.0 1.0", spin=1
)
WATER = Molecule.from_string("O 0 0 0; H 0 0.757 0.587; H 0 -0.757 0.587")


def random_points(mol, n, seed=0, spread=1.0):
    rng = np.random.default_rng(seed)
    centres = mol.coords[rng.integers(0, mol.natm, n)]
    return centres + spread * rng.normal(size=(n, 3))


def pyscf_ao(pmol, points, deriv):
    kind = "cart" if pmol.cart else "sph"
    out = pmol.eval_gto(f"GTOval_{kind}_deriv{deriv}", points)
    return out if deriv else out[None]


BASES = ["sto-3g", "6-31g*", "def2-svp", "def2-tzvp", "cc-pvtz", "cc-pvqz"]
CART_QUICK = {"sto-3g", "6-31g*", "cc-pvqz"}  # s/p factors, 6d, 15g; the rest behind `slow`
CASES = [(b, False) for b in BASES] + [
    pytest.param(b, True, marks=() if b in CART_QUICK else pytest.mark.slow) for b in BASES
]


@pytest.mark.parametrize("basis,cart", CASES)
def test_matches_pyscf_deriv2(basis, cart):
    """Values, gradients and Hessians of every AO on random points near H, C, N, O, F and S
    (cc-pvtz has f, cc-pvqz has g functions)."""
    pmol = to_pyscf_mole(MIXED, basis, cart)
    b = Basis.build(MIXED, basis, cart=cart)
    pts = random_points(MIXED, 300, seed=1)
    ours = np.asarray(eval_ao(b, MIXED.coords, pts, deriv=2))
    ref = pyscf_ao(pmol, pts, 2)
    assert ours.shape == ref.shape == (10, 300, pmol.nao)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=ATOL)


@pytest.mark.parametrize("deriv", [0, 1])
def test_lower_derivatives(deriv):
    pmol = to_pyscf_mole(MIXED, "def2-svp")
    b = Basis.build(MIXED, "def2-svp")
    pts = random_points(MIXED, 200, seed=2)
    ours = np.asarray(eval_ao(b, MIXED.coords, pts, deriv=deriv))
    ref = pyscf_ao(pmol, pts, deriv)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=0, atol=ATOL)


@pytest.mark.parametrize("basis", ["def2-svp", "def2-tzvp"])
def test_pyscf_grid_points(basis):
    """On a real molecular grid, including points very close to the nuclei."""
    pmol = to_pyscf_mole(WATER, basis)
    b = Basis.build(WATER, basis)
    pts = dft.gen_grid.Grids(pmol).build().coords
    ours = np.asarray(eval_ao(b, WATER.coords, pts, deriv=2))
    np.testing.assert_allclose(ours, pyscf_ao(pmol, pts, 2), rtol=0, atol=ATOL)


def test_no_recompile_for_new_geometry_and_points():
    traces = []

    @jax.jit
    def f(basis, coords, points):
        traces.append(1)  # Python side effect: runs once per trace
        return eval_ao(basis, coords, points, deriv=1)

    b = Basis.build(WATER, "def2-svp")
    pmol = to_pyscf_mole(WATER, "def2-svp")
    rng = np.random.default_rng(3)
    for k in range(3):
        coords = WATER.coords + 0.05 * rng.normal(size=WATER.coords.shape)
        pts = random_points(WATER, 50, seed=10 + k)
        out = f(b, coords, pts)
        pmol_k = pmol.set_geom_(coords, unit="Bohr", inplace=False)
        np.testing.assert_allclose(np.asarray(out), pyscf_ao(pmol_k, pts, 1), rtol=0, atol=ATOL)
    assert len(traces) == 1
    # new exponents (same layout) do not recompile either
    b2 = jax.tree_util.tree_map(lambda x: x * 1.01, b)
    f(b2, WATER.coords, pts)
    assert len(traces) == 1


def test_blocks_equal_flat():
    b = Basis.build(WATER, "def2-svp")
    pts = random_points(WATER, 250, seed=4)
    flat = eval_ao(b, WATER.coords, pts, deriv=2)
    split = split_blocks(len(pts), 64)
    blocks = split.pad(pts)
    assert blocks.shape == (4, 64, 3) and split.npoints == 250
    out = eval_ao(b, WATER.coords, blocks, deriv=2)
    assert out.shape == (4, 10, 64, b.nao)
    # padding points repeat the last point: every AO there equals its value at the last point
    last = 250 - 192 - 1
    np.testing.assert_allclose(np.asarray(out[-1, :, last + 1 :]),
                               np.broadcast_to(out[-1, :, last : last + 1], (10, 6, b.nao)),
                               rtol=0, atol=1e-14)
    per_point = split.unblock(jnp.moveaxis(out, 1, 2))  # (npts, ncomp, nao)
    np.testing.assert_allclose(np.asarray(jnp.moveaxis(per_point, 1, 0)), flat, rtol=0, atol=1e-14)


def test_vmap_over_geometries():
    b = Basis.build(WATER, "sto-3g")
    rng = np.random.default_rng(5)
    geoms = WATER.coords + 0.05 * rng.normal(size=(3,) + WATER.coords.shape)
    pts = random_points(WATER, 40, seed=6)
    batched = jax.vmap(lambda c: eval_ao(b, c, pts, deriv=1))(geoms)
    for k in range(3):
        np.testing.assert_allclose(
            batched[k], eval_ao(b, geoms[k], pts, deriv=1), rtol=0, atol=1e-14
        )


def _atom_of_ao(pmol):
    return np.array([int(lab.split()[0]) for lab in pmol.ao_labels()])


@pytest.mark.parametrize("basis", ["def2-svp", "cc-pvqz"])
def test_nuclear_derivative_is_minus_point_derivative(basis):
    """d phi_mu / d A = -(d phi_mu / d r) for the atom A carrying mu, 0 for the others; with
    deriv=1 input this also checks the AD of the first derivatives against the second ones."""
    mol = WATER
    pmol = to_pyscf_mole(mol, basis)
    b = Basis.build(mol, basis)
    pts = random_points(mol, 20, seed=7)
    jac = jax.jacfwd(lambda c: eval_ao(b, c, pts, deriv=1))(jnp.asarray(mol.coords))
    # jac: (4, npts, nao, natm, 3)
    ref2 = pyscf_ao(pmol, pts, 2)
    hess = np.empty((3, 3) + ref2.shape[1:])
    for k, (a, c) in enumerate([(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)]):
        hess[a, c] = hess[c, a] = ref2[4 + k]
    owner = _atom_of_ao(pmol)
    mask = owner[:, None] == np.arange(mol.natm)[None, :]  # (nao, natm)
    expect = np.empty(jac.shape)
    # value: d phi / dA_c = -d_c phi
    expect[0] = -np.moveaxis(ref2[1:4], 0, -1)[:, :, None, :] * mask[None, :, :, None]
    # gradient components a: d (d_a phi) / dA_c = -d_a d_c phi
    for a in range(3):
        expect[1 + a] = -np.moveaxis(hess[a], 0, -1)[:, :, None, :] * mask[None, :, :, None]
    np.testing.assert_allclose(np.asarray(jac), expect, rtol=0, atol=ATOL)


def test_point_derivative_of_second_derivatives_finite_difference():
    """AD of the deriv=2 output (third derivatives) against central differences in a point."""
    b = Basis.build(WATER, "cc-pvtz")  # f on O
    pts = jnp.asarray(random_points(WATER, 6, seed=8))
    f = jax.jit(lambda p: eval_ao(b, WATER.coords, p, deriv=2))
    v = jnp.asarray(np.random.default_rng(9).normal(size=pts.shape))
    _, jvp = jax.jvp(f, (pts,), (v,))
    # five-point stencil, h = 1e-3: truncation O(h^4), rounding ~1e-16 |f| / h
    fd = fd_directional(f, pts, v, 1e-3, stencil=4)
    np.testing.assert_allclose(np.asarray(jvp), fd, rtol=0, atol=1e-6)


@pytest.mark.parametrize("cart", [False, True], ids=["sph", "cart"])
def test_nuclear_gradient_finite_difference(cart):
    b = Basis.build(MIXED, "def2-svp", cart=cart)
    pts = jnp.asarray(random_points(MIXED, 30, seed=11))
    w = jnp.asarray(np.random.default_rng(12).normal(size=(10, 30, b.nao)))
    loss = jax.jit(lambda c: jnp.sum(w * eval_ao(b, c, pts, deriv=2)) / 30)
    c0 = jnp.asarray(MIXED.coords)
    g = jax.grad(loss)(c0)
    fd = fd_jacobian(loss, c0, 1e-5)
    np.testing.assert_allclose(np.asarray(g), fd, rtol=0, atol=1e-6)


@pytest.mark.parametrize("basis", ["def2-svp", "cc-pvqz"])
def test_exponent_derivative_finite_difference(basis):
    """Directional derivative in the exponents (normalisation included) vs central differences;
    relative steps, since exponents span 0.1 to 1e5."""
    b = Basis.build(WATER, basis)
    pts = jnp.asarray(random_points(WATER, 40, seed=13))
    w = jnp.asarray(np.random.default_rng(14).normal(size=(10, 40, b.nao)))

    @jax.jit
    def f(exps):
        bb = Basis(b.layout, exps, b.coefficients)
        return jnp.sum(w * eval_ao(bb, WATER.coords, pts, deriv=2)) / 40

    rng = np.random.default_rng(15)
    for _ in range(2):
        v = b.exponents * jnp.asarray(rng.normal(size=b.exponents.shape))
        _, jvp = jax.jvp(f, (b.exponents,), (v,))
        fd = fd_directional(f, b.exponents, v, 1e-5)
        assert abs(float(jvp) - float(fd)) < 1e-6, (float(jvp), float(fd))
    if basis == "def2-svp":  # reverse mode agrees with forward mode
        g = jax.grad(f)(b.exponents)
        np.testing.assert_allclose(float(g @ v), float(jvp), rtol=1e-12, atol=1e-12)


def test_bad_arguments():
    b = Basis.build(WATER, "sto-3g")
    with pytest.raises(ValueError, match="deriv"):
        eval_ao(b, WATER.coords, np.zeros((3, 3)), deriv=3)
    with pytest.raises(ValueError, match="points"):
        eval_ao(b, WATER.coords, np.zeros((3,)), deriv=0)


def test_hessian_in_coordinates_finite_difference():
    """jax.hessian through the AO values (second-order AD) vs central differences of jax.grad."""
    b = Basis.build(WATER, "6-31g*")
    pts = jnp.asarray(random_points(WATER, 30, seed=16))
    w = jnp.asarray(np.random.default_rng(17).normal(size=(4, 30, b.nao))) / 30

    def loss(c):
        return jnp.sum(w * eval_ao(b, c, pts, deriv=1))

    c0 = jnp.asarray(WATER.coords)
    hess = np.asarray(jax.jit(jax.hessian(loss))(c0)).reshape(9, 9)
    grad = jax.jit(jax.grad(loss))
    fd = fd_jacobian(grad, c0, 1e-5).reshape(9, 9)
    np.testing.assert_allclose(hess, fd, rtol=0, atol=1e-6)
    np.testing.assert_allclose(hess, hess.T, rtol=0, atol=1e-10)
