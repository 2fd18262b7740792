"""dftad as an ASE calculator: energies, forces and dipoles of ``ase.Atoms``.

    from ase.optimize import BFGS
    from dftad.ase import Calculator
    atoms.calc = Calculator(basis="def2-svp", xc="b3lyp")
    BFGS(atoms).run(fmax=0.01)

ASE's conventions: energies in eV, forces in eV/A, the dipole in e A. One SCF serves energy,
forces and dipole (ASE's ``check_state`` caches them until the atoms move); each SCF starts from
the last density. The calculation (:func:`dftad.build`) is set up for the first atoms and kept
while the same elements move, so moving atoms compiles nothing new: every geometry runs the same
compiled pieces (:func:`dftad.geomopt.single_point`). An SCF that does not converge raises
ASE's ``SCFError``, never a silent number. :meth:`Calculator.get_hessian` is the exact Hessian
(AD through the implicit SCF), e.g. for Sella's transition-state search
(``Sella(atoms, order=1, hessian_function=calc.get_hessian)``).

Needs ASE (``pip install 'dftad[optimize]'``).
"""

from __future__ import annotations

from typing import ClassVar

import jax
import numpy as np
from ase import units
from ase.calculators.calculator import Calculator as _ASECalculator
from ase.calculators.calculator import SCFError, all_changes

from . import geomopt, properties
from .constants import ANGSTROM_BOHR, BOHR_ANGSTROM
from .molecule import Molecule
from .pieces import repeated_job
from .setup import build

_hessian_jit = jax.jit(properties.hessian)
_dipole = properties.dipole  # jitted; calculate()'s argument ``properties`` shadows the module


class Calculator(_ASECalculator):
    """``Calculator(basis="def2-svp", xc="b3lyp", charge=0, spin=0, **build_options)``;
    ``build_options`` go to :func:`dftad.build` (``grid_level``, ``density_fit``, ``disp``, SCF
    options, ...). ``charge`` and ``spin`` (2S) default to the atoms' ``info`` entries of those
    names, else 0."""

    implemented_properties: ClassVar[list[str]] = ["energy", "free_energy", "forces", "dipole"]
    default_parameters: ClassVar[dict] = {"basis": "def2-svp", "xc": "b3lyp", "charge": None,
                                          "spin": None}

    def __init__(self, basis="def2-svp", xc="b3lyp", charge=None, spin=None, **build_options):
        super().__init__(basis=basis, xc=xc, charge=charge, spin=spin)
        self.build_options = build_options
        self.setup = None
        self._key = None  # (symbols, charge, spin) the setup was built for
        self.dm = None  # the last converged density, the next SCF's start
        self.result = None  # the last dftad Result (Hartree, Bohr)

    def molecule(self, atoms) -> Molecule:
        """The atoms as a :class:`dftad.Molecule` (Bohr)."""
        p = self.parameters
        charge = p.charge if p.charge is not None else atoms.info.get("charge", 0)
        spin = p.spin if p.spin is not None else atoms.info.get("spin", 0)
        return Molecule(tuple(atoms.get_chemical_symbols()),
                        np.asarray(atoms.positions) * ANGSTROM_BOHR, charge, spin)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        mol = self.molecule(self.atoms)
        key = (mol.symbols, mol.charge, mol.spin)
        if self.setup is None or key != self._key:
            p = self.parameters
            self.setup = build(mol, p.basis, p.xc, **self.build_options)
            self._key, self.dm = key, None
        coords = np.asarray(mol.coords)
        try:
            with repeated_job():  # dynamics and optimizers call it step after step
                res = geomopt.single_point(self.setup, coords, self.dm)
        except geomopt.SCFNotConverged as err:
            raise SCFError(str(err)) from err
        self.dm, self.result = res.scf.dm, res
        e = float(res.e_tot) * units.Hartree
        mu = np.asarray(_dipole(self.setup, coords, res.scf.dm))
        self.results = {
            "energy": e,
            "free_energy": e,
            "forces": np.asarray(res.forces) * (units.Hartree / BOHR_ANGSTROM),
            "dipole": mu * BOHR_ANGSTROM,
        }

    def get_hessian(self, atoms=None) -> np.ndarray:
        """The exact Hessian (3 natm, 3 natm) in eV/A^2 at ``atoms`` (default the last ones):
        :func:`dftad.hessian`, AD through the implicit SCF."""
        atoms = self.atoms if atoms is None else atoms
        mol = self.molecule(atoms)
        if self.setup is None or (mol.symbols, mol.charge, mol.spin) != self._key:
            self.calculate(atoms, ("energy",))
        n = 3 * mol.natm
        hess = np.asarray(_hessian_jit(self.setup, jax.numpy.asarray(mol.coords)))
        return hess.reshape(n, n) * (units.Hartree / BOHR_ANGSTROM**2)
