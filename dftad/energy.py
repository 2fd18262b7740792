"""Kohn-Sham / Hartree-Fock energies built from a setup.

:func:`build` does the Python-side setup once per molecule *kind* (basis, screening plans, grid
layout, functional, electron counts) and returns a :class:`Setup` pytree. :func:`kernel` is the
pure JAX function of ``(setup, coords)`` that computes integrals, grid and AO values at ``coords``
(Bohr) and runs the SCF; it is jit-compiled once per setup and re-used for any geometry.

Energy expression (restricted; D = total density, K_tot = hyb K + (alpha - hyb) K_LR(omega),
PySCF's convention for (range-separated) hybrids; Hartree-Fock is hyb = alpha = 1, no E_xc):

    E = sum D h + 1/2 sum D J[D] - 1/4 sum D K_tot[D] + E_xc[D] + E_nuc
    F = h + J[D] - 1/2 K_tot[D] + V_xc[D]

Unrestricted: J from D_a + D_b, exchange per spin with weight 1/2 in the energy and 1 in F_s.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import guess, implicit, jk, newton, numint, scf
from .basis import Basis
from .grid import Grid
from .integrals import one_electron, two_electron
from .molecule import Molecule
from .xc import parse_xc
from .xc.functional import Functional

INCORE_BYTES = 4 * 2**30
"""Largest full ERI tensor (bytes) kept in memory before density fitting takes over."""


@jax.tree_util.register_pytree_node_class
@dataclasses.dataclass(eq=False)
class Setup:
    """Everything fixed for one kind of calculation; arrays are pytree children (traced)."""

    basis: Basis
    charges: jax.Array
    xc: Functional | None  # None: Hartree-Fock
    plan: two_electron.EriPlan | None  # incore 4-centre ERIs
    aux: Basis | None  # density fitting
    plan3c: two_electron.EriPlan | None
    plan2c: two_electron.EriPlan | None
    # static
    grid: Grid | None
    nocc: int | tuple
    options: scf.SCFOptions
    block_size: int
    xc_name: str
    basis_name: str
    auxbasis_name: str | None
    exact_exchange: bool  # any exact exchange (decided at setup, static)
    init_guess: str = "sad"  # "sad" or "core"
    atomic_numbers: tuple = ()

    def tree_flatten(self):
        children = (self.basis, self.charges, self.xc, self.plan, self.aux, self.plan3c, self.plan2c)
        aux = (self.grid, self.nocc, self.options, self.block_size, self.xc_name, self.basis_name,
               self.auxbasis_name, self.exact_exchange, self.init_guess, self.atomic_numbers)
        return children, aux

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(*children, *aux)

    @property
    def restricted(self) -> bool:
        return not isinstance(self.nocc, tuple)

    @property
    def density_fitting(self) -> bool:
        return self.aux is not None

    @property
    def nao(self) -> int:
        return self.basis.nao


def build(
    mol: Molecule,
    basis: str = "def2-svp",
    xc: str = "b3lyp",
    grid_level: int = 3,
    density_fit: bool | None = None,
    auxbasis: str | None = None,
    unrestricted: bool | None = None,
    block_size: int = 4096,
    init_guess: str = "sad",
    **scf_options,
) -> Setup:
    """Set up a calculation. ``xc="hf"`` is Hartree-Fock; ``unrestricted`` defaults to
    ``mol.spin != 0``; ``density_fit=None`` picks density fitting when the incore ERI tensor
    would exceed :data:`INCORE_BYTES`."""
    bas = Basis.build(mol, basis)
    coords = jnp.asarray(mol.coords)
    xc_name = str(xc).lower()
    functional = None if xc_name == "hf" else parse_xc(xc_name)
    grid = Grid.build(mol, level=grid_level) if functional is not None else None
    if unrestricted is None:
        unrestricted = mol.spin != 0
    if not unrestricted and mol.spin != 0:
        raise ValueError(f"a restricted calculation needs spin 0, got spin {mol.spin}")
    na, nb = mol.nelec
    if max(na, nb) > bas.nao:
        raise ValueError(f"{max(na, nb)} electrons of one spin do not fit in {bas.nao} orbitals")
    nocc = (na, nb) if unrestricted else na
    if density_fit is None:
        density_fit = 8 * bas.nao**4 > INCORE_BYTES
    plan = aux = plan3c = plan2c = None
    if density_fit:
        if auxbasis is None:
            auxbasis = _default_auxbasis(mol, basis, functional is None or functional.is_hybrid)
        aux = Basis.build(mol, auxbasis)
        plan3c = two_electron.build_plan(bas, coords, aux, kind="3c")
        plan2c = two_electron.build_plan(bas, coords, aux, kind="2c")
    else:
        plan = two_electron.build_plan(bas, coords)
    options = scf.SCFOptions(**scf_options)
    charges = jnp.asarray(mol.atomic_numbers, dtype=jnp.float64)
    exact_exchange = functional is None or functional.is_hybrid
    if init_guess not in ("sad", "core"):
        raise ValueError(f"init_guess must be 'sad' or 'core', got {init_guess!r}")
    return Setup(bas, charges, functional, plan, aux, plan3c, plan2c, grid, nocc, options,
                 block_size, xc_name, str(basis), auxbasis, exact_exchange, init_guess,
                 tuple(mol.atomic_numbers))


def _default_auxbasis(mol: Molecule, basis: str, exact_exchange: bool = True) -> str:
    """The auxiliary basis PySCF's ``density_fit()`` uses for ``basis``: its predefined fitting
    set for the functional (``df.addons.predefined_auxbasis``: JK fitting with exact exchange, J
    fitting for a pure functional, e.g. def2-universal-jfit for def2 bases) and, where there is
    none (STO-nG or Pople bases with a pure functional), the JK-fitting default of
    ``make_auxbasis`` that PySCF's DF object falls back to."""
    from pyscf import df

    from .basis import _pyscf_mole

    pmol = _pyscf_mole(mol, basis, False)
    xc = "HF" if exact_exchange else "LDA"  # PySCF looks only at whether xc is hybrid
    aux = df.addons.predefined_auxbasis(pmol, basis, xc) or df.addons.make_auxbasis(pmol)
    names = list(aux.values()) if isinstance(aux, dict) else [aux]
    if not all(isinstance(n, str) for n in names) or len(set(names)) != 1:
        raise ValueError(f"no single auxiliary basis name for {basis!r}: give auxbasis=")
    return names[0]


def energy_nuc(coords, charges):
    """Nuclear repulsion sum_{A<B} Z_A Z_B / R_AB (Hartree), differentiable (no NaN at i == j)."""
    n = coords.shape[0]
    d = coords[:, None, :] - coords[None, :, :]
    off = ~np.eye(n, dtype=bool)
    r = jnp.sqrt(jnp.where(off[..., None], d, 1.0).__pow__(2).sum(-1))
    return 0.5 * jnp.sum(jnp.where(off, charges[:, None] * charges[None, :] / r, 0.0))


class Integrals(NamedTuple):
    """Geometry-dependent pieces of the Hamiltonian."""

    s1e: jax.Array
    h1e: jax.Array
    kin: jax.Array
    v_per_nucleus: jax.Array  # (natm, nao, nao): attraction to each nucleus alone
    eri: jax.Array | None
    eri_lr: jax.Array | None
    cderi: jax.Array | None
    cderi_lr: jax.Array | None
    grid_ao: numint.GridAO | None
    e_nuc: jax.Array


def incore_eri(setup: Setup, coords):
    """(eri, eri_lr): the (nao,)*4 Coulomb tensor and, for range-separated functionals, the
    erf-attenuated one (else None)."""
    return _eri_tensors(setup, _eri_blocks(setup, coords))


def _eri_tensors(setup: Setup, blocks):
    """The (nao,)*4 tensors of :func:`_eri_blocks`' output."""
    plan, basis = setup.plan, setup.basis
    return tuple(None if b is None else
                 two_electron.unpack_s8(two_electron.pack_s8(plan, basis, b), basis.nao)
                 for b in blocks)


def integrals(setup: Setup, coords, field=None, with_eri: bool = True,
              with_grid: bool = True) -> Integrals:
    """Overlap, core Hamiltonian, Coulomb integrals, grid and AO values at ``coords`` (Bohr).

    ``with_eri=False`` leaves out the incore 4-centre tensors (``eri``, ``eri_lr`` are None; the
    forces get their two-electron part from :func:`two_electron_energy` instead);
    ``with_grid=False`` the grid AO values (``grid_ao`` is None; the forces get E_xc from
    :func:`exc_direct` instead).

    ``field``: optional uniform electric field F (a.u., 3-vector, origin at 0), added as
    h += F . r for the electrons and E_nuc -= F . sum_A Z_A R_A (PySCF's finite-field sign), so
    that the dipole moment is mu = -dE/dF."""
    bas = setup.basis
    f = setup.xc
    need_lr = f is not None and f.range_separated
    omega = f.omega if need_lr else None
    eri = eri_lr = cderi = cderi_lr = None
    if setup.density_fitting:
        int3 = two_electron.int3c2e(setup.plan3c, bas, setup.aux, coords)
        int2 = two_electron.int2c2e(setup.plan2c, setup.aux, coords)
        cderi = jk.cderi(int3, int2)
        if need_lr:
            cderi_lr = jk.cderi(
                two_electron.int3c2e(setup.plan3c, bas, setup.aux, coords, omega),
                two_electron.int2c2e(setup.plan2c, setup.aux, coords, omega),
            )
    elif with_eri:
        eri, eri_lr = incore_eri(setup, coords)
    grid_ao = _grid_ao(setup, coords) if f is not None and with_grid else None
    kin = one_electron.kinetic(bas, coords)
    # V = sum_C V_C is linear in the charges: one vmapped evaluation gives every nucleus' share
    # (used by the SAD guess) and, summed, the nuclear attraction.
    v_per_nucleus = jax.vmap(lambda q: one_electron.nuclear(bas, coords, q))(jnp.diag(setup.charges))
    h1e = kin + jnp.sum(v_per_nucleus, axis=0)
    e_nuc = energy_nuc(coords, setup.charges)
    if field is not None:
        h1e = h1e + jnp.einsum("x,xij->ij", field, one_electron.multipole(bas, coords, 1))
        e_nuc = e_nuc - jnp.dot(field, setup.charges @ coords)
    return Integrals(
        s1e=one_electron.overlap(bas, coords),
        h1e=h1e,
        kin=kin,
        v_per_nucleus=v_per_nucleus,
        eri=eri,
        eri_lr=eri_lr,
        cderi=cderi,
        cderi_lr=cderi_lr,
        grid_ao=grid_ao,
        e_nuc=e_nuc,
    )


def _grid_ao(setup: Setup, coords) -> numint.GridAO:
    points, weights = setup.grid.points(coords)
    return numint.ao_blocks(setup.basis, coords, points, weights, setup.xc.family,
                            setup.block_size)


def exc_direct(setup: Setup, coords, dm, xc_params=None):
    """E_xc of ``dm`` at ``coords`` with the grid's AO values evaluated block by block inside
    the integration (:func:`numint.exc_direct`): its gradient (grid response included) keeps
    nothing grid-sized, unlike differentiating through :attr:`Integrals.grid_ao`."""
    f = setup.xc
    if f is None:
        return jnp.zeros(())
    points, weights = setup.grid.points(coords)
    return numint.exc_direct(f, f.params if xc_params is None else xc_params, setup.basis,
                             coords, points, weights, dm, setup.block_size)


class Components(NamedTuple):
    """Energy components (Hartree)."""

    e_one: jax.Array  # sum D h
    e_coul: jax.Array  # 1/2 sum D J
    e_xc: jax.Array  # semilocal XC
    e_exx: jax.Array  # exact exchange
    e_nuc: jax.Array


def _coulomb(ints: Integrals, dm):
    if ints.cderi is not None:
        return jk.get_jk_df(ints.cderi, dm, with_k=False)[0]
    return jk.get_jk_incore(ints.eri, dm, with_k=False)[0]


def _exchange(ints: Integrals, dm, lr: bool = False):
    if ints.cderi is not None:
        return jk.get_jk_df(ints.cderi_lr if lr else ints.cderi, dm, with_j=False)[1]
    return jk.get_jk_incore(ints.eri_lr if lr else ints.eri, dm, with_j=False)[1]


def _exchange_weights(setup: Setup, xc_params):
    """(with_k, range_separated, hyb, alpha): K_tot = hyb K + (alpha - hyb) K_LR(omega)."""
    f = setup.xc
    if f is None:
        return True, False, 1.0, 1.0
    return setup.exact_exchange, f.range_separated, xc_params["alpha"] + xc_params["beta"], xc_params["alpha"]


def two_electron_energy(setup: Setup, coords, dm, xc_params=None):
    """E_coul + E_exx of ``dm`` straight from the incore plan's shell quartets
    (:func:`~dftad.integrals.two_electron.eri_energy`), without the (nao,)*4 tensor: what the
    analytic gradient differentiates. Equals ``e_coul + e_exx`` of :func:`hamiltonian`."""
    return _blocks_two_electron_energy(setup, *_eri_blocks(setup, coords), dm, xc_params)


def _eri_blocks(setup: Setup, coords):
    """(blocks, blocks_lr): the incore plan's quartet-class blocks, and the erf-attenuated ones
    for a range-separated functional (else None)."""
    f = setup.xc
    blocks = two_electron.eri_blocks(setup.plan, setup.basis, coords)
    blocks_lr = None
    if f is not None and f.range_separated:
        blocks_lr = two_electron.eri_blocks(setup.plan, setup.basis, coords, f.omega)
    return blocks, blocks_lr


def _blocks_two_electron_energy(setup: Setup, blocks, blocks_lr, dm, xc_params=None):
    """:func:`two_electron_energy` from precomputed :func:`_eri_blocks`."""
    f = setup.xc
    if f is not None and xc_params is None:
        xc_params = f.params
    with_k, rsh, hyb, alpha = _exchange_weights(setup, xc_params)
    kf = 0.5 if setup.restricted else 1.0
    dm_tot = dm if setup.restricted else dm[0] + dm[1]
    plan, basis = setup.plan, setup.basis
    e = two_electron.blocks_energy(plan, basis, blocks, dm_tot, dm if with_k else None,
                                   0.5 * kf * hyb)
    if with_k and rsh:
        e = e + two_electron.blocks_energy(plan, basis, blocks_lr, None, dm,
                                           0.5 * kf * (alpha - hyb))
    return e


def hamiltonian(setup: Setup, ints: Integrals, xc_params=None):
    """``energy_fn(dm) -> (e_tot, fock)`` and ``components(dm) -> Components``.

    ``components`` evaluates E_xc without its potential (cheaper, and what forces differentiate);
    ``sum(components(dm)) == energy_fn(dm)[0]``."""
    f = setup.xc
    if f is not None and xc_params is None:
        xc_params = f.params
    with_k, rsh, hyb, alpha = _exchange_weights(setup, xc_params)
    restricted = setup.restricted
    kf = 0.5 if restricted else 1.0  # exchange weight in the Fock matrix

    def coulomb_exchange(dm):
        dm_tot = dm if restricted else dm[0] + dm[1]
        if ints.eri is None and ints.cderi is None:  # integrals(with_eri=False): no J/K terms
            return dm_tot, jnp.zeros_like(dm_tot), None
        vj = _coulomb(ints, dm_tot)
        vk_tot = None
        if with_k:
            vk_tot = hyb * _exchange(ints, dm)
            if rsh:
                vk_tot = vk_tot + (alpha - hyb) * _exchange(ints, dm, lr=True)
        return dm_tot, vj, vk_tot

    def assemble(dm, dm_tot, vj, vk_tot, exc):
        exx = jnp.zeros(()) if vk_tot is None else -0.5 * kf * jnp.sum(dm * vk_tot)
        return Components(jnp.sum(dm_tot * ints.h1e), 0.5 * jnp.sum(dm_tot * vj),
                          jnp.asarray(exc, dtype=jnp.float64), exx, ints.e_nuc)

    def components(dm):
        dm_tot, vj, vk_tot = coulomb_exchange(dm)
        # integrals(with_grid=False): no E_xc term here (see exc_direct)
        exc = 0.0 if f is None or ints.grid_ao is None else numint.exc_only(f, xc_params, ints.grid_ao, dm)
        return assemble(dm, dm_tot, vj, vk_tot, exc)

    def energy_fn(dm):
        dm_tot, vj, vk_tot = coulomb_exchange(dm)
        exc, vxc = (0.0, 0.0) if f is None else numint.exc_vxc(f, xc_params, ints.grid_ao, dm)
        fock = ints.h1e + vj + vxc
        if vk_tot is not None:
            fock = fock - kf * vk_tot
        return sum(assemble(dm, dm_tot, vj, vk_tot, exc)), fock

    return energy_fn, components


class Result(NamedTuple):
    """SCF result plus energy components (and forces, -dE/dR in Hartree/Bohr, when asked)."""

    scf: scf.SCFResult
    components: Components
    forces: jax.Array | None = None

    @property
    def e_tot(self):
        return self.scf.e_tot

    @property
    def converged(self):
        return self.scf.converged


def kernel(setup: Setup, coords, xc_params=None, dm0=None, field=None) -> Result:
    """Run the SCF at ``coords`` (Bohr). Pure JAX: wrap in ``jax.jit``.

    Differentiable in ``coords``, ``xc_params``, ``field`` and the setup's basis exponents, in
    forward and reverse mode and to second order: the density is differentiated at the SCF fixed
    point (:mod:`dftad.implicit`), never through the iterations. ``scf.mo_coeff`` carries no
    derivative (it is gauge dependent); ``e_tot``, ``dm``, ``fock`` and ``mo_energy`` do."""
    return kernel_from_integrals(setup, integrals(setup, coords, field), xc_params, dm0)


def kernel_from_integrals(setup: Setup, ints: Integrals, xc_params=None, dm0=None) -> Result:
    """:func:`kernel`'s SCF on precomputed :class:`Integrals` (differentiable in them and in
    ``xc_params``). Lets several setups of one molecule and basis share one integral evaluation
    (other functionals, a restart after :func:`dftad.stability.follow`)."""
    energy_fn, components = hamiltonian(setup, ints, xc_params)
    if dm0 is None:
        dm0 = initial_guess(setup, ints)
    res = implicit.solve(energy_fn, ints.s1e, dm0, setup.nocc, setup.options)
    return Result(res, components(res.dm))


def second_order(setup: Setup, ints: Integrals, result: Result, xc_params=None) -> Result:
    """Continue ``result`` (an SCF that DIIS did not converge) with trust-region Newton steps on
    the orbital rotations (:func:`dftad.newton.solve`). Pure JAX; not differentiated implicitly
    (restart :func:`kernel` from its ``dm`` for derivatives: it converges in one cycle)."""
    energy_fn, components = hamiltonian(setup, ints, xc_params)
    res = newton.solve(energy_fn, ints.s1e, result.scf, setup.nocc, setup.options)
    return Result(res, components(res.dm))


_integrals_jit = jax.jit(integrals)
_second_order_jit = jax.jit(second_order)


def converge(setup: Setup, coords, result: Result, xc_params=None,
             ints: Integrals | None = None) -> Result:
    """``result`` if converged, else continued by :func:`second_order` (Python side: compiled
    only when needed). DIIS fails where the occupied set flips between (near-)degenerate orbitals
    or creeps along a soft mode the grid makes bumpy (UKS SCAN NO / def2-SVP: |[F,D]| ~ 5e-4
    after 100 cycles; eight Newton steps reach 2e-9). ``ints``: the integrals at ``coords`` if
    already computed."""
    if bool(result.converged):
        return result
    if ints is None:
        ints = _integrals_jit(setup, jnp.asarray(coords))
    return _second_order_jit(setup, ints, result, xc_params)


def energy_weighted_dm(dm, fock, restricted: bool):
    """W = sum_i n_i e_i C_i C_i^T, the Lagrange multiplier of the orthonormality constraint,
    written through the converged density so that it differentiates like it (Hessians):
    restricted W = D F D / 2 (n_i = 2), unrestricted W = D_a F_a D_a + D_b F_b D_b."""
    w = dm @ fock @ dm
    return 0.5 * w if restricted else w[0] + w[1]


def _lagrangian_ints(setup: Setup, ints: Integrals, dm, w, xc_params=None):
    """E[D] - sum W S from precomputed integrals (J/K terms only where ``ints`` has them)."""
    return sum(hamiltonian(setup, ints, xc_params)[1](dm)) - jnp.sum(w * ints.s1e)


def lagrangian(setup: Setup, coords, dm, w, xc_params=None):
    """E[D] - sum W S at fixed (D, W) as a function of ``coords``: its derivative is the total
    derivative of the converged energy (D variational, W the orthonormality multiplier).
    With incore integrals the two-electron part comes from :func:`two_electron_energy`, so no
    (nao,)*4 tensor or cotangent is formed; E_xc comes from :func:`exc_direct`, so no grid-sized
    one either."""
    direct = not setup.density_fitting
    ints = integrals(setup, coords, with_eri=not direct, with_grid=False)
    e = _lagrangian_ints(setup, ints, dm, w, xc_params) + exc_direct(setup, coords, dm, xc_params)
    if direct:
        e = e + two_electron_energy(setup, coords, dm, xc_params)
    return e


def nuclear_gradient(setup: Setup, coords, dm, w, xc_params=None):
    """dE/dR (Hartree/Bohr) at a converged density ``dm`` with energy-weighted density ``w``."""
    return jax.grad(lagrangian, argnums=1)(setup, coords, dm, w, xc_params)


def energy_and_forces(setup: Setup, coords, xc_params=None, dm0=None) -> Result:
    """:class:`Result` with ``forces`` = -dE/dR (Hartree/Bohr, (natm, 3)). Pure JAX (jit it).

    The energy is variational, so its gradient needs no density response:

        dE/dR = dE/dR|_D - sum_mn W_mn dS_mn/dR,

    evaluated as one reverse pass through the integrals (ERIs, grid with its weights, AO values:
    the grid response is included) at the converged D and W. Equals ``-jax.grad`` of
    :func:`kernel`'s ``e_tot`` (the implicit path) to the SCF convergence."""
    # One forward pass through the integrals serves the SCF and the reverse pass. The incore
    # 4-centre part is differentiated from the shell-quartet blocks directly (no nao^4
    # cotangent), and the same blocks, packed, give the SCF its (nao,)*4 tensor. E_xc is
    # differentiated with the AOs rematerialised per grid block (exc_direct): the SCF's AO
    # values are a constant here, so no grid-sized cotangent is formed.
    direct = not setup.density_fitting
    ints0, pullback = jax.vjp(lambda c: integrals(setup, c, with_eri=not direct, with_grid=False),
                              coords)
    ints = ints0
    if setup.xc is not None:
        ints = ints._replace(grid_ao=jax.lax.stop_gradient(_grid_ao(setup, coords)))
    if direct:
        blocks, eri_pullback = jax.vjp(lambda c: _eri_blocks(setup, c), coords)
        eri, eri_lr = jax.lax.stop_gradient(_eri_tensors(setup, blocks))
        ints = ints._replace(eri=eri, eri_lr=eri_lr)
    energy_fn, components = hamiltonian(setup, ints, xc_params)
    if dm0 is None:
        dm0 = initial_guess(setup, ints)
    res = jax.lax.stop_gradient(scf.solve(energy_fn, ints.s1e, dm0, setup.nocc, setup.options))
    w = energy_weighted_dm(res.dm, res.fock, setup.restricted)
    ints_bar = jax.grad(lambda i: _lagrangian_ints(setup, i, res.dm, w, xc_params))(ints0)
    (grad,) = pullback(ints_bar)
    grad = grad + jax.grad(exc_direct, argnums=1)(setup, coords, res.dm, xc_params)
    if direct:
        blocks_bar = jax.grad(lambda b: _blocks_two_electron_energy(setup, *b, res.dm, xc_params))(
            blocks)
        grad = grad + eri_pullback(blocks_bar)[0]
    return Result(res, components(res.dm), -grad)


def initial_guess(setup: Setup, ints: Integrals):
    """The setup's initial density (:mod:`dftad.guess`)."""
    if setup.init_guess == "core":
        return guess.core_guess(ints.h1e, ints.s1e, setup.nocc)
    if ints.eri is not None:
        def eri_block(i):
            return ints.eri[jnp.ix_(i, i, i, i)]
    else:
        def eri_block(i):
            b = ints.cderi[:, i[:, None], i[None, :]]
            return jnp.einsum("pij,pkl->ijkl", b, b)
    return guess.sad_guess(setup.basis.layout, setup.atomic_numbers, ints.s1e, ints.kin,
                           ints.v_per_nucleus, eri_block, setup.nocc)


_kernel_jit = jax.jit(kernel)
_forces_jit = jax.jit(energy_and_forces)


def run(mol: Molecule, basis="def2-svp", xc="b3lyp", forces: bool = False, **kwargs) -> Result:
    """Build and run in one call (Python API); ``forces=True`` adds ``result.forces``
    (Hartree/Bohr). An SCF that DIIS does not converge goes on with second-order steps
    (:func:`converge`); warns when it still did not converge. ``kwargs`` go to :func:`build`."""
    import warnings

    setup = build(mol, basis, xc, **kwargs)
    coords = jnp.asarray(mol.coords)
    res = (_forces_jit if forces else _kernel_jit)(setup, coords)
    if not bool(res.converged):
        res = converge(setup, coords, res)
        if forces and bool(res.converged):  # forces at the converged density (one SCF cycle)
            res = _forces_jit(setup, coords, None, res.scf.dm)
    if not bool(res.converged):
        warnings.warn(
            f"SCF did not converge in {int(res.scf.cycles)} cycles "
            f"(last dE {float(res.scf.e_change):.2e}, |[F,D]| {float(res.scf.grad_norm):.2e}); "
            "try level_shift=0.3, damp=0.5 or max_cycle=200",
            RuntimeWarning,
            stacklevel=2,
        )
    return res
