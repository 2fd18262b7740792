"""Setting up a calculation (:func:`dftad.build`): what it decides, and the bad input it
rejects with a clear ``ValueError`` before anything is compiled."""

import jax
import pytest

import dftad
from dftad import jk


def test_what_build_decides():
    water, oh = dftad.load("water"), dftad.load("hydroxyl_radical")
    s = dftad.build(water, "sto-3g", "hf")
    assert s.xc.family == "hf" and s.xc.is_hybrid and not s.semilocal and s.grid is None
    assert s.restricted and s.occupation.counts == (5,) and s.occupation.homo == 4
    assert isinstance(s.jk, jk.IncoreJK) and not s.density_fitting and s.disp is None
    u = dftad.build(oh, "sto-3g", "pbe", grid_level=1)
    assert not u.restricted and u.occupation.counts == (5, 4) and u.semilocal
    assert not u.xc.is_hybrid
    df = dftad.build(water, "def2-svp", "pbe", density_fit=True)
    assert isinstance(df.jk, jk.DFJK) and df.jk.auxbasis_name == "def2-universal-jfit"
    d3 = dftad.build(water, "sto-3g", "b3lyp-d3bj-atm", grid_level=1)
    assert set(d3.disp.params) == {"s6", "s8", "a1", "a2", "alp", "s9"}
    assert d3.xc.name == dftad.parse_xc("b3lyp").name


@pytest.mark.parametrize("basis,xc,opts", [
    ("sto-3g", "hf", {}),
    ("6-31g", "pbe", {"grid_level": 0, "density_fit": True}),
])
def test_a_setup_built_again_shares_the_compiled_programs(basis, xc, opts):
    """Two setups built alike have equal static structure (the ERI plan's pair sets compare by
    value), so a jitted function compiled for one serves the other: nothing compiles again."""
    mol = dftad.load("water")
    s1, s2 = (dftad.build(mol, basis, xc, **opts) for _ in range(2))
    assert jax.tree_util.tree_structure(s1) == jax.tree_util.tree_structure(s2)
    compiles = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda name, _, **kw: compiles.append(name)
        if name == "/jax/core/compile/backend_compile_duration" else None)
    # a function of its own: jax.jit(dftad.kernel) shares its program cache with every other
    # jax.jit(dftad.kernel) of the process, which an earlier test may have filled for this setup
    kernel = jax.jit(lambda setup, coords: dftad.kernel(setup, coords))
    e1 = float(kernel(s1, mol.coords).e_tot)
    assert compiles  # the first setup compiled
    compiles.clear()
    assert float(kernel(s2, mol.coords).e_tot) == e1
    assert not compiles


def test_setup_is_a_pytree_of_arrays():
    """Everything traced is an array (the layout, grid and options are static)."""
    setup = dftad.build(dftad.load("water"), "sto-3g", "b3lyp", grid_level=1)
    leaves = jax.tree_util.tree_leaves(setup)
    assert leaves and all(isinstance(x, jax.Array) for x in leaves)


@pytest.mark.parametrize("kwargs,message", [
    ({"xc": "nosuchfunctional"}, "nosuchfunctional"),
    ({"xc": "b3lyp", "unrestricted": False, "mol": "hydroxyl_radical"}, "restricted"),
    ({"xc": "b3lyp", "init_guess": "huckel"}, "init_guess"),
    ({"xc": "b3lyp-d3bj", "disp": "d3zero"}, "dispersion given twice"),
    ({"xc": "b3lyp", "atm": True}, "ATM"),
    ({"xc": "b3lyp", "disp": "d3cubic"}, "damping"),
    ({"xc": "r2scan", "disp": "d3zero"}, r"no D3\(0\) parameters"),
    ({"xc": "b3lyp", "basis": "no-such-basis"}, "no functions"),
    ({"xc": "b3lyp", "basis": "sto-3g", "mol": "Xe 0 0 0; Xe 0 0 4"}, "no functions"),
])
def test_bad_input_is_a_clear_error(kwargs, message):
    kwargs = dict(kwargs)
    mol = dftad.load(kwargs.pop("mol", "water"))
    basis = kwargs.pop("basis", "sto-3g")
    with pytest.raises(ValueError, match=message):
        dftad.build(mol, basis, **kwargs)


def test_too_many_electrons_for_the_basis():
    with pytest.raises(ValueError, match="do not fit"):
        dftad.build(dftad.load("He 0 0 0; He 0 0 3", charge=-2), "sto-3g", "hf")


def test_basis_is_kept_on_disk(tmp_path, monkeypatch):
    """With the on-disk cache on, a named basis is read from PySCF once per element and kept:
    a later build (PySCF's loader made to fail), also of another molecule with those elements,
    gives PySCF's shells bit for bit, spherical transforms included; a damaged file is read from
    PySCF again."""
    import numpy as np

    from dftad import basis as basis_mod
    from dftad import pieces
    from dftad.interop import pyscf as interop

    def arrays(b):
        return np.asarray(b.exponents), np.asarray(b.coefficients)

    methanol, water = dftad.load("methanol"), dftad.load("water")
    monkeypatch.setattr(pieces, "cache_dir", lambda: None)
    ref = {m: basis_mod.Basis.build(mol, "def2-tzvp") for m, mol in
           (("methanol", methanol), ("water", water))}  # cache off: PySCF's shells
    c2s_ref = basis_mod.cart2sph.__wrapped__(3)
    monkeypatch.setattr(pieces, "cache_dir", lambda: str(tmp_path))
    basis_mod.Basis.build(methanol, "def2-tzvp")  # read from PySCF, kept
    basis_mod.cart2sph.__wrapped__(3)
    read = interop.to_pyscf_mole

    def no_pyscf(*args, **kwargs):
        raise AssertionError("basis read from PySCF again")

    monkeypatch.setattr(interop, "to_pyscf_mole", no_pyscf)
    for m, mol in (("methanol", methanol), ("water", water)):
        kept = basis_mod.Basis.build(mol, "def2-tzvp")
        assert kept.layout == ref[m].layout
        for a, b in zip(arrays(kept), arrays(ref[m])):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(basis_mod.cart2sph.__wrapped__(3), c2s_ref)
    files = list(tmp_path.rglob("basis-*.npy"))
    assert len(files) == 3  # H, C, O
    for f in files:
        np.save(f, np.arange(5.0))  # a malformed record
    with pytest.raises(AssertionError, match="again"):
        basis_mod.Basis.build(water, "def2-tzvp")
    monkeypatch.setattr(interop, "to_pyscf_mole", read)
    for a, b in zip(arrays(basis_mod.Basis.build(water, "def2-tzvp")), arrays(ref["water"])):
        np.testing.assert_array_equal(a, b)
