"""QCSchema output: a dftad result as a ``qcelemental.models.AtomicResult`` (QCSchema
``qcschema_output``, version 1), the record QCEngine-style workflows read.

    result = atomic_result(mol, setup, res, method="b3lyp")   # driver "gradient" if res.forces
    print(result.json())                                      # what `dftad energy --json
                                                              # --schema qcschema` prints

QCSchema's units are dftad's: geometry in Bohr, energies in Hartree, gradients in
Hartree/Bohr (the gradient is ``-res.forces``). The energy components map onto
``AtomicResultProperties`` as Psi4 reports them: one-electron (core Hamiltonian), two-electron
(Coulomb plus exact exchange), XC (semilocal part), dispersion; with the nuclear repulsion they
add up to the total. qcelemental is an optional dependency (``pip install 'dftad[qcschema]'``),
imported only here.
"""

from __future__ import annotations

import numpy as np

INSTALL_HINT = "pip install 'dftad[qcschema]'"

GEOMETRY_DECIMALS = 14
"""Decimals (Bohr) the molecule's geometry keeps: qcelemental rounds to 8 by default (1e-8
Bohr), 14 keeps the geometry the energy and gradient belong to, to rounding."""


def require_qcelemental():
    """The ``qcelemental`` module; ``ImportError`` with the install command if it is missing."""
    try:
        import qcelemental
    except ImportError as err:
        raise ImportError(f"QCSchema output needs qcelemental: {INSTALL_HINT}") from err
    return qcelemental


def atomic_result(mol, setup, res, *, method: str | None = None, driver: str | None = None,
                  keywords: dict | None = None, extras: dict | None = None,
                  routine: str = "dftad.interop.qcschema"):
    """The ``qcelemental.models.AtomicResult`` of the SCF result ``res`` (a
    :class:`~dftad.hamiltonian.Result`) of ``mol`` set up as ``setup``.

    ``method``: the model's method (default: the functional's name, ``"hf"`` for Hartree-Fock);
    the basis is ``setup.basis_name``. ``driver``: ``"energy"`` (return_result: E_tot, Hartree)
    or ``"gradient"`` (return_result: dE/dR = -res.forces, (natm, 3) Hartree/Bohr); default
    ``"gradient"`` when ``res.forces`` is set. ``success`` is ``res.converged``; an
    unconverged result carries an ``error`` (and, asked for a gradient it does not have, an
    empty one). ``keywords`` and ``extras`` are passed through; ``routine`` names the caller in
    the provenance."""
    from dftad import __version__

    models = require_qcelemental().models
    converged = bool(res.converged)
    if driver is None:
        driver = "energy" if res.forces is None else "gradient"
    if driver not in ("energy", "gradient"):
        raise ValueError(f"driver must be 'energy' or 'gradient', got {driver!r}")
    e_tot = float(res.e_tot)
    c = {k: float(v) for k, v in res.components._asdict().items()}
    nalpha, nbeta = mol.nelec
    props = {
        "calcinfo_natom": mol.natm, "calcinfo_nbasis": setup.nao,
        "calcinfo_nmo": int(np.shape(res.scf.mo_coeff)[-1]), "calcinfo_nalpha": nalpha,
        "calcinfo_nbeta": nbeta, "scf_iterations": int(res.scf.cycles),
        "nuclear_repulsion_energy": c["e_nuc"], "scf_one_electron_energy": c["e_one"],
        "scf_two_electron_energy": c["e_coul"] + c["e_exx"],  # Coulomb + exact exchange
        "scf_total_energy": e_tot, "return_energy": e_tot}
    if setup.semilocal:
        props["scf_xc_energy"] = c["e_xc"]
    if setup.disp is not None:
        props["scf_dispersion_correction_energy"] = c["e_disp"]
    if driver == "energy":
        result = e_tot
    elif res.forces is None:  # not computed (the SCF did not converge)
        result = np.zeros((0, 3))
    else:
        result = -np.asarray(res.forces, dtype=np.float64).reshape(mol.natm, 3)
        props["return_gradient"] = props["scf_total_gradient"] = result
    error = None
    if not converged:
        error = models.ComputeError(
            error_type="convergence_error",
            error_message=f"SCF did not converge in {int(res.scf.cycles)} cycles "
                          f"(|dE| {abs(float(res.scf.e_change)):.1e}, "
                          f"|[F,D]| {float(res.scf.grad_norm):.1e})")
    molecule = models.Molecule(
        symbols=list(mol.symbols), geometry=np.asarray(mol.coords, dtype=np.float64),
        molecular_charge=mol.charge, molecular_multiplicity=mol.spin + 1,
        fix_com=True, fix_orientation=True, geometry_noise=GEOMETRY_DECIMALS)
    return models.AtomicResult(
        molecule=molecule, driver=driver,
        model={"method": method or setup.xc.name, "basis": setup.basis_name},
        keywords=keywords or {}, return_result=result,
        properties=models.AtomicResultProperties(**props),
        provenance=models.Provenance(creator="dftad", version=__version__, routine=routine),
        success=converged, error=error, extras=extras or {})
