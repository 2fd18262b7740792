"""PySCF interop (:mod:`dftad.interop.pyscf`): molecules both ways, and a dftad result that
PySCF's own analysis tools accept, giving PySCF's numbers for the same density."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _pyscf import converge, mean_field
from pyscf.tools import molden

import dftad
from dftad.constants import AU_DEBYE
from dftad.interop.pyscf import from_pyscf_mole, to_pyscf_mole, to_pyscf_scf


def test_molecule_round_trip():
    mol = dftad.load("hydroxyl_radical")
    pmol = to_pyscf_mole(mol, "6-31g*")
    assert (pmol.charge, pmol.spin, pmol.nao) == (0, 1, 16)  # O 3s2p1d (5 d), H 2s
    back = from_pyscf_mole(pmol)
    assert back.symbols == mol.symbols and (back.charge, back.spin) == (mol.charge, mol.spin)
    np.testing.assert_allclose(back.coords, mol.coords, rtol=0, atol=1e-14)


def test_basis_without_the_element_is_a_clear_error():
    with pytest.raises(ValueError, match="no functions for element"):
        to_pyscf_mole(dftad.load("Xe 0 0 0"), "6-31g*")


@pytest.mark.parametrize("name,xc", [("water", "b3lyp"), ("hydroxyl_radical", "hf")])
def test_result_as_pyscf_object(name, xc, tmp_path):
    """Mulliken charges and the dipole from PySCF's tools on dftad's orbitals equal dftad's
    dipole (same density, 1e-10) and PySCF's own SCF's analysis (1e-6, the SCF convergence);
    molden output reads back with dftad's orbital energies."""
    mol = dftad.load(name)
    setup = dftad.build(mol, "sto-3g", xc, grid_level=2, conv_tol=1e-12)
    res = jax.jit(dftad.kernel)(setup, jnp.asarray(mol.coords))
    mf = to_pyscf_scf(mol, setup, res)
    np.testing.assert_allclose(mf.make_rdm1(), np.asarray(res.scf.dm), atol=1e-12)
    mu = mf.dip_moment(unit="Debye", verbose=0)
    ours = np.asarray(dftad.dipole(setup, jnp.asarray(mol.coords), res.scf.dm)) * AU_DEBYE
    np.testing.assert_allclose(mu, ours, atol=1e-10)
    ref = mean_field(mol, "sto-3g", xc, grid_level=2)
    ref.conv_tol = 1e-12
    ref = converge(ref)
    charges = mf.mulliken_pop(verbose=0)[1]
    np.testing.assert_allclose(charges, ref.mulliken_pop(verbose=0)[1], atol=1e-6)
    np.testing.assert_allclose(mu, ref.dip_moment(unit="Debye", verbose=0), atol=1e-6)
    path = tmp_path / "orbitals.molden"
    molden.from_scf(mf, str(path))
    data = molden.load(str(path))
    mo_energy = np.asarray(data[1])
    np.testing.assert_allclose(np.sort(mo_energy.ravel()),
                               np.sort(np.asarray(res.scf.mo_energy).ravel()), atol=1e-8)
