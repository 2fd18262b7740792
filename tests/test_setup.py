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
