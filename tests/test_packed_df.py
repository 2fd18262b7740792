"""Density fitting for molecules whose dense tensors do not fit: (mn|P) and B packed over the AO
pairs the 3-centre plan keeps (dftad.two_electron.int3c2e_packed, dftad.jk.PackedCderi), the
SCF's grid values made again per pass (dftad.grid_pieces.Recomputed) and the forces in stages
(dftad.packed_df), against PySCF and against the dense paths they stand in for."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from pyscf import scf

import dftad
from dftad import energy, forces, grid_pieces, jk, packed_df, scf_pieces
from dftad.integrals import eri_plan, two_electron
from dftad.interop.pyscf import to_pyscf_mole


def _packed(setup, coords, ncol_b=None, naux_b=None):
    plan, basis, aux = setup.jk.plan3c, setup.basis, setup.jk.aux
    offsets, cols, ncol = two_electron.pair_columns(plan, basis, ncol_b)
    shape = (naux_b or aux.nao, ncol_b or ncol + 1)
    a = jax.jit(two_electron.int3c2e_packed, static_argnums=(5,))(
        plan, basis, aux, coords, tuple(jnp.asarray(o) for o in offsets), shape)
    return np.asarray(a), cols, ncol


@pytest.mark.parametrize("basis", ["def2-svp", pytest.param("def2-tzvp", marks=pytest.mark.slow)])
def test_packed_integrals_are_the_dense_ones(basis, monkeypatch):
    """Every (mn|P) of the dense tensor (d functions; f in def2-TZVP; both orders of a pair,
    the diagonal shell pairs whole) is read back through ``cols`` (1e-13); the padding rows
    and columns are zero; the pairs of two far apart molecules are screened out and read the
    zero column."""
    mol = dftad.load("water")
    setup = dftad.build(mol, basis, "b3lyp", density_fit=True)
    coords = jnp.asarray(mol.coords)
    dense = np.asarray(jax.jit(two_electron.int3c2e)(setup.jk.plan3c, setup.basis,
                                                     setup.jk.aux, coords))
    naux = setup.jk.aux.nao
    a, cols, ncol = _packed(setup, coords, 4096, naux + 5)
    assert np.abs(np.moveaxis(a[:naux][:, cols], 0, -1) - dense).max() < 1e-13
    assert not a[naux:].any() and not a[:, ncol:].any()
    # summed a group of quartets at a time: chunks of 16 primitive quartets, several groups
    # per class, quartets straddling two; per-primitive index arrays and the compact index
    monkeypatch.setattr(eri_plan, "MAX_CHUNK", 16)
    monkeypatch.setattr(two_electron, "GROUP_BYTES", 2**14)
    for compact_bytes in (eri_plan.COMPACT_INDEX_BYTES, 0):
        monkeypatch.setattr(eri_plan, "COMPACT_INDEX_BYTES", compact_bytes)
        small = dftad.build(mol, basis, "b3lyp", density_fit=True)
        compact = isinstance(small.jk.plan3c.index[0], eri_plan.CompactIndex)
        assert compact == (compact_bytes == 0)
        assert max(len(spans) for _, spans, _, _ in packed_df._groups(small)) > 2
        offsets, _, _ = packed_df.columns(small)
        summed = packed_df.packed_integrals(small, coords, None, offsets, (naux + 5, 4096))
        assert np.abs(np.asarray(summed) - a).max() < 1e-13
        whole = jax.jit(two_electron.int3c2e)(small.jk.plan3c, small.basis, small.jk.aux,
                                              coords)
        assert np.abs(np.asarray(whole) - dense).max() < 1e-13
    far = dftad.Molecule(mol.symbols * 2, np.concatenate([mol.coords, mol.coords + 40.0]))
    setup = dftad.build(far, basis, "b3lyp", density_fit=True)
    _, cols, ncol = two_electron.pair_columns(setup.jk.plan3c, setup.basis, 4096)
    n = setup.basis.nao // 2
    assert (cols[:n, n:] == 4095).all() and (cols[n:, :n] == 4095).all()
    assert ncol == len(np.unique(cols)) - 1 < 0.6 * n * (2 * n + 1)


@pytest.fixture(scope="module")
def water_df():
    mol = dftad.load("water")
    setup = dftad.build(mol, "def2-svp", "b3lyp", density_fit=True)
    coords = jnp.asarray(mol.coords)
    jkb = setup.jk
    int2c = jax.jit(two_electron.int2c2e)(jkb.plan2c, jkb.aux, coords)
    a, cols, _ = _packed(setup, coords, jk.FIT_COLUMNS)
    dense = jk.cderi(jax.jit(two_electron.int3c2e)(jkb.plan3c, setup.basis, jkb.aux, coords),
                     int2c)
    return mol, setup, jk.packed_cderi(jnp.asarray(a), int2c, jnp.asarray(cols)), dense


def test_packed_jk_equals_pyscf_and_the_dense_tensors(water_df, monkeypatch):
    """B fitted a block of columns at a time equals the dense B (1e-13); J and K of a spin pair
    of densities from it equal PySCF's density-fitted ones (1e-9, as the dense ones) and the
    dense B's (1e-12), K of the density and through its orbitals, over blocks of auxiliary
    functions with a remainder."""
    mol, setup, packed, dense = water_df
    naux = dense.shape[0]
    assert np.abs(np.asarray(packed.rows(0, naux)) - np.asarray(dense)).max() < 1e-13
    x = np.random.default_rng(3).standard_normal((2, setup.basis.nao, 5)) * 0.3
    dm = np.einsum("smi,sni->smn", x, x)
    monkeypatch.setattr(jk, "K_BLOCK_BYTES", 7 * 8 * 2 * (setup.basis.nao**2 + 5 * 24))
    vj, vk = jk.get_jk_df(packed, jnp.asarray(dm))
    _, vk_occ = jk.get_jk_df(packed, jnp.asarray(dm), with_j=False, orbs=jnp.asarray(x))
    rj, rk = jk.get_jk_df(dense, jnp.asarray(dm))
    mf = scf.RHF(to_pyscf_mole(mol, "def2-svp")).density_fit(auxbasis=setup.jk.auxbasis_name)
    pj, pk = mf.get_jk(mf.mol, dm, hermi=1)
    for ours, ref, tol in ((vj, rj, 1e-12), (vk, rk, 1e-12), (vk_occ, rk, 1e-12),
                           (vj, pj, 1e-9), (vk, pk, 1e-9)):
        assert np.abs(np.asarray(ours) - np.asarray(ref)).max() < tol


@pytest.mark.parametrize("xc,unrestricted", [
    ("camb3lyp", True),  # two operators (the erf one's metric is singular), two spins
    pytest.param("pbe", False, marks=pytest.mark.slow),  # Coulomb only
])
def test_large_molecule_paths_equal_the_dense_ones(xc, unrestricted, monkeypatch):
    """With every threshold at zero (what a molecule of ~1000 AOs gets): the SCF from packed B
    (the 3-centre plan's compact index) and grid values made again per pass reaches the same
    energy (1e-10 Ha) in as many cycles, and the forces in stages (several blocks of auxiliary
    functions) equal the one program's (1e-10 Ha/Bohr)."""
    mol = dftad.load("water")

    def build():
        return dftad.build(mol, "6-31g*", xc, grid_level=1, density_fit=True,
                           unrestricted=unrestricted)

    setup = build()
    coords = jax.device_put(mol.coords)
    ref = energy.kernel_stepwise(setup, coords)
    g_ref = forces.gradient_stepwise(setup, coords, ref.scf)

    monkeypatch.setattr(eri_plan, "COMPACT_INDEX_BYTES", 0)
    setup = build()
    assert isinstance(setup.jk.plan3c.index[0], eri_plan.CompactIndex)

    monkeypatch.setattr(scf_pieces, "DENSE_CDERI_BYTES", 0)
    monkeypatch.setattr(grid_pieces, "SCREEN_MIN_NAO", 0)
    monkeypatch.setattr(grid_pieces, "GRADIENT_SCREEN_MIN_NAO", 0)
    monkeypatch.setattr(grid_pieces, "STORED_AO_BYTES", 0)
    monkeypatch.setattr(forces, "ONE_PROGRAM_FITTED_BYTES", 0)
    monkeypatch.setattr(jk, "K_BLOCK_BYTES", 2**16)
    monkeypatch.setattr(two_electron, "GROUP_BYTES", 2**15)  # several groups per class
    monkeypatch.setattr(packed_df, "GRADIENT_GROUP_BYTES", 2**14)
    p = scf_pieces.Problem(setup, coords)
    assert isinstance(p.tensors[0], jk.PackedCderi)
    assert isinstance(p.blocks, grid_pieces.Recomputed)
    res, _ = scf_pieces.iterate(p)
    assert abs(float(res.scf.e_tot) - float(ref.scf.e_tot)) < 1e-10
    assert int(res.scf.cycles) == int(ref.scf.cycles)
    g = forces.gradient_stepwise(setup, coords, ref.scf)
    assert packed_df._block_size(setup.jk.aux.nao, setup.basis.nao**2) < setup.jk.aux.nao
    assert np.abs(g - np.asarray(g_ref)).max() < 1e-10
