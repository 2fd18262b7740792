"""Training data: species (geometry, charge, spin) and reactions with reference values.

A dataset is a folder, the way GMTKN55 writes its subsets (``molecules/w4-11`` is one)::

    species/<name>.xyz     one per species, Angstrom; the comment line carries charge= and spin=
    reactions.res          one reaction per line, GMTKN55's .res syntax (kcal/mol):
                               $tmer {mol,c,h}/$f  x -1 1 4 $w 420.420
                           (species in braces or as separate ``name/$f`` tokens, ``x``, the
                           integer stoichiometric coefficients in the same order, ``$w``, the
                           reference value of sum_i c_i E_i); ``#`` starts a comment
    split.txt              optional: ``<reaction> <train|validation|test>`` per line
    references.json        optional per-species reference data (each key optional):
                               {"h2o": {"energy": -76.4,            Hartree
                                        "forces": [[fx, fy, fz], ...],  Hartree/Bohr, -dE/dx,
                                                                    atoms in the .xyz order
                                        "density": {"file": "densities/h2o.npy",
                                                    "basis": "def2-svp"}}}
                           the density is the total AO density matrix (nao, nao) in ``basis``
                           (PySCF's AO order), e.g. a CCSD one-particle density matrix

A reaction is named after its first species (in W4-11, the molecule whose atomization energy
it is). Reaction energies, total energies (a reaction with one species and coefficient 1) and
barrier heights are all the same format. Every malformed line raises ``ValueError`` naming the
file and line.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np

from .molecule import Molecule, load

SPLITS = ("train", "validation", "test")


@dataclasses.dataclass(frozen=True)
class Reaction:
    """sum_i coefficients[i] * E(species[i]) = reference (kcal/mol)."""

    name: str
    species: tuple
    coefficients: tuple
    reference: float


@dataclasses.dataclass(frozen=True, eq=False)
class Reference:
    """Reference data of one species (each None when not given): ``energy`` (Hartree),
    ``forces`` (natm, 3) Hartree/Bohr, ``density`` (nao, nao) total AO density matrix in the
    basis ``density_basis``."""

    energy: float | None = None
    forces: np.ndarray | None = None
    density: np.ndarray | None = None
    density_basis: str | None = None


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Species by name, the reactions, each reaction's split (``train``, ``validation``,
    ``test``; all ``train`` without a split file) and the species' reference data (only those
    that have some)."""

    path: str
    species: dict
    reactions: tuple
    split: dict
    references: dict = dataclasses.field(default_factory=dict)

    def reactions_in(self, which: str | None = None) -> tuple:
        """The reactions of one split (all with None)."""
        if which is not None and which not in SPLITS:
            raise ValueError(f"unknown split {which!r}; known: {', '.join(SPLITS)}")
        return tuple(r for r in self.reactions if which is None or self.split[r.name] == which)

    def species_of(self, reactions) -> list[str]:
        """The species the ``reactions`` need, in order of first use."""
        out: dict[str, None] = {}
        for r in reactions:
            out.update(dict.fromkeys(r.species))
        return list(out)


def _tokens_to_species(tokens, where: str) -> list[str]:
    names = []
    for tok in tokens:
        tok = tok.removesuffix("/$f")
        if tok.startswith("{") and tok.endswith("}"):
            names += [n.strip() for n in tok[1:-1].split(",")]
        else:
            names.append(tok)
    if not names or any(not n or any(c in n for c in "{}/$, ") for n in names):
        raise ValueError(f"{where}: cannot read the species {' '.join(tokens)!r}")
    return names


def parse_reaction(line: str, where: str = "reaction") -> Reaction:
    """One .res line (module docstring) as a :class:`Reaction`."""
    tokens = line.split()
    if tokens and tokens[0] == "$tmer":
        tokens = tokens[1:]
    if "x" not in tokens:
        raise ValueError(f"{where}: no 'x' between species and coefficients: {line.strip()!r}")
    i = tokens.index("x")
    species = _tokens_to_species(tokens[:i], where)
    rest = tokens[i + 1:]
    if "$w" not in rest or rest.index("$w") != len(rest) - 2:
        raise ValueError(f"{where}: expected '... x COEFFICIENTS $w REFERENCE': "
                         f"{line.strip()!r}")
    try:
        coefficients = tuple(int(c) for c in rest[:-2])
        reference = float(rest[-1])
    except ValueError:
        raise ValueError(f"{where}: coefficients must be integers and the reference a number: "
                         f"{line.strip()!r}") from None
    if len(coefficients) != len(species):
        raise ValueError(f"{where}: {len(species)} species but {len(coefficients)} "
                         f"coefficients: {line.strip()!r}")
    if len(set(species)) != len(species):
        raise ValueError(f"{where}: a species appears twice: {line.strip()!r}")
    return Reaction(species[0], tuple(species), coefficients, reference)


def _lines(path: Path):
    with open(path) as f:
        for n, line in enumerate(f, 1):
            text = line.split("#", 1)[0].strip()
            if text:
                yield f"{path}:{n}", text


def load_dataset(path) -> Dataset:
    """Read a dataset folder (module docstring)."""
    root = Path(path)
    if not root.is_dir():
        raise ValueError(f"dataset folder {str(path)!r} does not exist")
    res = root / "reactions.res"
    if not res.is_file():
        raise ValueError(f"dataset {str(path)!r} has no reactions.res")
    reactions = [parse_reaction(text, where) for where, text in _lines(res)]
    if not reactions:
        raise ValueError(f"{res}: no reactions")
    names = [r.name for r in reactions]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"{res}: reactions named twice (a reaction is named after its first "
                         f"species): {', '.join(dup)}")
    species: dict[str, Molecule] = {}
    for r in reactions:
        for name in r.species:
            if name in species:
                continue
            xyz = root / "species" / f"{name}.xyz"
            if not xyz.is_file():
                raise ValueError(f"{res}: reaction {r.name!r} needs species {name!r}, but "
                                 f"{xyz} does not exist")
            try:
                species[name] = load(str(xyz))
            except ValueError as err:
                raise ValueError(f"{xyz}: {err}") from None
    split = dict.fromkeys(names, "train")
    split_file = root / "split.txt"
    if split_file.is_file():
        seen = set()
        for where, text in _lines(split_file):
            parts = text.split()
            if len(parts) != 2 or parts[1] not in SPLITS:
                raise ValueError(f"{where}: expected '<reaction> <{'|'.join(SPLITS)}>', got "
                                 f"{text!r}")
            if parts[0] not in split:
                raise ValueError(f"{where}: no reaction {parts[0]!r} in reactions.res")
            split[parts[0]] = parts[1]
            seen.add(parts[0])
        missing = [n for n in names if n not in seen]
        if missing:
            raise ValueError(f"{split_file}: no split for {', '.join(missing)}")
    references = _references(root, species)
    return Dataset(os.fspath(root), species, tuple(reactions), split, references)


def _references(root: Path, species: dict) -> dict:
    """``references.json`` (module docstring) checked against the species: {name: Reference}."""
    path = root / "references.json"
    if not path.is_file():
        return {}
    try:
        table = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON: {err}") from None
    if not isinstance(table, dict):
        raise ValueError(f"{path}: expected an object of species names")
    out = {}
    for name, entry in table.items():
        where = f"{path}: {name!r}"
        if name not in species:
            raise ValueError(f"{where}: no such species in the reactions")
        if not isinstance(entry, dict) or not entry or set(entry) - {"energy", "forces",
                                                                     "density"}:
            raise ValueError(f"{where}: expected some of 'energy', 'forces', 'density'")
        density, basis = (_density(root, entry["density"], where) if "density" in entry
                          else (None, None))
        out[name] = Reference(_energy(entry.get("energy"), where),
                              _forces(entry.get("forces"), species[name].natm, where),
                              density, basis)
    return out


def _energy(value, where: str):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise ValueError(f"{where}: energy must be a number (Hartree)")
    return float(value)


def _forces(value, natm: int, where: str):
    if value is None:
        return None
    try:
        forces = np.array(value, dtype=float)
    except (TypeError, ValueError):
        forces = None
    if forces is None or forces.shape != (natm, 3) or not np.isfinite(forces).all():
        raise ValueError(f"{where}: forces must be {natm} rows of 3 numbers (Hartree/Bohr)")
    return forces


def _density(root: Path, value, where: str):
    if not isinstance(value, dict) or set(value) != {"file", "basis"}:
        raise ValueError(f"{where}: density must be {{\"file\": ..., \"basis\": ...}}")
    try:
        density = np.load(root / str(value["file"]))
    except (OSError, ValueError) as err:
        raise ValueError(f"{where}: cannot read the density {value['file']!r}: {err}") from None
    if density.ndim != 2 or density.shape[0] != density.shape[1] or \
            not np.isfinite(density).all():
        raise ValueError(f"{where}: the density must be a square (nao, nao) matrix")
    return density, str(value["basis"])
