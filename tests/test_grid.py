"""Molecular grids against PySCF's default ``dft.Grids`` (levels 0-9), and their derivatives.

PySCF's grid is the reference for every number: its tables, its atom-centred grids
(``gen_atomic_grids``), its partitioned molecular grid and its integral of an SCF density. Our
points come in another order (shell by shell, SciPy's Lebedev order), so points are matched one to
one by nearest neighbour (a KD-tree), which must be a bijection at distance < 1e-12 Bohr.
"""

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _checks import fd_jacobian
from pyscf import dft, gto
from pyscf.data import radii as pyscf_radii
from pyscf.data.elements import charge as pyscf_charge
from pyscf.dft import gen_grid, radi
from pyscf.dft.LebedevGrid import LEBEDEV_ORDER, MakeAngularGrid
from scipy.spatial import cKDTree

import dftad.grid as dg
from dftad.grid import Grid, block_grid, build_grid, split_blocks
from dftad.interop.pyscf import to_pyscf_mole
from dftad.molecule import Molecule

WATER = "O 0 0 0; H 0 0.757 0.587; H 0 -0.757 0.587"
BENZENE = (
    "C 0.000 1.396 0; C 1.209 0.698 0; C 1.209 -0.698 0; C 0 -1.396 0; C -1.209 -0.698 0;"
    "C -1.209 0.698 0; H 0 2.479 0; H 2.147 1.240 0; H 2.147 -1.240 0; H 0 -2.479 0;"
    "H -2.147 -1.240 0; H -2.147 1.240 0"
)
CH3CL = "Cl 0 0 0; C 0 0 1.78; H 1.03 0 2.14; H -0.51 0.89 2.14; H -0.51 -0.89 2.14"
H2S = "S 0 0 0.1; H 0 0.96 -0.82; H 0.05 -0.97 -0.80"

ELEMENTS = "H He Li C N O F Ne Na Si P S Cl Ar K Fe Br Kr I".split()

TOL = 1e-12


def pyscf_grids(m: Molecule, level: int, **build):
    grids = dft.gen_grid.Grids(to_pyscf_mole(m, "sto-3g"))
    grids.level = level
    return grids.build(**build)


def match(ours, theirs, tol=TOL):
    """Index into ``ours`` of the nearest point to each of ``theirs``; asserts a bijection."""
    dist, idx = cKDTree(ours).query(theirs)
    assert len(ours) == len(theirs)
    assert len(np.unique(idx)) == len(idx), "matching is not one to one"
    assert dist.max() < tol, f"points differ by {dist.max():.2e} Bohr"
    return idx


# ---------------------------------------------------------------------- scheme and tables
def test_pyscf_defaults_are_the_scheme_we_reproduce():
    g = dft.gen_grid.Grids
    assert g.radi_method in (radi.treutler, radi.treutler_ahlrichs)
    assert g.becke_scheme is gen_grid.original_becke
    assert g.radii_adjust is radi.treutler_atomic_radii_adjust
    assert g.atomic_radii is radi.BRAGG_RADII
    assert g.prune is gen_grid.nwchem_prune
    assert g.level == 3
    assert radi.ATOM_SPECIFIC_TREUTLER_GRIDS


def test_tables_match_pyscf():
    z = np.arange(1, dg.Z_MAX + 1)
    np.testing.assert_array_equal([dg.bragg_radius(i) for i in z], pyscf_radii.BRAGG[z])
    np.testing.assert_array_equal(dg._TREUTLER_XI, radi._treutler_ahlrichs_xi[: dg.Z_MAX + 1])
    np.testing.assert_array_equal(dg._RAD_GRIDS, gen_grid.RAD_GRIDS)
    np.testing.assert_array_equal(dg._ANG_ORDER, gen_grid.ANG_ORDER)
    table = {k: v for k, v in LEBEDEV_ORDER.items() if v > 1}
    assert dict(zip(dg.LEBEDEV_ORDERS, dg.LEBEDEV_NPOINTS)) == table
    for level in range(10):
        for i in z:
            n_rad, n_ang = dg.default_counts(int(i), level)
            assert n_rad == gen_grid._default_rad(i, level)
            assert n_ang == gen_grid._default_ang(i, level)


@pytest.mark.parametrize("npoint", dg.LEBEDEV_NPOINTS)
def test_lebedev_matches_pyscf(npoint):
    ref = MakeAngularGrid(npoint)
    u, w = dg.lebedev(npoint)
    idx = match(u, ref[:, :3], 1e-15)
    np.testing.assert_allclose(w[idx], 4 * np.pi * ref[:, 3], rtol=0, atol=1e-15)


@pytest.mark.parametrize("z", [1, 2, 3, 6, 8, 11, 14, 17, 26, 35, 53, 79])
def test_radial_grid_matches_pyscf(z):
    for n in (10, 50, 75, 200):
        r, dr = dg.treutler_ahlrichs(n, z)
        r_ref, dr_ref = radi.treutler(n, z)
        np.testing.assert_allclose(r, r_ref, rtol=1e-14, atol=0)
        np.testing.assert_allclose(dr, dr_ref, rtol=1e-13, atol=0)


@pytest.mark.parametrize("level", range(10))
def test_atomic_grids_match_pyscf(level):
    """Per-element point counts, atom-centred offsets and quadrature weights at every level."""
    atom = "; ".join(f"{s} 0 0 {3 * i}" for i, s in enumerate(ELEMENTS))
    nelec = sum(pyscf_charge(s) for s in ELEMENTS)
    mol = gto.M(atom=atom, spin=nelec % 2, basis="sto-3g", verbose=0)
    tab = gen_grid.gen_atomic_grids(
        mol, level=level, radi_method=radi.treutler, prune=gen_grid.nwchem_prune
    )
    for symbol in ELEMENTS:
        ref_offsets, ref_vol = tab[symbol]
        offsets, vol = dg.atomic_grid(pyscf_charge(symbol), level)
        assert len(vol) == len(ref_vol), symbol
        idx = match(offsets, ref_offsets)
        scale = np.maximum(1.0, np.abs(ref_vol))
        assert np.max(np.abs(vol[idx] - ref_vol) / scale) < TOL, symbol


# ---------------------------------------------------------------------- molecular grids
def check_molecular_grid(geometry, level):
    m = Molecule.from_string(geometry)
    grid = Grid.build(m, level)
    ref = pyscf_grids(m, level, sort_grids=False)
    n = grid.ngrid
    # PySCF keeps every point and pads to a multiple of 8 with zero weights.
    assert len(ref.weights) == n + gen_grid._padding_size(n, gen_grid.ALIGNMENT_UNIT)
    assert np.all(ref.weights[n:] == 0)
    coords, weights = map(np.asarray, grid.points(m.coords))
    assert coords.shape == (n, 3) and weights.shape == (n,)
    idx = match(coords, ref.coords[:n])
    np.testing.assert_array_equal(grid.atom_index[idx], ref.atm_idx[:n])
    np.testing.assert_allclose(weights[idx], ref.weights[:n], rtol=0, atol=TOL)
    np.testing.assert_allclose(
        grid.quadrature_weights[idx], ref.quadrature_weights[:n], rtol=0, atol=TOL
    )
    return grid, coords, weights


@pytest.mark.parametrize(
    "geometry, level",
    [(WATER, 3), (WATER, 0), (WATER, 5), (BENZENE, 3), (CH3CL, 3), (H2S, 2)],
    ids=["water-3", "water-0", "water-5", "benzene-3", "ch3cl-3", "h2s-2"],
)
def test_molecular_grid_matches_pyscf(geometry, level):
    check_molecular_grid(geometry, level)


@pytest.mark.slow
@pytest.mark.parametrize("level", range(10))
@pytest.mark.parametrize("geometry", [WATER, BENZENE, CH3CL], ids=["water", "benzene", "ch3cl"])
def test_molecular_grid_matches_pyscf_all_levels(geometry, level):
    check_molecular_grid(geometry, level)


def test_default_sorted_pyscf_grid_is_the_same_set_of_points():
    """PySCF's default build sorts points into boxes; the point set is unchanged."""
    m = Molecule.from_string(WATER)
    ref = pyscf_grids(m, 3)
    coords, weights = map(np.asarray, build_grid(m, 3).points(m.coords))
    real = ref.atm_idx >= 0
    idx = match(coords, ref.coords[real])
    np.testing.assert_allclose(weights[idx], ref.weights[real], rtol=0, atol=TOL)


@pytest.mark.parametrize("geometry", [WATER, BENZENE], ids=["water", "benzene"])
def test_integrates_scf_density_like_pyscf(geometry):
    m = Molecule.from_string(geometry)
    mol = to_pyscf_mole(m, "def2-svp")
    mf = mol.RHF().density_fit()
    mf.conv_tol = 1e-9
    mf.kernel()
    dm = mf.make_rdm1()
    level = 3
    ref = pyscf_grids(m, level)
    coords, weights = map(np.asarray, Grid.build(m, level).points(m.coords))

    def integrate(c, w):
        ao = dft.numint.eval_ao(mol, c)
        return float(np.dot(dft.numint.eval_rho(mol, ao, dm), w))

    n_ref = integrate(ref.coords, ref.weights)
    n_ours = integrate(coords, weights)
    assert abs(n_ours - n_ref) < 1e-10
    assert abs(n_ref - mol.nelectron) < 1e-4  # the grid's own quadrature error, for scale


# ---------------------------------------------------------------------- derivatives and jit
def distorted(geometry, seed=0, amplitude=0.05):
    m = Molecule.from_string(geometry)
    rng = np.random.default_rng(seed)
    return m.coords + amplitude * rng.standard_normal(m.coords.shape), m


@pytest.mark.parametrize("geometry", [WATER, H2S], ids=["water", "h2s"])
def test_jacobian_matches_finite_differences(geometry):
    R0, m = distorted(geometry)
    grid = Grid.build(m, 0)
    points = jax.jit(grid.points)
    jc, jw = jax.jit(jax.jacfwd(grid.points))(R0)
    assert jc.shape == (grid.ngrid, 3, m.natm, 3) and jw.shape == (grid.ngrid, m.natm, 3)
    assert np.all(np.isfinite(jw))
    # Points move rigidly with their own atom.
    own = np.zeros((grid.ngrid, 3, m.natm, 3))
    own[np.arange(grid.ngrid), :, grid.atom_index, :] = np.eye(3)
    np.testing.assert_array_equal(jc, own)
    fd = fd_jacobian(lambda R: points(R)[1], R0, 1e-5)
    np.testing.assert_allclose(jw, fd, rtol=0, atol=1e-6)


def gaussian_integral(grid, centre):
    def energy(R):
        coords, weights = grid.points(R)
        f = jnp.exp(-0.7 * jnp.sum((coords - centre) ** 2, axis=1))
        return jnp.sum(weights * f)

    return energy


def test_grad_and_hessian_of_an_integral():
    """Grid response of a fixed function's integral: reverse mode vs finite differences, and a
    finite Hessian (second derivatives through the Becke partition are NaN-free)."""
    R0, m = distorted(WATER, seed=1, amplitude=0.1)
    grid = Grid.build(m, 1)
    energy = gaussian_integral(grid, jnp.array([0.3, 0.2, 0.5]))
    g = jax.jit(jax.grad(energy))(R0)
    fd = fd_jacobian(jax.jit(energy), R0, 1e-4)
    np.testing.assert_allclose(g, fd, rtol=0, atol=1e-8)
    # Becke weights are translation invariant, so translating all atoms only moves the points:
    # sum_A dE/dR_A = sum_p w_p grad f(r_p).
    coords, weights = grid.points(R0)
    centre = jnp.array([0.3, 0.2, 0.5])
    f = jnp.exp(-0.7 * jnp.sum((coords - centre) ** 2, axis=1))
    grad_f = -1.4 * (coords - centre) * f[:, None]
    np.testing.assert_allclose(g.sum(axis=0), weights @ grad_f, rtol=0, atol=1e-12)
    assert np.all(np.isfinite(jax.jit(jax.hessian(energy))(R0)))


def test_jit_compiles_once_per_molecule():
    m = Molecule.from_string(WATER)
    traces = []

    def weights_sum(grid, R):
        traces.append(1)
        return jnp.sum(grid.points(R)[1])

    f = jax.jit(weights_sum)
    r1 = f(Grid.build(m, 0), m.coords)
    r2 = f(Grid.build(m, 0), m.coords + 0.01)  # an equal Grid object, a new geometry
    r3 = f(Grid.build(m, 0), m.coords * 1.01)
    assert len(traces) == 1
    assert f._cache_size() == 1
    assert np.isfinite([r1, r2, r3]).all()
    g1, g2 = Grid.build(m, 0), Grid.build(m, 0)
    assert g1 == g2 and hash(g1) == hash(g2) and g1 != Grid.build(m, 1)
    assert jax.tree_util.tree_leaves(g1) == []


def test_vmap_over_geometries():
    m = Molecule.from_string(WATER)
    grid = Grid.build(m, 0)
    Rs = np.stack([m.coords, m.coords + 0.02, m.coords * 0.98])
    cs, ws = jax.vmap(grid.points)(Rs)
    for R, c, w in zip(Rs, cs, ws):
        c1, w1 = grid.points(R)
        np.testing.assert_allclose(c, c1, rtol=0, atol=1e-14)
        np.testing.assert_allclose(w, w1, rtol=0, atol=1e-14)


def test_becke_block_size_does_not_change_weights():
    R0, m = distorted(BENZENE)
    w_default = np.asarray(Grid.build(m, 0).points(R0)[1])
    w_small = np.asarray(Grid.build(m, 0, becke_block_size=97).points(R0)[1])
    np.testing.assert_allclose(w_small, w_default, rtol=0, atol=1e-12)


def test_blocks_pad_with_zero_weights():
    m = Molecule.from_string(WATER)
    grid = Grid.build(m, 0)
    coords, weights = grid.points(m.coords)
    bs = 128
    blocks = split_blocks(grid.ngrid, bs)
    assert blocks.nblock * bs == grid.ngrid + blocks.npad and 0 <= blocks.npad < bs
    assert blocks.mask.sum() == grid.ngrid
    cb, wb = block_grid(coords, weights, bs)
    assert cb.shape == (blocks.nblock, bs, 3) and wb.shape == (blocks.nblock, bs)
    np.testing.assert_array_equal(cb.reshape(-1, 3)[: grid.ngrid], coords)
    np.testing.assert_array_equal(wb.reshape(-1)[: grid.ngrid], weights)
    assert np.all(wb.reshape(-1)[grid.ngrid :] == 0)
    assert np.all(np.isfinite(cb))
    # padding points are copies of the last point; unblock drops them
    np.testing.assert_array_equal(cb.reshape(-1, 3)[grid.ngrid :],
                                  np.broadcast_to(coords[-1], (blocks.npad, 3)))
    np.testing.assert_array_equal(blocks.unblock(cb), coords)


def test_single_atom_integrates_gaussian():
    grid = Grid.build([8], 3)
    coords, weights = grid.points(np.zeros((1, 3)))
    np.testing.assert_array_equal(weights, grid.quadrature_weights)
    value = jnp.sum(weights * jnp.exp(-jnp.sum(coords**2, axis=1)))
    np.testing.assert_allclose(value, np.pi**1.5, rtol=1e-10)


def test_bad_input_raises():
    with pytest.raises(ValueError, match="level"):
        Grid.build([1, 1], 10)
    with pytest.raises(ValueError, match="atomic numbers"):
        Grid.build([0], 3)
    grid = Grid.build([1, 1], 0)
    with pytest.raises(ValueError, match="shape"):
        grid.points(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="block_size"):
        split_blocks(grid.ngrid, 0)


# ---------------------------------------------------------------------- memory
MEMORY_SCRIPT = textwrap.dedent(
    """
    import resource, sys
    import numpy as np, jax, jax.numpy as jnp
    import dftad
    from dftad.grid import Grid
    from dftad.molecule import Molecule
    atoms = []
    for k in range(10):  # 10 waters on a 3 x 2 x 2 lattice, 3 Angstrom apart: 30 atoms
        o = 3.0 * np.array([k // 4, (k // 2) % 2, k % 2])
        atoms += [("O", o), ("H", o + [0, 0.757, 0.587]), ("H", o + [0, -0.757, 0.587])]
    m = Molecule.from_atoms(atoms)
    grid = Grid.build(m, 3)
    def energy(R):
        c, w = grid.points(R)
        return jnp.sum(w * jnp.exp(-0.1 * jnp.sum((c - 5.0) ** 2, axis=1)))
    jax.jit(jax.grad(energy))(jnp.asarray(m.coords)).block_until_ready()
    # VmHWM is this process' own peak. ru_maxrss is not: Linux carries the parent's RSS at fork
    # over exec, so under a large pytest process it reported the parent (9.4 GiB vs 0.5 GiB).
    try:
        with open("/proc/self/status") as f:
            peak = next(int(l.split()[1]) for l in f if l.startswith("VmHWM:")) // 1024
    except (OSError, StopIteration):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(grid.natm, grid.ngrid, peak)
    """
)


@pytest.mark.slow
def test_memory_30_atoms_level_3():
    """Peak resident memory of a grid-response gradient for 30 atoms at level 3 (CPU)."""
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT], capture_output=True, text=True, env=env, check=True
    )
    natm, ngrid, peak_mib = map(int, out.stdout.split()[-3:])
    assert natm == 30 and ngrid > 300_000
    assert peak_mib < 4096, f"peak RSS {peak_mib} MiB"
