"""The Hamiltonian at a geometry: integrals, and the energy and Fock matrix of a density.

:func:`integrals` evaluates everything that depends on the nuclear coordinates (overlap, core
Hamiltonian, the two-electron tensors of the setup's :mod:`~dftad.jk` back end, grid and AO
values); :func:`hamiltonian` turns them into the functions the SCF solvers need.

Energy expression (restricted; D = total density, K_tot = hyb K + (alpha - hyb) K_LR(omega),
PySCF's convention for (range-separated) hybrids; Hartree-Fock is the functional with hyb =
alpha = 1 and no semilocal part):

    E = sum D h + 1/2 sum D J[D] - 1/4 sum D K_tot[D] + E_xc[D] + E_nuc
    F = h + J[D] - 1/2 K_tot[D] + V_xc[D]

Unrestricted: J from D_a + D_b, exchange per spin with weight 1/2 in the energy and 1 in F_s.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import jk, numint, scf
from .integrals import one_electron
from .occupation import total_density
from .setup import Setup


def energy_nuc(coords, charges, xp=jnp):
    """Nuclear repulsion sum_{A<B} Z_A Z_B / R_AB (Hartree), differentiable (no NaN at i == j);
    ``xp=numpy`` evaluates it on the host."""
    n = coords.shape[0]
    d = coords[:, None, :] - coords[None, :, :]
    off = ~np.eye(n, dtype=bool)
    r = xp.sqrt(xp.where(off[..., None], d, 1.0).__pow__(2).sum(-1))
    return 0.5 * xp.sum(xp.where(off, charges[:, None] * charges[None, :] / r, 0.0))


def xc_params_of(setup: Setup, xc_params=None):
    """``xc_params``, or the setup functional's own parameters."""
    return setup.xc.params if xc_params is None else xc_params


def exchange_operators(setup: Setup, params):
    """The two-electron operators and exact-exchange weights of the functional:
    ``(omegas, weights)``, omegas per operator (None: 1/r12; omega: erf(omega r12)/r12), weights
    per operator whose exchange enters K_tot = sum_i w_i K_i (empty without exact exchange)."""
    f = setup.xc
    if not f.is_hybrid:
        return (None,), ()
    hyb = params["alpha"] + params["beta"]
    if not f.range_separated:
        return (None,), (hyb,)
    return (None, params["omega"]), (hyb, params["alpha"] - hyb)


def host_exchange_operators(setup: Setup, xc_params=None):
    """:func:`exchange_operators` of NumPy copies of the parameters: the weights are host
    scalars, so that a driver on the Python side compiles no eager program for alpha + beta."""
    return exchange_operators(setup, jax.tree.map(np.asarray, xc_params_of(setup, xc_params)))


class OneElectron(NamedTuple):
    """Geometry-dependent one-electron matrices (Hartree, AO basis) and the energies of the
    nuclei alone: their repulsion and, with a D3 correction, the dispersion energy."""

    s1e: jax.Array
    h1e: jax.Array
    kin: jax.Array
    v_per_nucleus: jax.Array  # (natm, nao, nao): attraction to each nucleus alone
    e_nuc: jax.Array
    e_disp: jax.Array


def one_electron_part(setup: Setup, coords, field=None) -> OneElectron:
    """Overlap, kinetic, nuclear attraction (per nucleus and summed into h1e), E_nuc and
    E_disp (zero without a dispersion correction).

    ``field``: optional uniform electric field F (a.u., 3-vector, origin at 0), added as
    h += F . r for the electrons and E_nuc -= F . sum_A Z_A R_A (PySCF's finite-field sign), so
    that the dipole moment is mu = -dE/dF."""
    bas = setup.basis
    kin = one_electron.kinetic(bas, coords)
    # V = sum_C V_C is linear in the charges: one vmapped evaluation gives every nucleus' share
    # (used by the SAD guess) and, summed, the nuclear attraction.
    v_per_nucleus = jax.vmap(lambda q: one_electron.nuclear(bas, coords, q))(
        jnp.diag(setup.charges))
    h1e = kin + jnp.sum(v_per_nucleus, axis=0)
    e_nuc = energy_nuc(coords, setup.charges)
    if field is not None:
        h1e = h1e + jnp.einsum("x,xij->ij", field, one_electron.multipole(bas, coords, 1))
        e_nuc = e_nuc - jnp.dot(field, setup.charges @ coords)
    e_disp = jnp.zeros(()) if setup.disp is None else setup.disp.energy(coords)
    return OneElectron(one_electron.overlap(bas, coords), h1e, kin, v_per_nucleus, e_nuc,
                       e_disp)


class Integrals(NamedTuple):
    """Geometry-dependent pieces of the Hamiltonian: the one-electron part, the two-electron
    tensors of ``setup.jk`` (one per operator, :func:`exchange_operators`) and the AO values on
    the grid (None for a functional without semilocal part)."""

    s1e: jax.Array
    h1e: jax.Array
    kin: jax.Array
    v_per_nucleus: jax.Array
    e_nuc: jax.Array
    e_disp: jax.Array
    jk: tuple
    grid_ao: numint.GridAO | None


def integrals(setup: Setup, coords, field=None, xc_params=None) -> Integrals:
    """Everything the SCF needs at ``coords`` (Bohr); ``field`` as in
    :func:`one_electron_part`; the erf-attenuated tensors use ``xc_params``' omega."""
    omegas, _ = exchange_operators(setup, xc_params_of(setup, xc_params))
    tensors = setup.jk.tensors(setup.basis, setup.jk.factors(setup.basis, coords, omegas))
    ao = grid_ao(setup, coords) if setup.semilocal else None
    return Integrals(*one_electron_part(setup, coords, field), jk=tensors, grid_ao=ao)


def grid_ao(setup: Setup, coords) -> numint.GridAO:
    """AO values (and derivatives the functional needs) on the setup's grid at ``coords``."""
    points, weights = setup.grid.points(coords)
    return numint.ao_blocks(setup.basis, coords, points, weights, setup.xc.family,
                            setup.block_size)


def exc_direct(setup: Setup, coords, dm, xc_params=None):
    """E_xc of ``dm`` at ``coords`` with the grid's AO values evaluated block by block inside
    the integration (:func:`numint.exc_direct`): its gradient (grid response included) keeps
    nothing grid-sized, unlike differentiating through :attr:`Integrals.grid_ao`."""
    if not setup.semilocal:
        return jnp.zeros(())
    points, weights = setup.grid.points(coords)
    return numint.exc_direct(setup.xc, xc_params_of(setup, xc_params), setup.basis, coords,
                             points, weights, dm, setup.block_size)


def exc_gradient(setup: Setup, coords, dm, xc_params=None):
    """dE_xc/dR (natm, 3) at fixed ``dm``, grid response included: the gradient of
    :func:`exc_direct`, its reverse pass through the AOs written out
    (:func:`numint.exc_gradient`), the grid's (points and Becke weights) JAX's. Under forward
    mode (Hessians) it is ``jax.grad`` of :func:`exc_direct`, values and derivatives."""
    if not setup.semilocal:
        return jnp.zeros_like(coords)
    params = xc_params_of(setup, xc_params)

    def reference(coords, dm, params):
        return jax.grad(exc_direct, argnums=1)(setup, coords, dm, params)

    @jax.custom_jvp
    def written(coords, dm, params):
        (points, weights), grid_pullback = jax.vjp(setup.grid.points, coords)
        g, p_bar, w_bar = numint.exc_gradient(setup.xc, params, setup.basis, coords, points,
                                              weights, dm, setup.block_size)
        return g + grid_pullback((p_bar, w_bar))[0]

    @written.defjvp
    def _(primals, tangents):
        return jax.jvp(reference, primals, tangents)

    return written(coords, dm, params)


class Components(NamedTuple):
    """Energy components (Hartree)."""

    e_one: jax.Array  # sum D h
    e_coul: jax.Array  # 1/2 sum D J
    e_xc: jax.Array  # semilocal XC
    e_exx: jax.Array  # exact exchange
    e_nuc: jax.Array
    e_disp: jax.Array  # DFT-D3 (zero without)


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


def assemble(h1e, e_nuc, e_disp, dm, vj, vk, exc, vxc, kf):
    """``(Components, fock)`` of ``dm`` from its Coulomb ``vj`` (of the total density),
    exchange ``vk`` (K_tot, per spin channel), E_xc ``exc`` and V_xc ``vxc``; ``kf`` is the
    exchange weight per channel (1/2 restricted, 1 unrestricted)."""
    dm_tot = total_density(dm)
    e_coul, e_exx = jk.energy_terms(dm, dm_tot, vj, vk, kf)
    parts = Components(jnp.sum(dm_tot * h1e), e_coul, jnp.asarray(exc, dtype=jnp.float64), e_exx,
                       e_nuc, e_disp)
    return parts, h1e + vj + vxc - kf * vk


def hamiltonian(setup: Setup, ints: Integrals, xc_params=None):
    """``energy_fn(dm, orbs=None) -> (e_tot, fock)`` and ``components(dm) -> Components``.

    ``components`` evaluates E_xc without its potential (cheaper); ``sum(components(dm)) ==
    energy_fn(dm)[0]``. ``orbs``: None or the orbitals X that dm = X X^T is made of (the SCF's
    occupied orbitals, :func:`dftad.jk.orbitals_of`): the density-fitted exchange is then
    built through them (:func:`dftad.jk.exchange_df_occ`)."""
    f, occ = setup.xc, setup.occupation
    params = xc_params_of(setup, xc_params)
    _, weights = exchange_operators(setup, params)
    kf = 1.0 / occ.per_orbital  # exchange weight in the Fock matrix

    def parts(dm, exc, vxc, orbs=None):
        vj, vk = jk.coulomb_exchange(setup.jk, ints.jk, dm, occ.total(dm), weights, orbs)
        return assemble(ints.h1e, ints.e_nuc, ints.e_disp, dm, vj, vk, exc, vxc, kf)

    def components(dm):
        exc = numint.exc_only(f, params, ints.grid_ao, dm) if setup.semilocal else 0.0
        return parts(dm, exc, 0.0)[0]

    def energy_fn(dm, orbs=None):
        exc, vxc = numint.exc_vxc(f, params, ints.grid_ao, dm) if setup.semilocal else (0.0, 0.0)
        comps, fock = parts(dm, exc, vxc, orbs)
        return sum(comps), fock

    return energy_fn, components
