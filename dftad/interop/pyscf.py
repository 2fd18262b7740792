"""PySCF interop, both ways: molecules, and dftad results as PySCF SCF objects.

    pmol = to_pyscf_mole(mol, "def2-svp")          # a built gto.Mole (Bohr, charge, spin)
    mol = from_pyscf_mole(pmol)                      # a dftad Molecule
    mf = mean_field(mol, "def2-svp", "b3lyp")        # PySCF's own calculation of the same kind
    mf = to_pyscf_scf(mol, setup, result)            # scf.RHF/UHF or dft.RKS/UKS holding the
                                                     # dftad orbitals: mf.mulliken_pop(),
                                                     # mf.dip_moment(), tools.molden.from_scf(mf)

The PySCF object carries dftad's ``mo_coeff``, ``mo_energy``, ``mo_occ``, ``e_tot`` and
``converged`` (AO order and normalisation are PySCF's, so nothing is transformed); its
``make_rdm1()`` is dftad's density. Only this module, basis loading, tests, benchmarks and
scripts import PySCF.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np

from ..molecule import Molecule

try:  # PySCF's error for a basis name it does not know (older releases raise builtin ones)
    from pyscf.gto.basis import BasisNotFoundError
except ImportError:  # pragma: no cover
    BasisNotFoundError = KeyError


def to_pyscf_mole(mol: Molecule, basis="def2-svp", cart: bool = False):
    """A built PySCF ``gto.Mole`` with ``mol``'s atoms (Bohr), charge and spin in ``basis`` (a
    name in PySCF's library, or a mapping element -> name). Raises ``ValueError`` naming the
    element a basis does not cover."""
    from pyscf import gto

    symbols = sorted(set(mol.symbols))
    mapping = dict(basis) if isinstance(basis, dict) else dict.fromkeys(symbols, basis)
    for s in symbols:
        if s not in mapping:
            raise ValueError(f"no basis given for element {s}")
        if not _has_functions(mapping[s], s):
            raise ValueError(f"basis {mapping[s]!r} has no functions for element {s}")
    pmol = gto.Mole()
    pmol.atom = mol.to_pyscf_atom()
    pmol.unit = "Bohr"
    # a name stays a name: PySCF picks its auxiliary basis by the basis name (a def2 basis given
    # as {element: name} gets the JK-fitting default instead of def2-universal-jfit)
    pmol.basis = basis if isinstance(basis, str) else mapping
    pmol.charge = mol.charge
    pmol.spin = mol.spin
    pmol.cart = cart
    pmol.verbose = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pmol.build()
    return pmol


def _has_functions(basis, symbol: str) -> bool:
    """Whether PySCF's library (or an explicit basis given as data) has ``symbol`` in
    ``basis``; unknown names count as not covering it."""
    from pyscf import gto

    if not isinstance(basis, str):
        return bool(basis)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return bool(gto.basis.load(basis, symbol))
        except (BasisNotFoundError, KeyError, ValueError, RuntimeError, OSError):
            return False


def from_pyscf_mole(pmol) -> Molecule:
    """A dftad :class:`~dftad.molecule.Molecule` with ``pmol``'s atoms, charge and spin (the
    basis stays with PySCF: pass its name to :func:`dftad.build`)."""
    symbols = [pmol.atom_pure_symbol(i) for i in range(pmol.natm)]
    return Molecule(tuple(symbols), np.asarray(pmol.atom_coords(unit="Bohr"), dtype=float),
                    charge=int(pmol.charge), spin=int(pmol.spin))


def mean_field(mol: Molecule, basis, xc, grid_level: int = 3, density_fit: bool = False,
               auxbasis=None):
    """PySCF's (unconverged) mean-field object for the calculation dftad makes of ``mol``:
    ``scf.RHF``/``scf.UHF`` for ``xc="hf"``, ``dft.RKS``/``dft.UKS`` otherwise (restricted for
    spin 0) on PySCF's grid of level ``grid_level`` with ``small_rho_cutoff = 0`` (dftad
    integrates every grid point); density-fitted with ``density_fit`` or an ``auxbasis``."""
    from pyscf import dft, scf

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


def to_pyscf_scf(mol: Molecule, setup, result):
    """``result`` (:class:`~dftad.hamiltonian.Result` of ``setup`` for ``mol``) as a PySCF SCF
    object: ``scf.RHF``/``scf.UHF`` for Hartree-Fock, ``dft.RKS``/``dft.UKS`` otherwise (with
    ``xc`` set when PySCF knows the functional's name), holding dftad's orbitals."""
    from pyscf import dft, scf

    pmol = to_pyscf_mole(mol, setup.basis_name, setup.basis.layout.cart)
    restricted = setup.occupation.restricted
    if setup.xc.family == "hf":
        mf = scf.RHF(pmol) if restricted else scf.UHF(pmol)
    else:
        mf = dft.RKS(pmol) if restricted else dft.UKS(pmol)
        try:
            dft.libxc.parse_xc(setup.xc.name)
            mf.xc = setup.xc.name
        except (KeyError, ValueError):  # a functional PySCF has no name for: analysis only
            pass
    r = result.scf
    mf.mo_coeff = np.asarray(r.mo_coeff)
    mf.mo_energy = np.asarray(r.mo_energy)
    mf.mo_occ = np.asarray(r.mo_occ)
    mf.e_tot = float(r.e_tot)
    mf.converged = bool(r.converged)
    return mf


@functools.cache
def _eval_xc_program():
    """:func:`dftad.xc.eval_xc` jitted (the functional's parameters are data)."""
    import jax

    from ..xc import eval_xc

    return jax.jit(eval_xc, static_argnums=(2,))


def use_functional(mf, functional):
    """Make the PySCF Kohn-Sham object ``mf`` (``dft.RKS``/``dft.UKS``) use a dftad
    :class:`~dftad.xc.functional.Functional` (a trained one, ``dftad.xc.models``), evaluated by
    dftad on PySCF's grid through PySCF's custom-functional hook (``define_xc_``): the
    semilocal part from :func:`dftad.xc.eval_xc` (energies and first derivatives by AD), exact
    exchange from the functional's (alpha, beta, omega) in PySCF's ``rsh_coeff`` convention.
    Energies and potentials only (PySCF's response properties need second derivatives, which
    this hook does not provide). Returns ``mf``."""
    from ..integrals.eri_pieces import bucket

    f = functional
    if f.family == "hf":
        raise ValueError("a functional without a semilocal part is Hartree-Fock: use scf.RHF")
    xctype = f.family.upper()

    def _eval(xc_code, rho, spin=0, relativity=0, deriv=1, omega=None, verbose=None):
        if deriv > 1:
            raise NotImplementedError("a dftad functional in PySCF gives first derivatives "
                                      "only (energies, potentials, gradients)")
        rho = np.asarray(rho, dtype=np.float64)
        n = rho.shape[-1]
        # PySCF's grid blocks vary in size: padded (with copies of the last point, a valid
        # density) to a power of two, so one compiled program serves every block of a bucket
        pad = [(0, 0)] * (rho.ndim - 1) + [(0, bucket(n, 256) - n)]
        out = _eval_xc_program()(f, np.pad(rho, pad, mode="edge"), spin)
        exc, vrho, vsigma, vtau = (None if x is None else np.asarray(x)[:n] for x in out)
        return exc, (vrho, vsigma, None, vtau), None, None

    alpha, beta, omega = (float(f.params[k]) for k in ("alpha", "beta", "omega"))
    mf = mf.define_xc_(_eval, xctype, hyb=alpha + beta, rsh=(omega, alpha, beta))
    if f.is_hybrid:
        # PySCF decides whether to build exact exchange from the *name* in mf.xc; the amounts
        # come from the hook's hybrid and rsh coefficients above
        mf.xc = "HF"
    return mf
