"""The PySCF reference objects every test builds the same way.

    mean_field(mol, basis, xc, ...)   :func:`dftad.interop.pyscf.mean_field`: an unconverged
                                      scf.RHF/UHF or dft.RKS/UKS with dftad's grid settings
    converge(mf, dm0)                 mf.kernel(dm0), finished with PySCF's Newton solver where
                                      its DIIS stalls; asserts convergence
"""

from __future__ import annotations

from dftad.interop.pyscf import mean_field  # noqa: F401 - the tests import it from here


def converge(mf, dm0=None):
    """``mf`` converged from ``dm0``; PySCF's DIIS may stall at tight tolerances, so an
    unconverged run is finished with Newton steps."""
    mf.kernel(dm0)
    if not mf.converged:
        mf = mf.newton()
        mf.kernel(mf.make_rdm1())
    assert mf.converged
    return mf
