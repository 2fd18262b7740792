"""The PySCF reference objects every test builds the same way.

    mean_field(mol, basis, xc, ...)   an unconverged scf.RHF/UHF (``xc="hf"``) or dft.RKS/UKS with
                                      the tests' grid settings (PySCF grid level, no density
                                      cutoff), optionally density-fitted
    converge(mf, dm0)                 mf.kernel(dm0), finished with PySCF's Newton solver where
                                      its DIIS stalls; asserts convergence
"""

from __future__ import annotations

from pyscf import dft, scf

from dftad.interop.pyscf import to_pyscf_mole


def mean_field(mol, basis, xc, grid_level=3, density_fit=False, auxbasis=None):
    """PySCF's mean-field object for ``mol`` (a dftad Molecule) with dftad's conventions:
    restricted for spin 0, ``small_rho_cutoff = 0`` (dftad integrates every grid point)."""
    pmol = to_pyscf_mole(mol, basis)
    if xc == "hf":
        mf = scf.RHF(pmol) if mol.spin == 0 else scf.UHF(pmol)
    else:
        mf = dft.RKS(pmol) if mol.spin == 0 else dft.UKS(pmol)
        mf.xc = xc
        mf.grids.level = grid_level
        mf.small_rho_cutoff = 0
    if density_fit or auxbasis is not None:
        mf = mf.density_fit(auxbasis=auxbasis)
    return mf


def converge(mf, dm0=None):
    """``mf`` converged from ``dm0``; PySCF's DIIS may stall at tight tolerances, so an
    unconverged run is finished with Newton steps."""
    mf.kernel(dm0)
    if not mf.converged:
        mf = mf.newton()
        mf.kernel(mf.make_rdm1())
    assert mf.converged
    return mf
