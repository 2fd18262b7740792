"""The grid's points, weights, AO values and E_xc gradient from the pieces molecules share
(dftad.grid_pieces) against the whole programs (dftad.hamiltonian.grid_ao, jax.grad of
dftad.hamiltonian.exc_direct)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dftad
from dftad import grid_pieces, hamiltonian, scf_pieces


def _density(setup, seed=0):
    """A symmetric positive density of the setup's kind (not an SCF's)."""
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(setup.nao, 3)) * 0.3
    d = c @ c.T
    return d if setup.restricted else np.stack([d, 0.5 * d])


@pytest.mark.parametrize("name,basis,xc", [
    ("water", "def2-svp", "b3lyp"),  # GGA: values and first derivatives, d functions
    ("methane", "6-31g", "lda,vwn"),  # LDA: values only
    ("hydroxyl_radical", "def2-svp", "tpss"),  # meta-GGA, unrestricted
    pytest.param("formaldehyde", "def2-tzvp", "pbe", marks=pytest.mark.slow),  # f functions
])
def test_grid_pieces_equal_the_whole_program(name, basis, xc):
    """Points, weights (atoms padded to the bucket with far nuclei) and AO values (nao padded
    to the SCF bucket) equal grid_ao's to 1e-12; the padding AO columns are exactly zero; E_xc's
    gradient with grid response equals jax.grad(exc_direct) to 1e-10 Ha/Bohr."""
    mol = dftad.load(name)
    setup = dftad.build(mol, basis, xc, grid_level=1)
    coords = jnp.asarray(mol.coords)
    nao, nao_b = setup.nao, scf_pieces.nao_bucket(setup.nao)
    ref = jax.jit(hamiltonian.grid_ao)(setup, coords)
    blocks = grid_pieces.ao_blocks(setup, coords, nao_b)
    assert len(blocks) == ref.ao.shape[0]
    for (ao, w, idx), ao_ref, w_ref in zip(blocks, ref.ao, ref.weights):
        assert idx is None  # unscreened below grid_pieces.SCREEN_MIN_NAO AOs
        ao = np.asarray(ao)
        scale = max(1.0, float(jnp.abs(ao_ref).max()))
        assert np.abs(ao[..., :nao] - np.asarray(ao_ref)).max() < 1e-12 * scale
        assert not ao[..., nao:].any()
        assert np.abs(np.asarray(w) - np.asarray(w_ref)).max() < 1e-12 * float(w_ref.max())

    dm = _density(setup)
    pad = [(0, 0)] * (dm.ndim - 2) + [(0, nao_b - nao)] * 2
    got = grid_pieces.exc_gradient(setup, coords, jnp.asarray(np.pad(dm, pad)), nao_b)
    want = jax.jit(jax.grad(hamiltonian.exc_direct, argnums=1))(setup, coords, jnp.asarray(dm))
    assert got.shape == want.shape
    assert np.abs(got - np.asarray(want)).max() < 1e-10


@pytest.mark.parametrize("xc,unrestricted", [("b3lyp", False), ("tpss", True)])
def test_screened_exc_gradient_equals_the_whole_program(xc, unrestricted, monkeypatch):
    """E_xc's gradient on screened, compact blocks (what molecules from
    GRADIENT_SCREEN_MIN_NAO AOs get: the XC products on the columns of the shells reaching a
    block, the AO values and their reverse pass only for those shells' chunks) equals
    jax.grad(exc_direct) to 1e-10 Ha/Bohr: two waters 9 Angstrom apart, whose shells miss the
    other's blocks."""
    monkeypatch.setattr(grid_pieces, "SCREEN_MIN_NAO", 0)
    monkeypatch.setattr(grid_pieces, "GRADIENT_SCREEN_MIN_NAO", 0)
    water = dftad.load("water")
    mol = dftad.Molecule(water.symbols * 2,
                         np.concatenate([water.coords, water.coords + [17.0, 0.0, 0.0]]))
    setup = dftad.build(mol, "def2-svp", xc, grid_level=1, unrestricted=unrestricted)
    coords = jnp.asarray(mol.coords)
    nao, nao_b = setup.nao, scf_pieces.nao_bucket(setup.nao)
    blocks = grid_pieces.ao_blocks(setup, coords, nao_b)
    assert min(int((np.asarray(idx) < nao).sum()) for _, _, idx in blocks) <= nao // 2
    dm = _density(setup, seed=1)
    pad = [(0, 0)] * (dm.ndim - 2) + [(0, nao_b - nao)] * 2
    got = grid_pieces.exc_gradient(setup, coords, jnp.asarray(np.pad(dm, pad)), nao_b)
    want = jax.jit(jax.grad(hamiltonian.exc_direct, argnums=1))(setup, coords, jnp.asarray(dm))
    assert np.abs(got - np.asarray(want)).max() < 1e-10
