"""Densities on points vs PySCF's numint.eval_rho, with real SCF density matrices."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _checks import fd_directional
from pyscf import dft

from dftad import Basis, Molecule
from dftad.density import density, eval_rho, eval_rho_on_points
from dftad.grid import split_blocks
from dftad.integrals.ao import eval_ao
from dftad.interop.pyscf import to_pyscf_mole

ATOL = 1e-10

WATER = Molecule.from_string("O 0 0 0; H 0 0.757 0.587; H 0 -0.757 0.587")
OH = Molecule.from_string("O 0 0 0; H 0 0 0.97", spin=1)


@functools.cache
def scf_case(kind):
    """(molecule, PySCF mol, converged dm, PySCF grid points) for 'rks' water or 'uks' OH."""
    mol = WATER if kind == "rks" else OH
    pmol = to_pyscf_mole(mol)
    mf = (dft.RKS if kind == "rks" else dft.UKS)(pmol, xc="pbe")
    mf.grids.level = 1
    mf.conv_tol = 1e-9
    mf.kernel()
    assert mf.converged
    pts = dft.gen_grid.Grids(pmol).build().coords
    return mol, pmol, np.asarray(mf.make_rdm1()), pts


def pyscf_rho(pmol, ao, dm, xctype, with_lapl):
    """PySCF's eval_rho, per spin for unrestricted dm."""
    ao = ao[0] if xctype == "LDA" else ao
    if dm.ndim == 2:
        return dft.numint.eval_rho(pmol, ao, dm, xctype=xctype, with_lapl=with_lapl)
    return np.stack(
        [dft.numint.eval_rho(pmol, ao, d, xctype=xctype, with_lapl=with_lapl) for d in dm]
    )


def assert_rows_close(ours, ref, xctype, with_lapl):
    """1e-10 absolute on every row. The Laplacian reaches ~1e6 Bohr^-5 at grid points next to
    an oxygen nucleus, where one float64 ulp is 1.2e-10 and PySCF's own value changes by ~1e-9
    with the summation order (checked in test_laplacian_rounding_floor); there the 1e-10 bound is
    applied relative to the magnitude: |err| <= 1e-10 * max(1, |ref|)."""
    ours, ref = np.asarray(ours), np.asarray(ref)
    assert ours.shape == ref.shape
    if xctype == "MGGA" and with_lapl:
        lap = (slice(None),) * (ref.ndim - 2) + (4,)
        err = np.abs(ours[lap] - ref[lap])
        assert np.all(err <= ATOL * np.maximum(1.0, np.abs(ref[lap]))), err.max()
        keep = [r for r in range(ref.shape[-2]) if r != 4]
        ours, ref = ours[..., keep, :], ref[..., keep, :]
    np.testing.assert_allclose(ours, ref, rtol=0, atol=ATOL)


XC_CASES = [("LDA", False), ("GGA", False), ("MGGA", False), ("MGGA", True)]


@pytest.mark.parametrize("xctype,with_lapl", XC_CASES)
@pytest.mark.parametrize("kind", ["rks", "uks"])
def test_eval_rho_matches_pyscf_on_grid(kind, xctype, with_lapl):
    mol, pmol, dm, pts = scf_case(kind)
    pts = pts[::3]
    ao = eval_ao(Basis.build(mol, "def2-svp"), mol.coords, pts, deriv=2)
    ours = eval_rho(ao, dm, xctype, with_lapl)
    ref = pyscf_rho(pmol, pmol.eval_gto("GTOval_sph_deriv2", pts), dm, xctype, with_lapl)
    assert_rows_close(ours, ref, xctype, with_lapl)
    if dm.ndim == 2 and xctype != "LDA":  # integrates to the electron count
        w = dft.gen_grid.Grids(pmol).build().weights[::3]
        assert abs(float(w @ ours[0]) * 3 - pmol.nelectron) < 0.5


def test_laplacian_rounding_floor():
    """Why the Laplacian gets a relative bound: PySCF's own Laplacian, summed in two orders,
    differs by more than 1e-10 where |lapl| ~ 1e6, while staying within 1e-10 relative."""
    _, pmol, dm, pts = scf_case("rks")
    ao = pmol.eval_gto("GTOval_sph_deriv2", pts)
    ref = dft.numint.eval_rho(pmol, ao, dm, xctype="MGGA", with_lapl=True)[4]
    # same quantity, AOs permuted (a different but equally valid summation order)
    p = np.random.default_rng(0).permutation(pmol.nao)
    alt = dft.numint.eval_rho(pmol, ao[:, :, p], dm[np.ix_(p, p)], xctype="MGGA", with_lapl=True)[4]
    err = np.abs(alt - ref)
    assert np.abs(ref).max() > 1e5
    assert np.all(err <= ATOL * np.maximum(1.0, np.abs(ref)))


@pytest.mark.parametrize("kind", ["rks", "uks"])
def test_random_points_and_named_fields(kind):
    mol, pmol, dm, _ = scf_case(kind)
    rng = np.random.default_rng(1)
    pts = mol.coords[rng.integers(0, mol.natm, 400)] + rng.normal(size=(400, 3))
    ao = eval_ao(Basis.build(mol, "def2-svp"), mol.coords, pts, deriv=2)
    ref = pyscf_rho(pmol, pmol.eval_gto("GTOval_sph_deriv2", pts), dm, "MGGA", True)
    d = density(ao, dm, "MGGA", with_lapl=True)
    assert_rows_close(eval_rho(ao, dm, "MGGA", True), ref, "MGGA", True)
    np.testing.assert_allclose(eval_rho(ao[0], dm, "LDA"), ref[..., 0, :], rtol=0, atol=ATOL)
    np.testing.assert_allclose(d.rho, ref[..., 0, :], rtol=0, atol=ATOL)
    np.testing.assert_allclose(d.grad, ref[..., 1:4, :], rtol=0, atol=ATOL)
    np.testing.assert_allclose(d.tau, ref[..., 5, :], rtol=0, atol=ATOL)
    g = ref[..., 1:4, :]
    if dm.ndim == 2:
        sigma = np.sum(g * g, axis=0)
    else:
        sigma = np.stack([np.sum(g[0] * g[0], 0), np.sum(g[0] * g[1], 0), np.sum(g[1] * g[1], 0)])
    np.testing.assert_allclose(d.sigma, sigma, rtol=0, atol=ATOL)


def test_nonsymmetric_dm_matches_pyscf_hermi0():
    mol, pmol, dm, pts = scf_case("rks")
    pts = pts[::11]
    dm = dm + 0.01 * np.random.default_rng(2).normal(size=dm.shape)  # not symmetric
    ao = eval_ao(Basis.build(mol, "def2-svp"), mol.coords, pts, deriv=2)
    ref = dft.numint.eval_rho(
        pmol, pmol.eval_gto("GTOval_sph_deriv2", pts), dm, xctype="MGGA", hermi=0, with_lapl=True
    )
    assert_rows_close(eval_rho(ao, dm, "MGGA", True), ref, "MGGA", True)


def test_blocked_evaluation_and_jit():
    """eval_rho_on_points (lax.map over blocks) equals PySCF; compiled once for new geometry."""
    mol, pmol, dm, pts = scf_case("uks")
    pts = pts[::5]
    b = Basis.build(mol, "def2-svp")
    split = split_blocks(len(pts), 512)
    blocks = split.pad(pts)
    traces = []

    @jax.jit
    def f(coords, points, dm):
        traces.append(1)
        return eval_rho_on_points(b, coords, points, dm, "MGGA", with_lapl=True)

    out = f(mol.coords, blocks, dm)  # (2, 6, nblock, 512)
    assert out.shape == (2, 6) + blocks.shape[:2]
    ours = split.unblock(jnp.moveaxis(out, (2, 3), (0, 1)))  # (npts, 2, 6)
    ref = pyscf_rho(pmol, pmol.eval_gto("GTOval_sph_deriv2", pts), dm, "MGGA", True)
    assert_rows_close(jnp.moveaxis(ours, 0, -1), ref, "MGGA", True)
    f(mol.coords + 0.01, blocks + 0.01, dm)
    assert len(traces) == 1


def test_derivatives_finite_difference():
    """d/d(coords) and d/d(dm) of an integrated MGGA quantity vs central differences."""
    mol, _, dm, _ = scf_case("rks")
    rng = np.random.default_rng(3)
    pts = jnp.asarray(mol.coords[rng.integers(0, mol.natm, 200)] + rng.normal(size=(200, 3)))
    b = Basis.build(mol, "def2-svp")
    w = jnp.asarray(rng.uniform(size=(6, 200))) / 200

    @jax.jit
    def loss(coords, dm):
        r = eval_rho(eval_ao(b, coords, pts, deriv=2), dm, "MGGA", True)
        return jnp.sum(w * r)

    c0, d0 = jnp.asarray(mol.coords), jnp.asarray(dm)
    gc, gd = jax.grad(loss, argnums=(0, 1))(c0, d0)
    rng = np.random.default_rng(4)
    vc, vd = rng.normal(size=c0.shape), rng.normal(size=d0.shape)
    fdc = fd_directional(lambda c: loss(c, d0), c0, vc, 1e-5)
    fdd = fd_directional(lambda d: loss(c0, d), d0, vd, 1e-5)
    assert abs(float(jnp.sum(gc * vc)) - float(fdc)) < 1e-6
    assert abs(float(jnp.sum(gd * vd)) - float(fdd)) < 1e-6


def test_bad_arguments():
    ao = jnp.zeros((4, 5, 3))
    with pytest.raises(ValueError, match="AO components"):
        eval_rho(ao, jnp.eye(3), "MGGA", with_lapl=True)
    with pytest.raises(ValueError, match="xctype"):
        eval_rho(ao, jnp.eye(3), "HYB")
    with pytest.raises(ValueError, match="dm"):
        eval_rho(ao, jnp.zeros((3, 3, 3)), "GGA")


def test_vmap_over_density_matrices():
    mol, _, dm, pts = scf_case("uks")
    ao = eval_ao(Basis.build(mol, "def2-svp"), mol.coords, pts[::13], deriv=1)
    dms = jnp.stack([dm, dm[::-1], 0.5 * dm])
    batched = jax.vmap(lambda d: eval_rho(ao, d, "MGGA", with_lapl=False))(dms)
    for k in range(3):
        np.testing.assert_allclose(
            batched[k], eval_rho(ao, dms[k], "MGGA", with_lapl=False), rtol=1e-14, atol=1e-14
        )  # same quantity, batched matmuls may round differently (values up to ~1e3)
