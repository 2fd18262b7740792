"""Molecules: atoms, coordinates (Bohr), charge and spin; reading and writing .xyz.

A :class:`Molecule` is plain setup-side data. Its coordinates are a NumPy array in Bohr; the pure
JAX functions of dftad take coordinates as a separate (traced) argument, so the molecule itself is
never traced.

Spin follows PySCF: ``spin = 2S = N_alpha - N_beta``.

Accepted geometry inputs (Angstrom unless ``unit="bohr"``):

* an .xyz file path, or the name of a molecule shipped in ``molecules/`` (``"water"``);
* an xyz string (atom count, comment line, atom lines);
* a PySCF-style atom string ``"O 0 0 0; H 0 0.76 0.59; H 0 -0.76 0.59"`` or a list of
  ``(symbol, (x, y, z))``.

The comment line of an xyz file may carry ``charge=N`` and ``spin=N`` (2S); explicit arguments win.
Every malformed input raises ``ValueError`` with a message saying what is wrong.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import numpy as np

from .constants import ANGSTROM_BOHR, BOHR_ANGSTROM, ELEMENTS, MASSES, atomic_number

MIN_DISTANCE = 0.1
"""Two atoms closer than this (Bohr) are rejected as atoms on top of each other."""

MOLECULES_DIR = Path(__file__).resolve().parent.parent / "molecules"


@dataclasses.dataclass(frozen=True, eq=False)
class Molecule:
    """A molecule: symbols, atomic numbers, coordinates in Bohr, charge and spin (2S).

    Build it with :meth:`from_xyz`, :meth:`from_string` or :func:`load`; the constructor
    validates everything (elements, distances, electron count against charge and spin).
    """

    symbols: tuple[str, ...]
    coords: np.ndarray  # (natm, 3) Bohr
    charge: int = 0
    spin: int = 0
    comment: str = ""

    def __post_init__(self):
        symbols = tuple(ELEMENTS[atomic_number(s)] for s in self.symbols)
        object.__setattr__(self, "symbols", symbols)
        coords = np.array(self.coords, dtype=np.float64, copy=True)
        if coords.shape != (len(symbols), 3):
            raise ValueError(
                f"coordinates have shape {coords.shape}, expected ({len(symbols)}, 3)"
            )
        if len(symbols) == 0:
            raise ValueError("a molecule needs at least one atom")
        if not np.all(np.isfinite(coords)):
            raise ValueError("coordinates must be finite numbers")
        coords.setflags(write=False)
        object.__setattr__(self, "coords", coords)
        for name in ("charge", "spin"):
            value = getattr(self, name)
            if int(value) != value:
                raise ValueError(f"{name} must be an integer, got {value!r}")
            object.__setattr__(self, name, int(value))
        _check_distances(symbols, coords)
        _check_electrons(self.nelectron, self.spin, self.charge)

    # ------------------------------------------------------------------ derived data
    @property
    def natm(self) -> int:
        return len(self.symbols)

    @property
    def atomic_numbers(self) -> tuple[int, ...]:
        return tuple(atomic_number(s) for s in self.symbols)

    @property
    def masses(self) -> tuple[float, ...]:
        """Standard atomic masses (amu), as PySCF's."""
        return tuple(MASSES[z] for z in self.atomic_numbers)

    @property
    def nelectron(self) -> int:
        return sum(self.atomic_numbers) - self.charge

    @property
    def nelec(self) -> tuple[int, int]:
        """(N_alpha, N_beta)."""
        n = self.nelectron
        return (n + self.spin) // 2, (n - self.spin) // 2

    @property
    def coords_angstrom(self) -> np.ndarray:
        return self.coords * BOHR_ANGSTROM

    def energy_nuc(self) -> float:
        """Nuclear repulsion energy sum_{A<B} Z_A Z_B / R_AB (Hartree)."""
        z = np.asarray(self.atomic_numbers, dtype=np.float64)
        r = np.linalg.norm(self.coords[:, None] - self.coords[None], axis=-1)
        iu = np.triu_indices(self.natm, 1)
        return float(np.sum(z[iu[0]] * z[iu[1]] / r[iu]))

    def with_coords(self, coords, unit: str = "bohr") -> Molecule:
        """The same molecule at new coordinates."""
        coords = np.asarray(coords, dtype=np.float64) * _unit_factor(unit)
        return dataclasses.replace(self, coords=coords)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_atoms(cls, atoms, unit="angstrom", charge=0, spin=0, comment=""):
        """From a list of ``(symbol, (x, y, z))``."""
        try:
            symbols = [str(a[0]) for a in atoms]
            coords = np.array([[float(x) for x in a[1]] for a in atoms], dtype=np.float64)
        except (TypeError, ValueError, IndexError) as err:
            raise ValueError(f"atoms must be (symbol, (x, y, z)) entries: {err}") from None
        coords = coords.reshape(len(symbols), 3) * _unit_factor(unit)
        return cls(tuple(symbols), coords, charge, spin, comment)

    @classmethod
    def from_string(cls, text: str, unit="angstrom", charge=None, spin=None) -> Molecule:
        """From an xyz string (count line first) or a PySCF-style atom string."""
        text = text.strip("\n")
        lines = text.strip().splitlines()
        if lines and re.fullmatch(r"\s*\d+\s*", lines[0]):
            return _parse_xyz(text.strip(), unit, charge, spin, source="xyz string")
        entries = [e.strip() for e in re.split(r"[;\n]", text) if e.strip()]
        atoms = []
        for entry in entries:
            fields = entry.replace(",", " ").split()
            if len(fields) != 4:
                raise ValueError(f"atom entry {entry!r} must be 'SYMBOL x y z'")
            atoms.append((fields[0], _floats(fields[1:], entry)))
        return cls.from_atoms(atoms, unit, charge or 0, spin or 0)

    @classmethod
    def from_xyz(cls, path, unit="angstrom", charge=None, spin=None) -> Molecule:
        """From an .xyz file."""
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as err:
            raise ValueError(f"cannot read {path}: {err.strerror}") from None
        return _parse_xyz(text, unit, charge, spin, source=str(path))

    # ------------------------------------------------------------------ output
    def to_xyz(self, comment: str | None = None) -> str:
        """The molecule as an xyz string in Angstrom, charge and spin in the comment line."""
        comment = self.comment if comment is None else comment
        comment = re.sub(r"\s*(charge|spin)\s*=\s*-?\d+", "", comment).strip()
        head = f"charge={self.charge} spin={self.spin}" + (f" {comment}" if comment else "")
        lines = [str(self.natm), head]
        for s, xyz in zip(self.symbols, self.coords_angstrom):
            lines.append(f"{s:<2s} {xyz[0]:.17g} {xyz[1]:.17g} {xyz[2]:.17g}")
        return "\n".join(lines) + "\n"

    def write_xyz(self, path, comment: str | None = None) -> None:
        Path(path).write_text(self.to_xyz(comment))

    def to_pyscf_atom(self) -> list:
        """Atoms in PySCF's format, coordinates in Bohr (use with ``unit='Bohr'``)."""
        return [(s, tuple(float(x) for x in c)) for s, c in zip(self.symbols, self.coords)]

    def __repr__(self):
        formula = "".join(
            f"{s}{self.symbols.count(s) if self.symbols.count(s) > 1 else ''}"
            for s in dict.fromkeys(self.symbols)
        )
        return f"Molecule({formula}, charge={self.charge}, spin={self.spin})"


def load(geometry, unit="angstrom", charge=None, spin=None) -> Molecule:
    """A molecule from an .xyz path, a shipped molecule name, or a geometry string."""
    if isinstance(geometry, Molecule):
        return geometry
    if isinstance(geometry, (list, tuple)):
        return Molecule.from_atoms(geometry, unit, charge or 0, spin or 0)
    text = str(geometry)
    if "\n" not in text and ";" not in text:
        path = Path(text)
        if path.suffix == ".xyz" or os.sep in text:
            if not path.exists():
                raise ValueError(f"no such file: {text}")
            return Molecule.from_xyz(path, unit, charge, spin)
        shipped = MOLECULES_DIR / f"{text}.xyz"
        if shipped.exists():
            return Molecule.from_xyz(shipped, unit, charge, spin)
        if path.exists():
            return Molecule.from_xyz(path, unit, charge, spin)
        if len(text.split()) != 4:
            names = ", ".join(shipped_molecules())
            raise ValueError(f"{text!r} is neither a file nor a shipped molecule ({names})")
    return Molecule.from_string(text, unit, charge, spin)


def shipped_molecules() -> list[str]:
    """Names of the molecules shipped in ``molecules/``."""
    return sorted(p.stem for p in MOLECULES_DIR.glob("*.xyz"))


# ---------------------------------------------------------------------- helpers
def _unit_factor(unit: str) -> float:
    u = unit.lower()
    if u in ("angstrom", "ang", "a"):
        return ANGSTROM_BOHR
    if u in ("bohr", "b", "au"):
        return 1.0
    raise ValueError(f"unknown unit {unit!r}: use 'angstrom' or 'bohr'")


def _floats(fields, where):
    try:
        return [float(f) for f in fields]
    except ValueError:
        raise ValueError(f"non-numeric coordinate in {where!r}") from None


def _parse_xyz(text, unit, charge, spin, source):
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise ValueError(f"{source}: empty xyz")
    try:
        natm = int(lines[0].strip())
    except ValueError:
        raise ValueError(f"{source}: first line must be the atom count, got {lines[0]!r}") from None
    comment = lines[1].strip() if len(lines) > 1 else ""
    body = [ln for ln in lines[2:] if ln.strip()]
    if len(body) != natm:
        raise ValueError(f"{source}: atom count says {natm} but {len(body)} atom lines follow")
    atoms = []
    for ln in body:
        fields = ln.split()
        if len(fields) < 4:
            raise ValueError(f"{source}: atom line {ln!r} must be 'SYMBOL x y z'")
        atoms.append((fields[0], _floats(fields[1:4], f"{source}: {ln.strip()}")))
    if charge is None:
        charge = _comment_int(comment, "charge", source)
    if spin is None:
        spin = _comment_int(comment, "spin", source)
    return Molecule.from_atoms(atoms, unit, charge, spin, comment)


def _comment_int(comment: str, key: str, source: str) -> int:
    """``key=N`` from an xyz comment line (0 when absent); a malformed value is an error."""
    m = re.search(rf"(?<![\w.]){key}\s*=\s*(\S+)", comment)
    if not m:
        return 0
    try:
        return int(m.group(1))
    except ValueError:
        raise ValueError(f"{source}: {key} in the comment line must be an integer, "
                         f"got {m.group(1)!r}") from None


def _check_distances(symbols, coords):
    if len(symbols) < 2:
        return
    d = np.linalg.norm(coords[:, None] - coords[None], axis=-1)
    d[np.diag_indices(len(symbols))] = np.inf
    i, j = np.unravel_index(np.argmin(d), d.shape)
    if d[i, j] < MIN_DISTANCE:
        raise ValueError(
            f"atoms {i} ({symbols[i]}) and {j} ({symbols[j]}) are {d[i, j]:.3g} Bohr apart "
            f"(minimum {MIN_DISTANCE} Bohr): atoms on top of each other"
        )


def _check_electrons(nelectron, spin, charge):
    if nelectron <= 0:
        raise ValueError(f"charge {charge} leaves {nelectron} electrons")
    if spin < 0:
        raise ValueError(f"spin (2S) must be >= 0, got {spin}")
    if (nelectron - spin) % 2:
        raise ValueError(
            f"{nelectron} electrons cannot have spin 2S={spin}: the parity differs "
            f"(charge {charge}); spin is 2S = N_alpha - N_beta, not 2S+1"
        )
    if spin > nelectron:
        raise ValueError(f"spin 2S={spin} exceeds the number of electrons ({nelectron})")
