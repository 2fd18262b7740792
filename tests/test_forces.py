"""Forces (-dE/dR) against PySCF's analytic gradients with grid response, and the variational
path against the implicit one.

Default suite: RHF, RKS (B3LYP) and UKS (PBE) on small bases; the matrix over functionals and
molecules is behind ``-m slow``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _checks import fd_directional
from _pyscf import converge, mean_field

import dftad
from dftad import energy, guess, hamiltonian

TOL = 2e-6  # Hartree/Bohr, the acceptance tolerance
GRID_LEVEL = 2
SCF_TIGHT = {"conv_tol": 1e-11, "conv_tol_grad": 1e-9}


def pyscf_gradient(mol, basis, xc, grid_level=GRID_LEVEL, auxbasis=None, dm0=None):
    """PySCF's analytic nuclear gradient (grid_response=True for DFT), Hartree/Bohr.

    ``auxbasis``: density fitting with that auxiliary basis (PySCF's DF gradient includes the
    response of the auxiliary functions, which move with their atoms).
    ``dm0``: start PySCF's SCF from this density (dftad's converged one, see
    :data:`SAME_STATE`) and check that PySCF stays there, so that both gradients belong to one
    electronic state."""
    mf = mean_field(mol, basis, xc, grid_level, auxbasis=auxbasis)
    mf.conv_tol = 1e-12
    mf.conv_tol_grad = 1e-8
    mf.max_cycle = 200
    mf = converge(mf, dm0)
    if dm0 is not None:  # a stationary point of PySCF's energy too: it did not move away
        assert np.abs(mf.make_rdm1() - dm0).max() < 1e-6
    g = mf.nuc_grad_method()
    if xc != "hf":
        g.grid_response = True
    return mf.e_tot, g.kernel()


SAME_STATE = {"hydroxyl_radical", "oxygen"}
"""Open shells with several SCF solutions; PySCF is started from dftad's density for these.

OH (2-Pi): the beta hole sits in one of two degenerate pi orbitals, and any orientation of it
about the bond axis is an SCF solution. The energy depends on that angle only through the grid's
anisotropy, which is not small: rotating one density about the axis on the level-2 grid moves
E by up to 1.5e-4 Ha with SCAN, ~1e-6 with the other functionals. Each code stops at its own
angle (UKS SCAN: dftad 1.7e-4 Ha above PySCF; PBE: 2.4e-8 below), and with LDA, B3LYP, PBE0
and CAM-B3LYP PySCF's DIIS creeps along this soft mode and its Newton fallback does not reach
conv_tol 1e-12 either.
O2 (3-Sigma-g-) UHF: dftad reaches an internally stable solution 3.8e-5 Ha below the internally
unstable one where PySCF's DIIS stops; the forces of the two states differ by 7e-3 Ha/Bohr.
In every case PySCF's energy at dftad's density equals dftad's and PySCF started there stays
there, so comparing forces at that one state is the fair test of the gradient."""


def dftad_forces(mol, basis, xc, **kw):
    setup = dftad.build(mol, basis, xc, grid_level=GRID_LEVEL, **SCF_TIGHT, **kw)
    res = jax.jit(dftad.energy_and_forces)(setup, jnp.asarray(mol.coords))
    assert bool(res.converged)
    return setup, res


CASES = [
    ("water", "sto-3g", "hf"),
    ("water", "6-31g", "b3lyp"),
    # UKS on a radical without a degenerate half-filled shell (OH's pi hole can settle in
    # different orientations in dftad and PySCF, see the slow matrix)
    ("methyl_radical", "sto-3g", "pbe"),
]
SLOW_CASES = [
    (name, "6-31g*", xc)
    for name in ("water", "ammonia", "hydroxyl_radical", "oxygen")
    for xc in ("hf", "lda,vwn", "pbe", "b3lyp", "pbe0", "scan", "camb3lyp")
]


@pytest.mark.parametrize("name,basis,xc", CASES + [pytest.param(*c, marks=pytest.mark.slow)
                                                   for c in SLOW_CASES])
def test_forces_match_pyscf(name, basis, xc):
    mol = dftad.load(name)
    _, res = dftad_forces(mol, basis, xc)
    dm0 = np.asarray(res.scf.dm) if name in SAME_STATE else None
    e_ref, g_ref = pyscf_gradient(mol, basis, xc, dm0=dm0)
    forces = np.asarray(res.forces)
    print(f"{name} {basis} {xc}: |dE| {abs(float(res.e_tot) - e_ref):.1e} Ha, "
          f"max |F + g_pyscf| {np.abs(forces + g_ref).max():.1e} Ha/Bohr")
    assert abs(float(res.e_tot) - e_ref) < 1e-8
    assert forces.shape == (mol.natm, 3)
    assert np.abs(forces + g_ref).max() < TOL, np.abs(forces + g_ref).max()
    # Newton's third law: no net force on a free molecule (translations are exact in dftad,
    # grid included)
    assert np.abs(forces.sum(axis=0)).max() < 1e-8


@pytest.mark.parametrize("name,method,damping", [
    ("water", "b3lyp-d3bj", "bj"),
    pytest.param("ammonia", "b3lyp-d3bj", "bj", marks=pytest.mark.slow),
    pytest.param("methane", "pbe0-d3zero-atm", "zero", marks=pytest.mark.slow),
])
def test_dispersion_corrected_forces(name, method, damping):
    """B3LYP-D3(BJ) on two molecules (and PBE0-D3(0) with the ATM term): energy and forces equal
    PySCF's for the functional plus the ``dftd3`` package's dispersion energy and gradient."""
    interface = pytest.importorskip("dftd3.interface")
    mol = dftad.load(name)
    _, res = dftad_forces(mol, "6-31g", method)
    xc = method.split("-")[0]
    atm = method.endswith("atm")
    param = (interface.RationalDampingParam if damping == "bj" else
             interface.ZeroDampingParam)(method=xc, atm=atm)
    d3 = interface.DispersionModel(np.asarray(mol.atomic_numbers), np.asarray(mol.coords))
    ref = d3.get_dispersion(param, grad=True)
    e_ref, g_ref = pyscf_gradient(mol, "6-31g", xc)
    assert abs(float(res.components.e_disp) - ref["energy"]) < 1e-10
    assert abs(float(res.e_tot) - (e_ref + ref["energy"])) < 1e-8
    assert np.abs(np.asarray(res.forces) + g_ref + ref["gradient"]).max() < TOL


@pytest.mark.slow
@pytest.mark.parametrize("xc", ["b3lyp", "camb3lyp"])
def test_density_fitting_forces_match_pyscf(xc):
    """RKS with density fitting (J and K from the same 3c/2c integrals): dftad
    differentiates the 3-centre and 2-centre integrals in the coordinates, so its forces include
    the auxiliary-basis response, as PySCF's DF gradient does (``auxbasis_response=True``).
    CAM-B3LYP: the long-range metric is singular and factorised by eigenvalues
    (:func:`dftad.jk.cderi`)."""
    mol = dftad.load("water")
    setup, res = dftad_forces(mol, "6-31g*", xc, density_fit=True)
    assert setup.density_fitting
    e_ref, g_ref = pyscf_gradient(mol, "6-31g*", xc, auxbasis=setup.jk.auxbasis_name)
    forces = np.asarray(res.forces)
    print(f"water 6-31g* {xc} DF ({setup.jk.auxbasis_name}): "
          f"|dE| {abs(float(res.e_tot) - e_ref):.1e}"
          f" Ha, max |F + g_pyscf| {np.abs(forces + g_ref).max():.1e} Ha/Bohr")
    assert abs(float(res.e_tot) - e_ref) < 1e-8
    assert np.abs(forces + g_ref).max() < TOL, np.abs(forces + g_ref).max()
    assert np.abs(forces.sum(axis=0)).max() < 1e-8


@pytest.mark.slow  # ~2.5 min (reverse mode through the implicit B3LYP SCF; test_implicit
# checks reverse-mode implicit gradients against finite differences in the default run)
def test_variational_forces_equal_implicit_gradient():
    """-grad of the implicit-SCF energy (reverse mode through custom_root, an adjoint linear
    response solve) equals the variational forces to the SCF convergence."""
    mol = dftad.load("water")
    setup, res = dftad_forces(mol, "sto-3g", "b3lyp")
    coords = jnp.asarray(mol.coords)
    g = jax.jit(jax.grad(lambda c: energy.kernel(setup, c).e_tot))(coords)
    assert np.abs(np.asarray(g) + np.asarray(res.forces)).max() < 1e-8


def test_forces_for_ten_geometries_compile_once():
    mol = dftad.load("water")
    setup = dftad.build(mol, "sto-3g", "hf", **SCF_TIGHT)
    fn = jax.jit(lambda s, c: dftad.energy_and_forces(s, c))  # a jit cache of its own
    rng = np.random.default_rng(0)
    out = []
    for _ in range(10):
        coords = jnp.asarray(mol.coords + 0.05 * rng.standard_normal(mol.coords.shape))
        res = fn(setup, coords)
        out.append(float(res.e_tot))
    assert fn._cache_size() == 1
    assert len(set(out)) == 10  # really different geometries


def test_forces_are_minus_energy_finite_difference():
    """Independent of PySCF: central differences of the converged energy (h = 1e-3 Bohr)."""
    mol = dftad.load("water")
    setup, res = dftad_forces(mol, "sto-3g", "hf")
    e_fn = jax.jit(lambda c: energy.kernel(setup, c).e_tot)
    coords = jnp.asarray(mol.coords)
    for atom, axis in [(0, 2), (1, 1), (2, 2)]:
        step = np.zeros((3, 3))
        step[atom, axis] = 1.0
        fd = fd_directional(e_fn, coords, step, h=1e-3)
        assert abs(-fd - float(res.forces[atom, axis])) < 1e-6


def _two_electron_energy(setup, coords, dm):
    """E_coul + E_exx as the forces take it: from the back end's factors (incore: the shell
    quartet blocks and their images, no (nao,)*4 tensor)."""
    omegas, weights = hamiltonian.exchange_operators(setup, setup.xc.params)
    occ = setup.occupation
    factors = setup.jk.factors(setup.basis, coords, omegas)
    return setup.jk.energy(setup.basis, factors, dm, occ.total(dm), weights, 1 / occ.per_orbital)


@pytest.mark.parametrize("name,xc", [("water", "hf"), ("hydroxyl_radical", "camb3lyp")])
def test_two_electron_energy_equals_coulomb_plus_exchange(name, xc):
    """The forces' two-electron energy (from shell quartets) equals e_coul + e_exx of the
    Hamiltonian (full tensor, J/K builds), restricted and unrestricted range-separated."""
    mol = dftad.load(name)
    setup = dftad.build(mol, "sto-3g", xc, grid_level=1)
    coords = jnp.asarray(mol.coords)
    ints = jax.jit(hamiltonian.integrals)(setup, coords)
    dm = jax.jit(guess.initial_guess)(setup, ints)
    comps = hamiltonian.hamiltonian(setup, ints)[1](dm)
    direct = jax.jit(_two_electron_energy)(setup, coords, dm)
    assert abs(float(direct) - float(comps.e_coul + comps.e_exx)) < 1e-10


@pytest.mark.parametrize("xc", ["camb3lyp", pytest.param("b3lyp", marks=pytest.mark.slow),
                                pytest.param("pbe", marks=pytest.mark.slow)])
def test_density_fitting_forces_in_parts_equal_the_whole_program(xc):
    """With density fitting, the forces the CLI and ``dftad.run`` compute (one program for the
    one-electron and XC terms, one per two-electron operator: both operators of CAM-B3LYP
    differentiated one after the other) equal the whole program's gradient of the same SCF
    (:func:`dftad.forces.gradient_at`) to 1e-10 Ha/Bohr."""
    mol = dftad.load("water")
    setup = dftad.build(mol, "sto-3g", xc, grid_level=1, density_fit=True)
    coords = jnp.asarray(mol.coords)
    res = jax.jit(energy.kernel)(setup, coords)
    got = dftad.forces.gradient_stepwise(setup, coords, res.scf)
    ref = np.asarray(jax.jit(dftad.forces.gradient_at)(setup, coords, res.scf))
    assert np.abs(got - ref).max() < 1e-10, np.abs(got - ref).max()
