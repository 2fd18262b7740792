"""Datasets (dftad.dataset): the shipped W4-11 subset and every malformed input."""

import json

import numpy as np
import pytest

from dftad.dataset import load_dataset, parse_reaction


def test_shipped_w4_11_subset():
    """87 atomization energies of H, C, N, O, F molecules with their atoms, the fixed split."""
    d = load_dataset("molecules/w4-11")
    assert len(d.reactions) == 87
    assert {s: len(d.reactions_in(s)) for s in ("train", "validation", "test")} == {
        "train": 52, "validation": 17, "test": 18}
    ch4 = next(r for r in d.reactions if r.name == "ch4")
    assert ch4.species == ("ch4", "c", "h") and ch4.coefficients == (-1, 1, 4)
    assert ch4.reference == pytest.approx(420.420)
    # every reaction is an atomization: the atoms' counts balance the molecule's
    for r in d.reactions:
        mol = d.species[r.name]
        for s, c in zip(r.species[1:], r.coefficients[1:]):
            assert c == sum(sym == d.species[s].symbols[0] for sym in mol.symbols)
    assert d.species["c"].spin == 2 and d.species["o2"].spin == 2


def test_reaction_syntax():
    r = parse_reaction("$tmer {ch4,c,h}/$f  x -1 1 4 $w 420.420")
    assert (r.name, r.species, r.coefficients, r.reference) == ("ch4", ("ch4", "c", "h"),
                                                                (-1, 1, 4), 420.42)
    r = parse_reaction("$tmer a/$f b/$f x -1 1 $w -3.5")
    assert r.species == ("a", "b") and r.reference == -3.5


@pytest.mark.parametrize("line, message", [
    ("$tmer {a,b}/$f -1 1 $w 1.0", "no 'x'"),
    ("$tmer {a,b}/$f x -1 1 1.0", "COEFFICIENTS"),
    ("$tmer {a,b}/$f x -1 one $w 1.0", "integers"),
    ("$tmer {a,b}/$f x -1 $w 1.0", "2 species but 1"),
    ("$tmer {a,a}/$f x -1 1 $w 1.0", "twice"),
    ("$tmer {a,}/$f x -1 1 $w 1.0", "cannot read the species"),
])
def test_malformed_reactions(line, message):
    with pytest.raises(ValueError, match=message):
        parse_reaction(line)


def _folder(tmp_path, res, split=None, species=("a", "b")):
    (tmp_path / "species").mkdir()
    for s in species:
        (tmp_path / "species" / f"{s}.xyz").write_text("1\ncharge=0 spin=1\nH 0 0 0\n")
    (tmp_path / "reactions.res").write_text(res)
    if split is not None:
        (tmp_path / "split.txt").write_text(split)
    return tmp_path


@pytest.mark.parametrize("res, split, species, message", [
    ("# nothing\n", None, ("a",), "no reactions"),
    ("$tmer {a,c}/$f x -1 1 $w 1\n", None, ("a",), "needs species 'c'"),
    ("$tmer {a,b}/$f x -1 1 $w 1\n$tmer {a,b}/$f x -1 1 $w 2\n", None, ("a", "b"), "twice"),
    ("$tmer {a,b}/$f x -1 1 $w 1\n", "a training\n", ("a", "b"), "expected"),
    ("$tmer {a,b}/$f x -1 1 $w 1\n", "c test\n", ("a", "b"), "no reaction 'c'"),
    ("$tmer {a,b}/$f x -1 1 $w 1\n$tmer {b,a}/$f x -1 1 $w 1\n", "a test\n", ("a", "b"),
     "no split for b"),
])
def test_malformed_dataset_folders(tmp_path, res, split, species, message):
    with pytest.raises(ValueError, match=message):
        load_dataset(_folder(tmp_path, res, split, species))


def test_bad_species_file_names_the_file(tmp_path):
    folder = _folder(tmp_path, "$tmer {a,b}/$f x -1 1 $w 1\n")
    (folder / "species" / "b.xyz").write_text("1\ncharge=0 spin=0\nH 0 0 0\n")
    with pytest.raises(ValueError, match=r"b\.xyz"):
        load_dataset(folder)
    with pytest.raises(ValueError, match="does not exist"):
        load_dataset(tmp_path / "nowhere")


def test_references_load_and_are_checked(tmp_path):
    """references.json: energy, forces and density per species, each optional; the numbers
    come back as written (forces in atom order, the density matrix from its .npy file)."""
    folder = _folder(tmp_path, "$tmer {a,b}/$f x -1 2 $w 1\n")
    density = np.arange(4.0).reshape(2, 2)
    np.save(folder / "a.npy", density)
    (folder / "references.json").write_text(json.dumps({
        "a": {"energy": -0.5, "forces": [[0.0, 0.0, 0.01]],
              "density": {"file": "a.npy", "basis": "sto-3g"}},
        "b": {"energy": -0.49}}))
    refs = load_dataset(folder).references
    assert set(refs) == {"a", "b"} and refs["b"].forces is None and refs["b"].density is None
    assert refs["a"].energy == -0.5 and refs["a"].density_basis == "sto-3g"
    np.testing.assert_array_equal(refs["a"].forces, [[0.0, 0.0, 0.01]])
    np.testing.assert_array_equal(refs["a"].density, density)


@pytest.mark.parametrize("table, message", [
    ("[1, 2]", "expected an object"),
    ("{", "not valid JSON"),
    ('{"c": {"energy": 1.0}}', "no such species"),
    ('{"a": {"enrgy": 1.0}}', "expected some of"),
    ('{"a": {"energy": "x"}}', "energy must be a number"),
    ('{"a": {"energy": NaN}}', "energy must be a number"),
    ('{"a": {"forces": [[0, 0]]}}', "forces must be 1 rows of 3"),
    ('{"a": {"forces": [[0, 0, 0], [0, 0, 0]]}}', "forces must be 1 rows of 3"),
    ('{"a": {"density": "a.npy"}}', "density must be"),
    ('{"a": {"density": {"file": "none.npy", "basis": "sto-3g"}}}', "cannot read the density"),
])
def test_malformed_references(tmp_path, table, message):
    folder = _folder(tmp_path, "$tmer {a,b}/$f x -1 2 $w 1\n")
    (folder / "references.json").write_text(table)
    with pytest.raises(ValueError, match=message):
        load_dataset(folder)
