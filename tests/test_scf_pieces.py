"""The stepwise SCF through pieces padded to a size bucket (dftad.scf_pieces) against the
unpadded whole program (dftad.hamiltonian, dftad.energy.kernel_from_integrals)."""

import jax
import numpy as np
import pytest

import dftad
from dftad import energy, grid_pieces, guess, hamiltonian, learn, scf_pieces


@pytest.mark.parametrize("name,xc,df", [
    ("water", "b3lyp", False),  # RKS, incore, global hybrid
    ("methyl_radical", "pbe", False),  # UKS, GGA without exact exchange (OH: degenerate pi, a
    # flat direction where DIIS stalls near 1e-9 depending on rounding)
    pytest.param("water", "wb97x", True, marks=pytest.mark.slow),  # DF, range separated
])
def test_the_padded_scf_equals_the_unpadded_one(name, xc, df):
    """nao padded to the bucket (and the auxiliary basis, with density fitting):

    * E and F of the converged density equal the unpadded Hamiltonian's to 1e-12, and the
      padding block of F is exactly PAD_LEVEL on the diagonal and exactly decoupled;
    * from the same starting density the stepwise SCF takes the same number of cycles to the
      same energy (1e-10 Ha), density and orbital energies as the compiled loop;
    * the core guess equals the unpadded one (1e-10), the SAD guess of the elements holds the
      molecule's electrons and, closed shell, reaches
      the same SCF."""
    mol = dftad.load(name)
    # converged well below the 1e-8 compared: the two paths round differently (1e-16), which
    # moves a density converged to |[F,D]| < 1e-7 by ~1e-8
    setup = dftad.build(mol, "6-31g", xc, grid_level=1, density_fit=df, conv_tol=1e-12,
                        conv_tol_grad=1e-9)
    coords = np.asarray(mol.coords)
    ints = jax.jit(hamiltonian.integrals)(setup, coords)
    dm0 = jax.jit(guess.initial_guess)(setup, ints)
    ref = jax.jit(energy.kernel_from_integrals)(setup, ints, None, dm0)
    assert bool(ref.converged)

    p = scf_pieces.Problem(setup, coords)
    assert p.nao_b > p.nao
    padded = p.pad(ref.scf.dm)
    vj, vk, exc, vxc = p.energy_terms(padded)
    e_tot, fock, _ = scf_pieces._energy(p.h1e, p.e_nuc, p.e_disp, padded, vj, vk, exc, vxc)
    e_ref, f_ref = jax.jit(lambda i, d: hamiltonian.hamiltonian(setup, i)[0](d))(ints, ref.scf.dm)
    assert abs(float(e_tot - e_ref)) < 1e-12
    assert np.abs(p.cut(fock) - np.asarray(f_ref)).max() < 1e-12
    fock, n = np.asarray(fock), p.nao
    assert not fock[..., :n, n:].any() and not fock[..., n:, :n].any()
    pad = fock[..., n:, n:]
    assert np.array_equal(pad, np.broadcast_to(scf_pieces.PAD_LEVEL * np.eye(p.nao_b - n),
                                               pad.shape))

    res = scf_pieces.solve(setup, coords, dm0=dm0)
    assert bool(res.converged) and int(res.scf.cycles) == int(ref.scf.cycles)
    assert abs(float(res.e_tot - ref.e_tot)) < 1e-10
    np.testing.assert_allclose(res.scf.dm, ref.scf.dm, atol=1e-8)
    np.testing.assert_allclose(res.scf.mo_energy, ref.scf.mo_energy, atol=1e-8)
    assert res.scf.mo_coeff.shape == ref.scf.mo_coeff.shape

    core = p.cut(scf_pieces._core_guess(p.h1e, p.x, p.mo_occ))
    core_ref = jax.jit(guess.core_guess, static_argnums=2)(ints.h1e, ints.s1e, setup.occupation)
    assert np.abs(core - np.asarray(core_ref)).max() < 1e-10

    sad = p.cut(p.guess())
    assert abs(np.sum(sad * np.asarray(ints.s1e)) - sum(mol.nelec)) < 1e-10
    if mol.spin == 0:  # (OH's 2-Pi has near-degenerate UKS solutions: a guess picks one)
        assert abs(float(scf_pieces.solve(setup, coords).e_tot - ref.e_tot)) < 1e-10


def test_atomic_densities_are_kept_on_disk(tmp_path, monkeypatch):
    """With the on-disk cache on, an element's SAD density is solved once and written beside the
    pieces; a later process (the in-memory copies dropped) reads the same array, bit for bit,
    without solving the atom again; a file of the wrong shape is solved again."""
    from dftad import pieces

    basis = dftad.build(dftad.load("water"), "sto-3g", "hf").basis.on_atom(0)
    monkeypatch.setattr(pieces, "cache_dir", lambda: str(tmp_path))
    monkeypatch.setattr(scf_pieces, "_ATOMS", {})
    solved = scf_pieces.atomic_density(basis, 8)
    files = list(tmp_path.rglob("atom-*.npy"))
    assert len(files) == 1
    monkeypatch.setattr(scf_pieces, "_ATOMS", {})
    atom_scf = scf_pieces._atom_scf

    def must_not_run(*args):
        raise AssertionError("the atom was solved again")

    monkeypatch.setattr(scf_pieces, "_atom_scf", must_not_run)
    read = scf_pieces.atomic_density(basis, 8)
    np.testing.assert_array_equal(read, solved)
    np.save(files[0], np.zeros((2, 2)))  # stale: solved again
    monkeypatch.setattr(scf_pieces, "_ATOMS", {})
    monkeypatch.setattr(scf_pieces, "_atom_scf", atom_scf)
    np.testing.assert_array_equal(scf_pieces.atomic_density(basis, 8), solved)


@pytest.mark.parametrize("charge,xc", [(0, "b3lyp"), (1, "pbe")], ids=["rks", "uks-cation"])
def test_screened_grid_blocks_equal_the_full_ones(charge, xc, monkeypatch):
    """Grid blocks made compact from the geometry, each keeping only the AO shells that do not
    vanish on it (what molecules from :data:`~dftad.grid_pieces.SCREEN_MIN_NAO` AOs get), give
    the same E_xc and V_xc (1e-11) and the same XC parameter gradient as the full blocks,
    restricted and unrestricted, while leaving AOs out of some blocks."""
    mol = dftad.load("ethanol", charge=charge, spin=charge)
    setup = dftad.build(mol, "6-31g", xc, grid_level=1)
    coords = np.asarray(mol.coords)
    full = scf_pieces.Problem(setup, coords)
    monkeypatch.setattr(grid_pieces, "SCREEN_MIN_NAO", 0)
    monkeypatch.setattr(grid_pieces, "SCREEN_STEP", 4)
    screened = scf_pieces.Problem(setup, coords)
    assert all(idx is None for _, _, idx in full.blocks)
    kept = [int((np.asarray(idx) < screened.nao_b).sum()) for _, _, idx in screened.blocks]
    assert min(kept) < full.nao, kept  # something was screened out
    dm = full.guess()
    exc, vxc = full.exc_vxc(dm)
    exc_s, vxc_s = screened.exc_vxc(dm)
    assert abs(float(exc_s - exc)) < 1e-11
    assert np.abs(np.asarray(vxc_s - vxc)).max() < 1e-11
    g, g_s = learn.params_gradient(full, dm), learn.params_gradient(screened, dm)
    for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g_s)):
        assert np.abs(np.asarray(a) - np.asarray(b)).max() < 1e-11
