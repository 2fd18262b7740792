"""Tests for dftad.Molecule / dftad.load and the molecules shipped in molecules/.

PySCF is the reference for units: a shipped .xyz file read by PySCF in Angstrom must give the same
Bohr coordinates as dftad, to 1e-12.
"""

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest
from pyscf import gto
from pyscf.data import nist

from dftad import Molecule, load, shipped_molecules
from dftad.constants import ANGSTROM_BOHR, BOHR_ANGSTROM
from dftad.molecule import MIN_DISTANCE, MOLECULES_DIR

ROOT = Path(__file__).resolve().parent.parent
MOLDIR = ROOT / "molecules"
SHIPPED = sorted(p.stem for p in MOLDIR.glob("*.xyz"))

REQUIRED = [
    "water", "ammonia", "methane", "hydrogen_fluoride", "nitrogen", "carbon_monoxide",
    "ethylene", "acetylene", "ethanol", "formic_acid", "benzene", "pyridine", "acetone", "urea",
    "alanine", "aspirin", "caffeine",
]  # fmt: skip

# open-shell molecules and ions, with the (charge, spin) they must have
CHARGE_SPIN = {
    "methyl_radical": (0, 1),
    "hydroxyl_radical": (0, 1),
    "nitric_oxide": (0, 1),
    "oxygen": (0, 2),
    "hydroxide": (-1, 0),
    "ammonium": (1, 0),
    "hydronium": (1, 0),
    "water": (0, 0),
    "benzene": (0, 0),
}

SECOND_ROW = {"Na", "Mg", "Al", "Si", "P", "S", "Cl", "Ar"}

COMMENT = re.compile(r"^charge=(-?\d+) spin=(\d+) \S")

WATER_XYZ = """3
charge=0 spin=0 water, test geometry
O    0.000000    0.000000    0.119262
H    0.000000    0.763239   -0.477047
H    0.000000   -0.763239   -0.477047
"""
WATER_ANG = np.array(
    [[0.0, 0.0, 0.119262], [0.0, 0.763239, -0.477047], [0.0, -0.763239, -0.477047]]
)


def read_header(name):
    """(natm, charge, spin, symbols, coords in Angstrom) parsed independently of dftad."""
    lines = (MOLDIR / f"{name}.xyz").read_text().splitlines()
    m = COMMENT.match(lines[1])
    assert m, f"{name}.xyz: comment line {lines[1]!r} is not 'charge=Q spin=S <source>'"
    natm = int(lines[0])
    atoms = [ln.split() for ln in lines[2 : 2 + natm]]
    symbols = [a[0] for a in atoms]
    coords = np.array([[float(x) for x in a[1:4]] for a in atoms])
    return natm, int(m.group(1)), int(m.group(2)), symbols, coords


def pyscf_mol(atom, unit, charge, spin):
    return gto.M(atom=atom, unit=unit, charge=charge, spin=spin, basis="sto-3g", verbose=0)


# ------------------------------------------------------------------------- the data set
def test_shipped_set_is_complete():
    assert len(SHIPPED) >= 22
    assert not set(REQUIRED) - set(SHIPPED)
    assert set(CHARGE_SPIN) <= set(SHIPPED)
    assert MOLECULES_DIR == MOLDIR
    assert shipped_molecules() == SHIPPED
    elements = {s for name in SHIPPED for s in read_header(name)[3]}
    assert {"H", "C", "N", "O", "F"} <= elements
    assert elements & SECOND_ROW
    assert any(read_header(n)[1] < 0 for n in SHIPPED)  # an anion
    assert any(read_header(n)[1] > 0 for n in SHIPPED)  # a cation
    assert any(read_header(n)[2] == 2 for n in SHIPPED)  # a triplet


def test_readme_lists_every_molecule():
    readme = (MOLDIR / "README.md").read_text()
    for name in SHIPPED:
        assert f"`{name}.xyz`" in readme, name


def test_script_makes_exactly_the_shipped_files():
    """scripts/make_molecules.py lists every shipped file, with the same charge and spin."""
    path = ROOT / "scripts" / "make_molecules.py"
    spec = importlib.util.spec_from_file_location("make_molecules", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)  # ase and rdkit are only imported when it runs
    made = {name: (charge, spin) for name, _, charge, spin, _ in script.G2}
    made.update({name: (None, spin) for name, _, spin, _ in script.RDKIT})
    assert sorted(made) == SHIPPED
    for name, (charge, spin) in made.items():
        _, file_charge, file_spin, _, _ = read_header(name)
        assert file_spin == spin, name
        if charge is not None:
            assert file_charge == charge, name


@pytest.mark.parametrize("name, charge_spin", sorted(CHARGE_SPIN.items()))
def test_known_charge_and_spin(name, charge_spin):
    mol = load(name)
    assert (mol.charge, mol.spin) == charge_spin


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_molecule(name):
    natm, charge, spin, symbols, ang = read_header(name)
    path = MOLDIR / f"{name}.xyz"
    mol = load(name)
    assert mol.natm == natm
    assert list(mol.symbols) == symbols
    assert (mol.charge, mol.spin) == (charge, spin)
    assert mol.nelectron == sum(mol.atomic_numbers) - charge
    assert (mol.nelectron - mol.spin) % 2 == 0
    na, nb = mol.nelec
    assert na + nb == mol.nelectron and na - nb == spin and nb >= 0
    assert mol.comment.startswith(f"charge={charge} spin={spin} ")
    np.testing.assert_allclose(mol.coords_angstrom, ang, atol=1e-12, rtol=0)

    # same molecule by path, as str and as Path
    for geometry in (str(path), path):
        again = load(geometry)
        assert again.symbols == mol.symbols
        np.testing.assert_array_equal(again.coords, mol.coords)

    # PySCF reading the same file in Angstrom gives the same Bohr coordinates
    ref = pyscf_mol(str(path), "Angstrom", charge, spin)
    np.testing.assert_allclose(mol.coords, ref.atom_coords(), atol=1e-12, rtol=0)
    assert tuple(int(z) for z in ref.atom_charges()) == mol.atomic_numbers
    assert tuple(ref.nelec) == mol.nelec
    assert mol.energy_nuc() == pytest.approx(ref.energy_nuc(), abs=1e-10)

    # and a PySCF Mole built from our Bohr atoms is the same Mole
    ours = pyscf_mol(mol.to_pyscf_atom(), "Bohr", mol.charge, mol.spin)
    np.testing.assert_allclose(ours.atom_coords(), ref.atom_coords(), atol=1e-12, rtol=0)
    assert [ours.atom_pure_symbol(i) for i in range(ours.natm)] == list(mol.symbols)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_geometry_is_chemical(name):
    """Catches a file written in Bohr, or an atom lost far away: bonded, not overlapping."""
    mol = load(name)
    if mol.natm < 2:
        return
    d = np.linalg.norm(mol.coords[:, None] - mol.coords[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    assert d.min() > 1.3  # Bohr; the shortest bond, H2, is 1.39
    assert d.min(axis=1).max() < 3.5  # every atom has a neighbour (C-Cl is 3.36 Bohr)


@pytest.mark.parametrize("name", SHIPPED)
def test_xyz_round_trip(name, tmp_path):
    mol = load(name)
    out = tmp_path / f"{name}.xyz"
    mol.write_xyz(out)
    back = load(str(out))
    assert back.symbols == mol.symbols
    assert (back.charge, back.spin) == (mol.charge, mol.spin)
    assert back.comment == mol.comment
    np.testing.assert_allclose(back.coords, mol.coords, atol=1e-12, rtol=0)


# ------------------------------------------------------------------------- units and inputs
def test_bohr_constant_is_pyscfs():
    assert BOHR_ANGSTROM == nist.BOHR
    assert ANGSTROM_BOHR * BOHR_ANGSTROM == pytest.approx(1.0, abs=1e-15)


def test_round_trip_of_arbitrary_coordinates(tmp_path):
    rng = np.random.default_rng(7)
    coords = np.array([[0.0, 0.0, 0.0]] + [list(v) for v in rng.normal(size=(4, 3)) * 2.5])
    coords[1:] *= 2.0 / np.linalg.norm(coords[1:], axis=1, keepdims=True)  # C-H 2 Bohr
    mol = Molecule(("C", "H", "H", "H", "H"), coords, charge=1, spin=1, comment="CH4+ test")
    path = tmp_path / "ch4plus.xyz"
    mol.write_xyz(path)
    text = path.read_text()
    assert text.splitlines()[1] == "charge=1 spin=1 CH4+ test"
    back = Molecule.from_xyz(path)
    assert back.symbols == mol.symbols and (back.charge, back.spin) == (1, 1)
    np.testing.assert_allclose(back.coords, mol.coords, atol=1e-9, rtol=0)
    # a new comment replaces the old one, charge and spin stay
    assert mol.to_xyz("hello").splitlines()[1] == "charge=1 spin=1 hello"


def test_from_xyz_string_equals_file(tmp_path):
    path = tmp_path / "w.xyz"
    path.write_text(WATER_XYZ)
    a = Molecule.from_string(WATER_XYZ)
    b = Molecule.from_xyz(path)
    c = load(WATER_XYZ)
    for m in (a, b, c):
        assert m.symbols == ("O", "H", "H")
        assert (m.charge, m.spin) == (0, 0)
        np.testing.assert_allclose(m.coords, WATER_ANG * ANGSTROM_BOHR, atol=1e-14, rtol=0)
    np.testing.assert_allclose(a.coords, load("water").coords, atol=1e-14, rtol=0)


@pytest.mark.parametrize(
    "text",
    [
        "O 0 0 0.119262; H 0 0.763239 -0.477047; H 0 -0.763239 -0.477047",
        "O 0 0 0.119262\nH 0 0.763239 -0.477047\nH 0 -0.763239 -0.477047",
        "O, 0, 0, 0.119262; H, 0, 0.763239, -0.477047; H, 0, -0.763239, -0.477047",
        "o 0 0 0.119262; h1 0 0.763239 -0.477047; H2 0 -0.763239 -0.477047",
    ],
)
def test_from_pyscf_atom_string(text):
    mol = load(text)
    assert mol.symbols == ("O", "H", "H")
    np.testing.assert_allclose(mol.coords, WATER_ANG * ANGSTROM_BOHR, atol=1e-14, rtol=0)
    ref = pyscf_mol(text, "Angstrom", 0, 0)
    np.testing.assert_allclose(mol.coords, ref.atom_coords(), atol=1e-12, rtol=0)
    assert Molecule.from_string(text).symbols == mol.symbols


def test_from_atoms_list():
    atoms = [("O", WATER_ANG[0]), ("H", WATER_ANG[1]), ("H", WATER_ANG[2])]
    mol = Molecule.from_atoms(atoms)
    np.testing.assert_allclose(mol.coords, load("water").coords, atol=1e-14, rtol=0)
    bohr = Molecule.from_atoms(mol.to_pyscf_atom(), unit="bohr")
    np.testing.assert_array_equal(bohr.coords, mol.coords)


def test_bohr_versus_angstrom():
    text = "H 0 0 0; H 0 0 1.4"
    bohr = load(text, unit="bohr")
    ang = load(text, unit="angstrom")
    default = load(text)
    np.testing.assert_array_equal(bohr.coords[1], [0.0, 0.0, 1.4])
    assert ang.coords[1, 2] == pytest.approx(1.4 / BOHR_ANGSTROM, rel=1e-15)
    np.testing.assert_array_equal(default.coords, ang.coords)
    np.testing.assert_allclose(ang.coords_angstrom, bohr.coords, atol=1e-15)
    assert bohr.energy_nuc() == pytest.approx(1 / 1.4, rel=1e-14)
    # the same file read in Bohr is scaled by exactly the conversion factor
    water_b = load("water", unit="bohr")
    np.testing.assert_allclose(water_b.coords, WATER_ANG, atol=1e-14, rtol=0)
    ref = pyscf_mol(str(MOLDIR / "water.xyz"), "Bohr", 0, 0)
    np.testing.assert_allclose(water_b.coords, ref.atom_coords(), atol=1e-12, rtol=0)
    # with_coords: Bohr by default, Angstrom on request
    moved = bohr.with_coords([[0, 0, 0], [0, 0, 0.74]], unit="angstrom")
    assert moved.coords[1, 2] == pytest.approx(0.74 * ANGSTROM_BOHR, rel=1e-15)
    assert bohr.with_coords(moved.coords).coords[1, 2] == moved.coords[1, 2]


def test_explicit_charge_and_spin_override_comment():
    mol = load("hydroxide", charge=0, spin=1)
    assert (mol.charge, mol.spin) == (0, 1)
    assert load("hydroxide").charge == -1
    mol = load("O 0 0 0; H 0 0 0.97", charge=-1)
    assert (mol.charge, mol.spin, mol.nelectron) == (-1, 0, 10)
    assert load(WATER_XYZ.replace("charge=0 spin=0", "charge=2 spin=2")).nelec == (5, 3)


def test_molecule_is_immutable():
    mol = load("water")
    with pytest.raises(ValueError):
        mol.coords[0, 0] = 1.0
    with pytest.raises(AttributeError):
        mol.charge = 1


def test_repr_and_symbols_are_normalised():
    mol = load("cl 0 0 0; H 0 0 1.27")
    assert mol.symbols == ("Cl", "H")
    assert mol.atomic_numbers == (17, 1)
    assert repr(load("water")) == "Molecule(OH2, charge=0, spin=0)"


# ------------------------------------------------------------------------- errors
def write(tmp_path, text, name="bad.xyz"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_unknown_element(tmp_path):
    with pytest.raises(ValueError, match="unknown element 'Xx'"):
        load("Xx 0 0 0; H 0 0 1")
    with pytest.raises(ValueError, match="unknown element 'Q'"):
        load(write(tmp_path, "2\n\nQ 0 0 0\nH 0 0 1\n"))


def test_wrong_atom_count(tmp_path):
    with pytest.raises(ValueError, match="atom count says 4 but 3 atom lines"):
        load(write(tmp_path, WATER_XYZ.replace("3", "4", 1)))
    with pytest.raises(ValueError, match="atom count says 2 but 3 atom lines"):
        load(write(tmp_path, WATER_XYZ.replace("3", "2", 1)))
    with pytest.raises(ValueError, match="atom count says 4 but 3 atom lines"):
        Molecule.from_string(WATER_XYZ.replace("3", "4", 1))


def test_non_numeric_field(tmp_path):
    with pytest.raises(ValueError, match="non-numeric coordinate"):
        load(write(tmp_path, WATER_XYZ.replace("0.763239", "0.76x3239", 1)))
    with pytest.raises(ValueError, match="first line must be the atom count"):
        load(write(tmp_path, WATER_XYZ.replace("3", "three", 1)))
    with pytest.raises(ValueError, match="non-numeric coordinate"):
        load("O 0 0 zero; H 0 0 1; H 0 1 0")
    with pytest.raises(ValueError, match="must be 'SYMBOL x y z'"):
        load(write(tmp_path, "1\n\nHe 0 0\n"))
    with pytest.raises(ValueError, match="finite"):
        load("H 0 0 nan; H 0 0 1")


def test_atoms_too_close():
    d = MIN_DISTANCE
    assert d == 0.1
    with pytest.raises(ValueError, match=r"Bohr apart \(minimum 0.1 Bohr\)"):
        load(f"He 0 0 0; He 0 0 {0.999 * d}", unit="bohr")
    with pytest.raises(ValueError, match="atoms 0 \\(O\\) and 2 \\(H\\)"):
        load("O 0 0 0; H 0 0.76 0.59; H 0 0 0.05")  # 0.0945 Bohr
    assert load(f"He 0 0 0; He 0 0 {1.001 * d}", unit="bohr").natm == 2


@pytest.mark.parametrize(
    "geometry, charge, spin, message",
    [
        ("O 0 0 0; H 0 0 0.97", 0, 0, "parity"),  # OH radical as a singlet
        ("H 0 0 0; H 0 0 0.74", 0, 1, "parity"),
        ("O 0 0 0; O 0 0 1.2", 0, 3, "not 2S\\+1"),  # multiplicity given as spin
        ("H 0 0 0", 2, 0, "leaves -1 electrons"),
        ("H 0 0 0; H 0 0 0.74", 3, 1, "leaves -1 electrons"),
        ("H 0 0 0; H 0 0 0.74", 0, 4, "exceeds the number of electrons"),
        ("He 0 0 0", -2, 6, "exceeds the number of electrons"),
        ("H 0 0 0; H 0 0 0.74", 0, -2, "must be >= 0"),
    ],
)
def test_impossible_charge_spin(geometry, charge, spin, message):
    with pytest.raises(ValueError, match=message):
        load(geometry, charge=charge, spin=spin)


def test_impossible_charge_spin_in_comment(tmp_path):
    with pytest.raises(ValueError, match="parity"):
        load(write(tmp_path, WATER_XYZ.replace("spin=0", "spin=1")))
    with pytest.raises(ValueError, match="parity"):
        load(WATER_XYZ.replace("charge=0", "charge=-1"))


def test_bad_charge_spin_types_and_units():
    with pytest.raises(ValueError, match="spin must be an integer"):
        load("H 0 0 0; H 0 0 0.74", spin=0.5)
    with pytest.raises(ValueError, match="unknown unit 'nm'"):
        load("H 0 0 0; H 0 0 0.74", unit="nm")


def test_nonexistent_file(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        load(str(tmp_path / "missing.xyz"))
    with pytest.raises(ValueError, match="no such file"):
        load("does_not_exist.xyz")
    with pytest.raises(ValueError, match="cannot read"):
        Molecule.from_xyz(tmp_path / "missing.xyz")
    with pytest.raises(ValueError, match="neither a file nor a shipped molecule"):
        load("unobtainium")


# ------------------------------------------------------------------------- regressions
# Defects found in dftad/molecule.py during review, fixed; these keep them fixed.


def test_xyz_string_with_leading_newline():
    mol = load("\n" + WATER_XYZ)
    assert mol.symbols == ("O", "H", "H")


def test_negative_spin_in_comment_is_an_error():
    with pytest.raises(ValueError, match="must be >= 0"):
        load("2\ncharge=0 spin=-2\nO 0 0 0\nO 0 0 1.2\n")


def test_plus_signed_charge_in_comment():
    mol = load(WATER_XYZ.replace("charge=0", "charge=+2"))
    assert mol.charge == 2


def test_constructor_copies_coordinates():
    coords = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.4]])
    mol = Molecule(("H", "H"), coords)
    coords[1, 2] = 0.0  # the caller's array stays the caller's
    assert mol.coords[1, 2] == 1.4


def test_baker_set_is_shipped_whole():
    """molecules/baker/: Baker's 30 starting geometries load as neutral singlets, each with the
    RHF/STO-3G energy its source lists (scripts/make_baker.py writes them)."""
    files = sorted((MOLDIR / "baker").glob("*.xyz"))
    assert [f.name[:2] for f in files] == [f"{i:02d}" for i in range(1, 31)]
    for f in files:
        mol = load(str(f))
        assert mol.charge == 0 and mol.spin == 0 and mol.nelectron % 2 == 0
        assert -1000.0 < float(mol.comment.split()[-1]) < -39.0
    assert "no licence" in (MOLDIR / "baker" / "README.md").read_text()
