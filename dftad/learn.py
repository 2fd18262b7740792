"""The energy of a molecule as a function of a learnable functional's parameters, and its
SCF-consistent gradient.

For a model theta -> functional (:mod:`dftad.xc.models`), E(theta) = E[D*(theta); theta] with
D* the converged SCF density. The energy is variational in D (dE/dD = 0 along every allowed
change of the density at convergence), so

    dE/dtheta = dE/dtheta |_(D = D*)        (Hellmann-Feynman: no density response needed)

exactly at the fixed point, whatever path the SCF took to it: the gradient costs one pass over
the grid and one exchange build, independent of the SCF cycles, and never unrolls them. With
E = ... + E_xc[D; theta] + sum_i w_i(theta) e_i[D], e_i = -kf/2 sum D K_i[D] (the exact
exchange of each two-electron operator, :func:`dftad.hamiltonian.exchange_operators`):

    dE/dtheta = sum_grid w dE_xc/dtheta + sum_i e_i dw_i/dtheta,

evaluated through the SCF pieces that every molecule of a size bucket shares
(:mod:`dftad.scf_pieces`): no compilation per molecule (:class:`Species` keeps each molecule's
integrals and last density between parameter values). ``tests/test_learn.py`` checks it against
``jax.grad`` of the implicitly differentiated :func:`dftad.energy.kernel` and against finite
differences of converged energies. The range separation omega changes the two-electron
operator itself; its derivative, and derivatives of forces (which do need the density
response), go through :func:`energy_and_grad_implicit` (one compiled program per molecule).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from . import energy, grid_pieces, numint, scf_pieces
from . import forces as _forces
from .density import eval_rho_on_points
from .grid import block_grid
from .hamiltonian import exchange_operators
from .molecule import Molecule
from .pieces import piece
from .setup import Setup, build


@piece(donate_argnums=(5,))
def _xc_params_block(f, ao, w, idx, dm, acc):
    """``acc`` + d(one block's E_xc)/d(functional parameters) at the density ``dm`` (on the
    block's AO columns ``idx``: :func:`dftad.grid_pieces.ao_blocks`)."""
    g = jax.grad(numint._block_energy, argnums=1)(f, f.params, ao, w,
                                                  grid_pieces.block_dm(dm, idx))
    return jax.tree.map(jnp.add, acc, g)


@piece(static_argnums=(0,))
def _exchange_energies(density_fitting, tensors, dm, kf):
    """e_i = -kf/2 sum D K_i[D] for each two-electron operator i."""
    kind = scf_pieces._jk_kind(density_fitting)
    return jnp.stack([-0.5 * kf * jnp.sum(dm * kind.get_k(tensors, dm, i))
                      for i in range(len(tensors))])


@dataclasses.dataclass
class Species:
    """One molecule of a dataset and what its calculations keep between parameter values: the
    setup (built with the model's functional), the prepared SCF problem (integrals, grid) and
    the last converged density (the next SCF starts from it)."""

    name: str
    mol: Molecule
    setup: Setup
    problem: scf_pieces.Problem | None = None
    dm: np.ndarray | None = None

    @classmethod
    def build(cls, name: str, mol: Molecule, functional, basis: str, **kwargs) -> Species:
        return cls(name, mol, build(mol, basis, functional, **kwargs))

    @property
    def coords(self):
        return jax.device_put(self.mol.coords)


@dataclasses.dataclass(frozen=True)
class Point:
    """A converged (or not) SCF at one theta: ``e_tot`` (Hartree), ``grad`` (dE/dtheta, the
    pytree of theta), ``converged``, ``cycles``."""

    e_tot: float
    grad: dict
    converged: bool
    cycles: int


def energy_and_grad(sp: Species, model, theta, warm_start: bool = True) -> Point:
    """E(theta) of ``sp`` and dE/dtheta at the converged density (module docstring), through
    the shared SCF pieces. ``warm_start``: start from the species' last converged density."""
    if model_trains_omega(model):
        raise ValueError("omega is learned: its derivative needs the erf-attenuated integrals' "
                         "derivative; use energy_and_grad_implicit")
    f, vjp_model = jax.vjp(model.functional, theta)
    setup = sp.setup.replace(xc=f)
    if sp.problem is None:
        sp.problem = scf_pieces.Problem(setup, sp.coords)
    p = sp.problem = sp.problem.with_functional(setup)
    res, st = scf_pieces.iterate(p, dm0=sp.dm if warm_start else None)
    dm = st.dm
    if not bool(res.converged):
        # DIIS can stall just above the threshold (open-shell atoms, whose degenerate p
        # orbitals it keeps rotating): second-order steps finish it (energy.converge; one
        # compiled program per molecule, only for the molecules that need it)
        res = energy.converge(setup, sp.coords, res)
        dm = p.pad(res.scf.dm)
    (g_theta,) = vjp_model(f.with_params(params_gradient(p, dm)))
    if bool(res.converged):
        sp.dm = np.asarray(res.scf.dm)
    return Point(float(res.e_tot), g_theta, bool(res.converged), int(res.scf.cycles))


def params_gradient(p: scf_pieces.Problem, dm) -> dict:
    """dE/d(functional parameters) at the (padded) density ``dm`` of the problem ``p``, the
    density held fixed: one pass over the grid blocks and one exchange build per operator. Its
    inputs are the problem and the density only, so its cost does not depend on how many SCF
    cycles led to ``dm``."""
    f, setup = p.setup.xc, p.setup
    grad = jax.tree.map(jnp.zeros_like, f.params)
    for ao, w, idx in p.blocks:
        grad = _xc_params_block(f, ao, w, idx, dm, grad)
    if f.is_hybrid:
        kf = 1.0 / setup.occupation.per_orbital
        e_ops = _exchange_energies(setup.density_fitting, p.tensors, dm, jnp.asarray(kf))
        _, vjp_w = jax.vjp(lambda q: jnp.stack(exchange_operators(setup, q)[1]), f.params)
        grad = jax.tree.map(jnp.add, grad, vjp_w(e_ops)[0])
    return grad


def model_trains_omega(model) -> bool:
    return "omega" in getattr(model, "train", ())


def energy_and_grad_implicit(sp: Species, model, theta) -> Point:
    """The same as :func:`energy_and_grad` by ``jax.grad`` of the whole SCF program
    (:func:`dftad.energy.kernel`, differentiated at the fixed point by the implicit function
    theorem): general (omega, any parameter) but compiled once per molecule."""
    (e, (converged, cycles)), g = _implicit(sp.setup, sp.coords, theta, _Static(model))
    return Point(float(e), g, bool(converged), int(cycles))


def force_error_and_grad(sp: Species, model, theta, f_ref=None):
    """sum |F(theta) - F_ref|^2 over the atoms of ``sp`` ((Hartree/Bohr)^2; F_ref zero by
    default: an equilibrium geometry), its gradient in theta, the forces and whether the SCF
    converged: ``(value, grad, forces, converged)``. Forces are not variational: they depend on
    the density's response to theta, so this goes through the implicitly differentiated whole
    program (:func:`dftad.energy.kernel`, then :func:`dftad.forces.gradient_at`; the implicit
    function theorem at the fixed point, never the iterations): one compiled program per
    molecule."""
    f_ref = np.zeros(sp.mol.coords.shape) if f_ref is None else np.asarray(f_ref)
    (value, (forces, converged)), g = _force_error(sp.setup, sp.coords, theta,
                                                   jax.device_put(f_ref), _Static(model))
    return float(value), g, np.asarray(forces), bool(converged)


@jax.jit
def _force_error(setup, coords, theta, f_ref, static):
    def fn(t):
        params = static.model.functional(t).params
        res = energy.kernel(setup, coords, params)
        forces = -_forces.gradient_at(setup, coords, res.scf, params)
        return jnp.sum((forces - f_ref) ** 2), (forces, res.converged)

    return jax.value_and_grad(fn, has_aux=True)(theta)


def density_error_and_grad(sp: Species, model, theta, dm_ref):
    """int (rho(theta) - rho_ref)^2 dr on the species' grid (electrons^2 / Bohr^3), its
    gradient in theta and whether the SCF converged: ``(value, grad, converged)``.
    rho(theta) is the converged total density, rho_ref that of the total AO density matrix
    ``dm_ref`` (same basis); the difference is linear in D, so it is evaluated once:
    rho[D(theta) - D_ref]. The density's response to theta goes through the implicitly
    differentiated whole program (one compiled program per molecule)."""
    if sp.setup.grid is None:
        raise ValueError(f"{sp.name}: a density loss needs a grid (a functional with a "
                         "semi-local part)")
    (value, converged), g = _density_error(sp.setup, sp.coords, theta, jax.device_put(dm_ref),
                                           _Static(model))
    return float(value), g, bool(converged)


@jax.jit
def _density_error(setup, coords, theta, dm_ref, static):
    def fn(t):
        res = energy.kernel(setup, coords, static.model.functional(t).params)
        dm = res.scf.dm
        diff = (dm.sum(axis=0) if dm.ndim == 3 else dm) - dm_ref
        points, weights = setup.grid.points(coords)
        pts, w = block_grid(points, weights, setup.block_size)
        rho = eval_rho_on_points(setup.basis, coords, pts, diff, "LDA")
        return jnp.sum(w * rho * rho), res.converged

    return jax.value_and_grad(fn, has_aux=True)(theta)


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True)
class _Static:
    """A model as a static (hashable) argument of a jitted function."""

    model: object


@jax.jit
def _implicit(setup, coords, theta, static):
    def e_tot(t):
        res = energy.kernel(setup, coords, static.model.functional(t).params)
        return res.e_tot, (res.converged, res.scf.cycles)

    return jax.value_and_grad(e_tot, has_aux=True)(theta)
