"""Physical constants and element data.

Units inside dftad are atomic units (Bohr, Hartree). The Bohr radius is the value PySCF uses
(CODATA 2010), so that geometries given in Angstrom map to exactly the same Bohr coordinates in
dftad and in PySCF and matrices compare element by element.
"""

import math

BOHR_ANGSTROM = 0.52917721092
"""One Bohr in Angstrom (CODATA 2010, as in ``pyscf.data.nist.BOHR``)."""

ANGSTROM_BOHR = 1.0 / BOHR_ANGSTROM

HARTREE_EV = 27.21138602
"""One Hartree in eV (CODATA 2014, as in PySCF)."""

AU_DEBYE = 2.5417464157449032
"""One atomic unit of dipole moment (e Bohr) in Debye, as in PySCF."""

# CODATA 2014 in SI (as PySCF's pyscf.data.nist), for the unit conversions of vibrational analysis
HARTREE_J = 4.359744650e-18
AMU_KG = 1.660539040e-27
BOHR_M = BOHR_ANGSTROM * 1e-10
LIGHT_SPEED = 299792458.0
AVOGADRO = 6.022140857e23
E_CHARGE = 1.6021766208e-19
EPSILON0 = 8.854187817e-12

HARTREE_KCAL = HARTREE_J * AVOGADRO / 4184.0
"""One Hartree in kcal/mol (627.509...; the thermochemical calorie, 4.184 J)."""

AU_WAVENUMBER = (HARTREE_J / (AMU_KG * BOHR_M**2)) ** 0.5 / (2 * math.pi * LIGHT_SPEED * 100)
"""sqrt(Hartree / (amu Bohr^2)) as a wavenumber in cm^-1 (5140.48...)."""

AU_KM_MOL = AVOGADRO / (12 * EPSILON0 * LIGHT_SPEED**2) * E_CHARGE**2 / AMU_KG / 1e3
"""IR intensity of a unit dipole derivative (e / sqrt(amu)) squared, in km/mol (974.88...)."""

# fmt: off
ELEMENTS = (
    "X", 'H', 'He', 'Li', 'Be', 'B', 'C', 'N', 'O', 'F', 'Ne', 'Na', 'Mg', 'Al', 'Si', 'P', 'S',
    'Cl', 'Ar', 'K', 'Ca', 'Sc', 'Ti', 'V', 'Cr', 'Mn', 'Fe', 'Co', 'Ni', 'Cu', 'Zn', 'Ga',
    'Ge', 'As', 'Se', 'Br', 'Kr', 'Rb', 'Sr', 'Y', 'Zr', 'Nb', 'Mo', 'Tc', 'Ru', 'Rh', 'Pd',
    'Ag', 'Cd', 'In', 'Sn', 'Sb', 'Te', 'I', 'Xe', 'Cs', 'Ba', 'La', 'Ce', 'Pr', 'Nd', 'Pm',
    'Sm', 'Eu', 'Gd', 'Tb', 'Dy', 'Ho', 'Er', 'Tm', 'Yb', 'Lu', 'Hf', 'Ta', 'W', 'Re', 'Os',
    'Ir', 'Pt', 'Au', 'Hg', 'Tl', 'Pb', 'Bi', 'Po', 'At', 'Rn',
)
"""Element symbols indexed by atomic number (index 0 is a placeholder)."""

MASSES = (
    0.0, 1.008, 4.002602, 6.94, 9.0121831, 10.81, 12.011, 14.007, 15.999, 18.998403163, 20.1797,
    22.98976928, 24.305, 26.9815385, 28.085, 30.973761998, 32.06, 35.45, 39.948, 39.0983,
    40.078, 44.955908, 47.867, 50.9415, 51.9961, 54.938044, 55.845, 58.933194, 58.6934, 63.546,
    65.38, 69.723, 72.63, 74.921595, 78.971, 79.904, 83.798, 85.4678, 87.62, 88.90584, 91.224,
    92.90637, 95.95, 97.90721, 101.07, 102.9055, 106.42, 107.8682, 112.414, 114.818, 118.71,
    121.76, 127.6, 126.90447, 131.293, 132.90545196, 137.327, 138.90547, 140.116, 140.90766,
    144.242, 144.91276, 150.36, 151.964, 157.25, 158.92535, 162.5, 164.93033, 167.259,
    168.93422, 173.054, 174.9668, 178.49, 180.94788, 183.84, 186.207, 190.23, 192.217, 195.084,
    196.966569, 200.592, 204.38, 207.2, 208.9804, 208.98243, 209.98715, 222.01758,
)
"""Standard atomic masses (amu) indexed by atomic number, as in PySCF."""
# fmt: on


_SYMBOL_Z = {s.upper(): z for z, s in enumerate(ELEMENTS) if z > 0}


def atomic_number(symbol: str) -> int:
    """Atomic number of an element symbol ("C", "cl", "Cl1" -> 17 for a labelled atom).

    Raises ``ValueError`` for anything that is not an element symbol.
    """
    s = str(symbol).strip()
    core = s.rstrip("0123456789").rstrip("_")
    z = _SYMBOL_Z.get(core.upper())
    if z is None:
        raise ValueError(f"unknown element {symbol!r}")
    return z
