"""XC energy and potential matrix (dftad.numint) vs PySCF, and their derivatives.

Reference: PySCF's ``NumInt().nr_rks`` / ``nr_uks`` on a ``Grids`` object whose points and
weights are set to dftad's (``non0tab = None``: no screening), so both codes integrate on
identical points; densities are converged PySCF RKS (water) and UKS (OH radical) density
matrices. For range-separated hybrids ``nr_rks`` integrates the semilocal part only, which is
what ``exc_vxc`` computes. Derivatives: ``jax.grad`` of E_xc at fixed ``dm`` with respect to the
nuclear coordinates (through grid points, Becke weights and AO values) vs central finite
differences and vs PySCF's analytic grid-response gradient (``grad.rks.get_vxc_full_response``);
``jax.grad`` with respect to the functional parameters vs central finite differences; V_xc vs
finite differences of E_xc in ``dm``.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _checks import fd_directional, fd_jacobian
from jax.flatten_util import ravel_pytree
from pyscf import dft, gto
from pyscf.grad import rks as rks_grad
from pyscf.grad import uks as uks_grad

import dftad
from dftad.basis import Basis
from dftad.density import density
from dftad.grid import Grid
from dftad.interop.pyscf import to_pyscf_mole
from dftad.numint import ao_blocks, exc_gradient, exc_only, exc_vxc
from dftad.xc import parse_xc

ATOL = 1e-10  # E_xc (Ha) and V_xc elements vs PySCF on identical points
FD_ATOL = 1e-6  # AD vs central finite differences
BLOCK = 4096

QUICK_XC = ["lda,vwn", "pbe", "b3lyp", "scan", "tpss", "r2scan", "camb3lyp", "wb97x"]
SLOW_XC = ["lda", "svwn", "blyp", "pbe0", "pw91", "b3lyp5", "b97", "b97-1", "b97-2", "lc_wpbe",
           ".2*HF + .08*LDA + .72*B88, .81*LYP + .19*VWN"]
# (shipped molecule, kind) for the slow molecule sweep
SLOW_MOLECULES = [("methyl_radical", "uks"), ("nitric_oxide", "uks"), ("oxygen", "uks"),
                  ("hydrogen_sulfide", "rks"), ("ammonia", "rks"), ("benzene", "rks")]


class Case(NamedTuple):
    mol: dftad.Molecule
    pmol: gto.Mole
    basis: Basis
    grid: Grid
    points: np.ndarray
    weights: np.ndarray
    dm: np.ndarray  # (nao, nao) RKS total density or (2, nao, nao) UKS


def pyscf_grids(pmol, points, weights):
    """A PySCF Grids object holding exactly the given points and weights, unscreened."""
    g = dft.gen_grid.Grids(pmol)
    g.coords = np.asarray(points)
    g.weights = np.asarray(weights)
    g.non0tab = None
    return g


@functools.cache
def scf_case(name: str, kind: str, level: int = 3, spin=None) -> Case:
    """Converged PySCF B3LYP density of ``name`` (def2-SVP) and dftad's level-``level`` grid."""
    mol = dftad.load(name, spin=spin)
    pmol = to_pyscf_mole(mol)
    mf = (dft.RKS if kind == "rks" else dft.UKS)(pmol, xc="b3lyp")
    mf.grids.level = 1
    mf.conv_tol = 1e-10
    mf.kernel()
    assert mf.converged
    grid = Grid.build(mol, level=level)
    points, weights = grid.points(mol.coords)
    return Case(mol, pmol, Basis.build(mol, "def2-svp"), grid, np.asarray(points),
                np.asarray(weights), np.asarray(mf.make_rdm1()))


_jit_ao_blocks = jax.jit(ao_blocks, static_argnames=("family", "block_size"))


_GRID_AO = {}


def grid_ao(case: Case, family: str, block_size: int = BLOCK):
    """AO values on the blocked grid of ``case`` (once per case, family and block size; cases
    live for the whole session in ``scf_case``'s cache, so ``id`` is a stable key)."""
    key = (id(case), family, block_size)
    if key not in _GRID_AO:
        _GRID_AO[key] = _jit_ao_blocks(case.basis, case.mol.coords, case.points, case.weights,
                                       family=family, block_size=block_size)
    return _GRID_AO[key]


def pyscf_exc_vxc(pmol, points, weights, xc, dm):
    ni = dft.numint.NumInt()
    g = pyscf_grids(pmol, points, weights)
    if dm.ndim == 2:
        _, exc, vxc = ni.nr_rks(pmol, g, xc, dm)
    else:
        _, exc, vxc = ni.nr_uks(pmol, g, xc, dm)
    return exc, np.asarray(vxc)


_jit_exc_vxc = jax.jit(exc_vxc)


def dftad_exc_vxc(case, f, dm=None, block_size=BLOCK, params=None):
    ga = grid_ao(case, f.family, block_size)
    dm = case.dm if dm is None else dm
    e, v = _jit_exc_vxc(f, f.params if params is None else params, ga, jnp.asarray(dm))
    return float(e), np.asarray(v)


def check_against_pyscf(case, xc):
    f = parse_xc(xc)
    e, v = dftad_exc_vxc(case, f)
    e_ref, v_ref = pyscf_exc_vxc(case.pmol, case.points, case.weights, xc, case.dm)
    assert v.shape == case.dm.shape
    assert abs(e - e_ref) < ATOL, (xc, e, e_ref)
    assert np.abs(v - v_ref).max() < ATOL, (xc, np.abs(v - v_ref).max())
    # V_xc is symmetric (each spin block)
    assert np.abs(v - np.swapaxes(v, -1, -2)).max() < 1e-14
    return e, v


# --------------------------------------------------------------------- values vs PySCF


@pytest.mark.parametrize("xc", QUICK_XC)
def test_rks_water_vs_pyscf(xc):
    check_against_pyscf(scf_case("water", "rks"), xc)


@pytest.mark.parametrize("xc", QUICK_XC)
def test_uks_oh_vs_pyscf(xc):
    check_against_pyscf(scf_case("hydroxyl_radical", "uks"), xc)


@pytest.mark.slow
@pytest.mark.parametrize("xc", SLOW_XC)
@pytest.mark.parametrize("name,kind", [("water", "rks"), ("hydroxyl_radical", "uks")])
def test_more_functionals_vs_pyscf(name, kind, xc):
    check_against_pyscf(scf_case(name, kind), xc)


@pytest.mark.slow
@pytest.mark.parametrize("xc", ["pbe", "b3lyp", "scan", "r2scan", "wb97x"])
@pytest.mark.parametrize("name,kind", SLOW_MOLECULES)
def test_more_molecules_vs_pyscf(name, kind, xc):
    check_against_pyscf(scf_case(name, kind), xc)


def hydrogen_atom():
    case = scf_case("H 0 0 0", "uks", spin=1)
    assert np.all(case.dm[1] == 0)  # one electron: the beta density is exactly zero
    return case


@pytest.mark.parametrize("xc", ["lda,vwn", "b3lyp", "scan"])
def test_fully_polarised_hydrogen_atom(xc):
    """n_beta = 0 everywhere: E_xc and V_alpha vs nr_uks."""
    case = hydrogen_atom()
    f = parse_xc(xc)
    e, v = dftad_exc_vxc(case, f)
    e_ref, v_ref = pyscf_exc_vxc(case.pmol, case.points, case.weights, xc, case.dm)
    assert abs(e - e_ref) < ATOL
    assert np.abs(v[0] - v_ref[0]).max() < ATOL


def _libxc_potential(pmol, xc, ao, weights, rho):
    """(V_alpha, V_beta) assembled from libxc's pointwise derivatives (``eval_xc_eff``) on
    spin densities ``rho`` (2, 5, npts) = (n, grad n, tau) per spin and AO values ``ao``
    (4, npts, nao): sum_g w [v_n phi phi + v_grad n . grad(phi phi) + v_tau grad phi . grad phi
    / 2]."""
    ni = dft.numint.NumInt()
    xctype = ni._xc_type(xc)
    r = rho if xctype == "MGGA" else (rho[:, :4] if xctype == "GGA" else rho[:, 0])
    vxc = ni.eval_xc_eff(xc, r, deriv=1, xctype=xctype)[1]
    out = []
    for v in vxc:
        v = (v if v.ndim == 2 else v[None]) * weights
        mat = np.einsum("g,gi,gj->ij", v[0], ao[0], ao[0])
        if xctype in ("GGA", "MGGA"):
            half = np.einsum("xg,xgi,gj->ij", v[1:4], ao[1:4], ao[0])
            mat += half + half.T
        if xctype == "MGGA":
            mat += 0.5 * np.einsum("g,xgi,xgj->ij", v[4], ao[1:4], ao[1:4])
        out.append(mat)
    return np.stack(out)


@pytest.mark.parametrize("xc", ["lda,vwn", "b3lyp", "scan"])
def test_fully_polarised_hydrogen_atom_beta_potential(xc):
    """V_beta (beta density exactly zero) vs libxc's derivatives on the same density.

    libxc's potentials of an empty channel are evaluated at n_b raised to its threshold (1e-15)
    and depend on how 1 - zeta = 2e-15 / n_a rounds: one ulp of n_a moves VWN's vrho_b by
    ~1e-8 and SCAN's vtau_b by ~1e-2 relative. dftad's and PySCF's densities differ in their
    last bits, so V_beta is compared with libxc's potential on dftad's own density (to 1e-12),
    and the assembly of that potential is checked against ``nr_uks`` on PySCF's density."""
    case = hydrogen_atom()
    f = parse_xc(xc)
    _, v = dftad_exc_vxc(case, f)
    # the assembly: equal to nr_uks on PySCF's own density
    ni = dft.numint.NumInt()
    ao = ni.eval_ao(case.pmol, case.points, deriv=1)
    rho_a = ni.eval_rho(case.pmol, ao, case.dm[0], xctype="MGGA", with_lapl=False)
    rho = np.stack([rho_a, np.zeros_like(rho_a)])
    _, v_ref = pyscf_exc_vxc(case.pmol, case.points, case.weights, xc, case.dm)
    assert np.abs(_libxc_potential(case.pmol, xc, ao, case.weights, rho) - v_ref).max() < 1e-13
    # dftad's density on the same points, and libxc's potential on it
    ga = grid_ao(case, "mgga")
    nblk, ncomp, blk, nao = ga.ao.shape
    ao_d = np.asarray(ga.ao).transpose(1, 0, 2, 3).reshape(ncomp, nblk * blk, nao)
    w_d = np.asarray(ga.weights).reshape(-1)
    d = density(jnp.asarray(ao_d), jnp.asarray(case.dm), "MGGA")
    rho_d = np.zeros((2, 5, w_d.size))
    rho_d[0, 0], rho_d[0, 1:4], rho_d[0, 4] = d.rho[0], d.grad[0], d.tau[0]
    v_lib = _libxc_potential(case.pmol, xc, ao_d, w_d, rho_d)
    assert np.abs(v[0] - v_lib[0]).max() < ATOL
    assert np.abs(v[1] - v_lib[1]).max() < 1e-12, np.abs(v[1] - v_lib[1]).max()


@pytest.mark.parametrize("xc", ["scan"])
def test_closed_shell_as_unrestricted(xc):
    """(D/2, D/2) unrestricted gives the restricted E_xc, and V_alpha = V_beta = V."""
    case = scf_case("water", "rks")
    f = parse_xc(xc)
    e_r, v_r = dftad_exc_vxc(case, f)
    e_u, v_u = dftad_exc_vxc(case, f, dm=np.stack([case.dm / 2, case.dm / 2]))
    assert v_u.shape == (2,) + case.dm.shape
    assert abs(e_u - e_r) < ATOL
    assert np.abs(v_u[0] - v_r).max() < ATOL
    assert np.abs(v_u[1] - v_r).max() < ATOL


def test_block_size_and_padding():
    """Results do not depend on the block size (last block padded with zero weights)."""
    case = scf_case("hydroxyl_radical", "uks")
    f = parse_xc("lda,vwn")
    ngrid = case.points.shape[0]
    e0, v0 = dftad_exc_vxc(case, f, block_size=ngrid)  # one block, no padding
    for bs in (BLOCK, 1000):
        assert ngrid % bs != 0
        e, v = dftad_exc_vxc(case, f, block_size=bs)
        assert abs(e - e0) < 1e-12
        assert np.abs(v - v0).max() < 1e-12


def test_vmap_over_density_matrices():
    case = scf_case("water", "rks", level=1)
    f = parse_xc("lda,vwn")
    ga = grid_ao(case, f.family)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(case.dm.shape) * 1e-2
    dms = jnp.asarray(np.stack([case.dm, case.dm + x + x.T]))
    es, vs = jax.jit(jax.vmap(exc_vxc, in_axes=(None, None, None, 0)))(f, f.params, ga, dms)
    for k in range(2):
        e, v = exc_vxc(f, f.params, ga, dms[k])
        assert abs(float(es[k]) - float(e)) < 1e-12
        assert np.abs(np.asarray(vs[k]) - np.asarray(v)).max() < 1e-12


# --------------------------------------------------------------------- V_xc = dE_xc/dD


@pytest.mark.parametrize("xc,name,kind", [("b3lyp", "water", "rks"),
                                          ("scan", "hydroxyl_radical", "uks")])
def test_vxc_is_derivative_of_exc(xc, name, kind):
    """sum(V * X) equals the central difference of E_xc along a symmetric direction X (and
    exc_only equals exc_vxc's energy)."""
    case = scf_case(name, kind)
    f = parse_xc(xc)
    ga = grid_ao(case, f.family)
    e, v = _jit_exc_vxc(f, f.params, ga, jnp.asarray(case.dm))
    rng = np.random.default_rng(1)
    x = rng.standard_normal(case.dm.shape)
    x = 0.5 * (x + np.swapaxes(x, -1, -2))
    energy = jax.jit(exc_only)
    assert abs(float(energy(f, f.params, ga, jnp.asarray(case.dm))) - float(e)) < 1e-12
    # Fourth-order central difference: a random unit-scale X drives the density of the far
    # tails through zero, where SCAN's third derivative along X is large; the second-order
    # difference with h = 1e-5 is off by ~1e-6 there (it converges as h^2 to the AD value).
    fd = fd_directional(lambda d: energy(f, f.params, ga, d), case.dm, x, 3e-6, stencil=4)
    assert abs(float(np.sum(np.asarray(v) * x)) - fd) < FD_ATOL


# --------------------------------------------------------------------- nuclear coordinates


def coordinate_energy(case, f, block_size=2048):
    """E_xc(coords) at fixed dm, through grid points, Becke weights and AO values."""
    dm = jnp.asarray(case.dm)

    def energy(coords):
        points, weights = case.grid.points(coords)
        ga = ao_blocks(case.basis, coords, points, weights, f.family, block_size)
        return exc_only(f, f.params, ga, dm)

    return energy


def pyscf_grid_response_gradient(case, xc):
    """dE_xc/dR at fixed dm from PySCF's analytic gradient with grid response (its own grid of
    the same level, which is dftad's grid point for point)."""
    pg = dft.gen_grid.Grids(case.pmol)
    pg.level = case.grid.level
    pg.build()
    ni = dft.numint.NumInt()
    de = np.zeros((case.pmol.natm, 3))
    if case.dm.ndim == 2:
        exc, vmat = rks_grad.get_vxc_full_response(ni, case.pmol, pg, xc, case.dm)
        for a, (_, _, p0, p1) in enumerate(case.pmol.aoslice_by_atom()):
            de[a] = 2 * np.einsum("xij,ij->x", vmat[:, p0:p1], case.dm[p0:p1])
    else:
        exc, vmat = uks_grad.get_vxc_full_response(ni, case.pmol, pg, xc, case.dm)
        for a, (_, _, p0, p1) in enumerate(case.pmol.aoslice_by_atom()):
            de[a] = 2 * np.einsum("sxij,sij->x", vmat[:, :, p0:p1], case.dm[:, p0:p1])
    return de + exc


def check_coordinate_gradient(xc, name, kind):
    case = scf_case(name, kind, level=1)
    f = parse_xc(xc)
    energy = coordinate_energy(case, f)
    g = np.asarray(jax.jit(jax.grad(energy))(jnp.asarray(case.mol.coords)))
    fd = fd_jacobian(jax.jit(energy), case.mol.coords, 1e-4)
    assert np.abs(g - fd).max() < FD_ATOL, np.abs(g - fd).max()
    # translation invariance: the grid moves with the atoms, so the forces sum to zero
    assert np.abs(g.sum(axis=0)).max() < 1e-10
    ref = pyscf_grid_response_gradient(case, xc)
    assert np.abs(g - ref).max() < ATOL, np.abs(g - ref).max()


@pytest.mark.parametrize("xc,name,kind", [("pbe", "water", "rks"),
                                          ("scan", "hydroxyl_radical", "uks")])
def test_coordinate_gradient(xc, name, kind):
    check_coordinate_gradient(xc, name, kind)


@pytest.mark.slow
@pytest.mark.parametrize("xc", ["lda,vwn", "b3lyp", "scan", "tpss", "r2scan", "camb3lyp",
                                "wb97x"])
@pytest.mark.parametrize("name,kind", [("water", "rks"), ("hydroxyl_radical", "uks")])
def test_coordinate_gradient_more(xc, name, kind):
    check_coordinate_gradient(xc, name, kind)


@pytest.mark.parametrize("xc,name,kind", [("lda,vwn", "water", "rks"), ("pbe", "water", "rks"),
                                          ("scan", "hydroxyl_radical", "uks")])
def test_written_coordinate_gradient(xc, name, kind):
    """numint.exc_gradient (the AOs' reverse pass written out with AOs one derivative order up,
    the grid's by JAX) equals jax.grad of E_xc to 1e-12 and PySCF's grid-response gradient to
    ATOL; the padded last block (2048 points per block) adds nothing."""
    case = scf_case(name, kind, level=1)
    f = parse_xc(xc)
    dm = jnp.asarray(case.dm)

    @jax.jit
    def written(coords):
        (points, weights), pullback = jax.vjp(case.grid.points, coords)
        g, p_bar, w_bar = exc_gradient(f, f.params, case.basis, coords, points, weights, dm,
                                       2048)
        return g + pullback((p_bar, w_bar))[0]

    coords = jnp.asarray(case.mol.coords)
    assert case.grid.points(coords)[0].shape[0] % 2048 != 0
    g = np.asarray(written(coords))
    g_ref = np.asarray(jax.jit(jax.grad(coordinate_energy(case, f)))(coords))
    assert np.abs(g_ref).max() > 1e-2
    assert np.abs(g - g_ref).max() < 1e-12 * np.abs(g_ref).max()
    assert np.abs(g - pyscf_grid_response_gradient(case, xc)).max() < ATOL


# --------------------------------------------------------------------- functional parameters


def check_param_gradient(xc, name, kind):
    case = scf_case(name, kind, level=1)
    f = parse_xc(xc)
    ga = grid_ao(case, f.family)
    dm = jnp.asarray(case.dm)
    flat, unravel = ravel_pytree(f.params)

    @jax.jit
    def energy(x):
        return exc_only(f, unravel(x), ga, dm)

    g = np.asarray(jax.grad(energy)(flat))
    x0 = np.asarray(flat)
    fd = np.zeros_like(x0)
    for i in range(x0.size):
        # step relative to the parameter (B88's beta = 0.0042 needs a small one), shrunk while
        # the functional is undefined at x0 +- h: VWN-RPA's paramagnetic 4c - b^2 = 0.002, so
        # b = 13.07 and c = 42.72 tolerate only ~1e-5 relative changes
        h = 1e-5 * (abs(x0[i]) or 1.0)
        while True:
            xp, xm = x0.copy(), x0.copy()
            xp[i] += h
            xm[i] -= h
            ep, em = float(energy(xp)), float(energy(xm))
            if np.isfinite(ep) and np.isfinite(em):
                break
            h *= 0.1
        fd[i] = (ep - em) / (2 * h)
    assert np.abs(g - fd).max() < FD_ATOL, (np.abs(g - fd).max(), np.argmax(np.abs(g - fd)))
    # dE/dw_i is the integral of component i alone (E_xc is linear in the weights)
    gw = unravel(jnp.asarray(g))["weights"]
    for i, c in enumerate(f.components):
        onehot = tuple(jnp.asarray(float(k == i)) for k in range(len(f.components)))
        ei = float(energy(ravel_pytree(dict(f.params, weights=onehot))[0]))
        assert abs(float(gw[i]) - ei) < 1e-10, (c, float(gw[i]), ei)
    return g


@pytest.mark.parametrize("xc,name,kind", [("camb3lyp", "water", "rks"),
                                          ("scan", "hydroxyl_radical", "uks")])
def test_param_gradient(xc, name, kind):
    g = check_param_gradient(xc, name, kind)
    assert np.any(g != 0)


@pytest.mark.slow
@pytest.mark.parametrize("xc", ["lda,vwn", "pbe", "b3lyp", "tpss", "r2scan", "camb3lyp",
                                "wb97x", "b97-1", "lc_wpbe"])
@pytest.mark.parametrize("name,kind", [("water", "rks"), ("hydroxyl_radical", "uks")])
def test_param_gradient_more(xc, name, kind):
    check_param_gradient(xc, name, kind)


# --------------------------------------------------------------------- jit: one compilation


def test_jit_new_geometry_does_not_recompile():
    """One compiled function serves every geometry, parameter value and density matrix, and
    its result at the new geometry matches PySCF there."""
    case = scf_case("water", "rks", level=1)
    f = parse_xc("b3lyp")
    ntrace = 0

    @jax.jit
    def build(coords, params, dm):
        nonlocal ntrace
        ntrace += 1
        points, weights = case.grid.points(coords)
        ga = ao_blocks(case.basis, coords, points, weights, f.family, BLOCK)
        return exc_vxc(f, params, ga, dm), points, weights

    (e0, _), _, _ = build(jnp.asarray(case.mol.coords), f.params, jnp.asarray(case.dm))
    rng = np.random.default_rng(2)
    coords1 = np.asarray(case.mol.coords) + 0.05 * rng.standard_normal(case.mol.coords.shape)
    (e1, v1), points1, weights1 = build(jnp.asarray(coords1), f.params, jnp.asarray(case.dm))
    params2 = jax.tree_util.tree_map(lambda p: 1.01 * p, f.params)
    (e2, _), _, _ = build(jnp.asarray(coords1), params2, jnp.asarray(0.9 * case.dm))
    assert ntrace == 1
    assert build._cache_size() == 1
    assert float(e0) != float(e1) != float(e2)

    pmol1 = to_pyscf_mole(case.mol.with_coords(coords1))
    e_ref, v_ref = pyscf_exc_vxc(pmol1, points1, weights1, "b3lyp", case.dm)
    assert abs(float(e1) - e_ref) < ATOL
    assert np.abs(np.asarray(v1) - v_ref).max() < ATOL
