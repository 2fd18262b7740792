"""A Cartesian quasi-Newton (BFGS) geometry minimiser in pure JAX: jit it, vmap it over conformers.

    res = bfgs.minimize(setup, coords0)                        # one geometry (natm, 3) Bohr
    res = bfgs.minimize_batch(setup, coords_batch)             # (nconf, natm, 3): one program
    st = bfgs.advance(bfgs.start(setup, coords0, dm0=dm), e_tot, forces, dm, converged)
                                    # driven from Python, evaluations by the caller (geomopt)

Each evaluation is one SCF with its forces (:func:`dftad.forces.energy_and_forces`), started
from the density of the last accepted geometry. The step is p = -H g (g = dE/dR, Hartree/Bohr,
flattened; H the inverse Hessian, Bohr^2/Hartree), scaled down to |p| <= trust (Bohr). A step
is accepted when the SCF converged and E_new <= E + ``E_TOL``; then H gets the BFGS update
(Nocedal & Wright, Numerical Optimization, eq. 6.17), with s = x_new - x, y = g_new - g,
rho = 1 / (s.y):

    H <- (I - rho s y^T) H (I - rho y s^T) + rho s s^T,

skipped when s.y <= 0 (no positive curvature). Before the first update H0 = I / ``B0`` is
rescaled to (s.y / y.y) I (N&W eq. 6.20). The trust radius follows the ratio r of the actual
to the predicted change, dE_pred = g.p + 1/2 p.B p = (alpha - alpha^2/2) g.(-H g) for
p = -alpha H g: doubled (up to ``TRUST_MAX``) when r > 0.75 and the step was clipped, halved
when r < 0.25. A rejected step keeps the state and quarters the trust radius.

Convergence is geomeTRIC's ``gau`` set (all five must hold): |dE| < 1e-6 Ha, RMS/max gradient
< 3e-4/4.5e-4 Ha/Bohr, RMS/max displacement of the last step < 1.2e-3/1.8e-3 Angstrom; max is
over atoms of the atomic norm |v_A|, RMS is sqrt(mean over atoms of |v_A|^2).

Under ``vmap`` the loop runs until every conformer is done; a done conformer's state is kept
exactly (``jnp.where`` on every leaf), so the batched answer equals the one-at-a-time one.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from .constants import BOHR_ANGSTROM
from .forces import energy_and_forces
from .guess import initial_guess
from .hamiltonian import integrals

GAU = (1e-6, 3e-4, 4.5e-4, 1.2e-3, 1.8e-3)
"""geomeTRIC's ``gau`` criteria: energy change (Ha), RMS/max gradient (Ha/Bohr), RMS/max
displacement (Angstrom)."""

B0 = 0.5  # Hartree/Bohr^2: the initial Hessian B0 I (H0 = I / B0)
E_TOL = 1e-8  # Hartree: an energy rise allowed before a step is rejected (SCF noise)
TRUST_MIN, TRUST_MAX = 1e-3, 1.0  # Bohr


class BFGSResult(NamedTuple):
    """The minimisation (leading conformer axis under vmap)."""

    coords: jax.Array  # (natm, 3) Bohr, the last accepted geometry
    e_tot: jax.Array  # Hartree, at coords
    forces: jax.Array  # (natm, 3) -dE/dR, Hartree/Bohr, at coords
    converged: jax.Array  # bool: all five gau criteria held
    steps: jax.Array  # int: energy and force evaluations (one SCF each), rejected ones included
    energies: jax.Array  # (max_steps + 1,) energy of each evaluation, NaN-padded
    max_force: jax.Array  # max over atoms of |F_A|, Hartree/Bohr


class State(NamedTuple):
    """The minimiser between evaluations (flat Cartesian vectors, Bohr and Hartree)."""

    x: jax.Array  # (3 natm,) accepted coordinates, Bohr
    e: jax.Array  # energy at x (inf before the first evaluation)
    g: jax.Array  # (3 natm,) dE/dR at x
    dm: jax.Array  # density at x: the next SCF's start
    h: jax.Array  # (3 natm, 3 natm) inverse Hessian, Bohr^2/Hartree
    trial: jax.Array  # (3 natm,) the geometry to evaluate next
    pred: jax.Array  # predicted energy change of the trial step
    clipped: jax.Array  # bool: the trial step was cut to the trust radius
    trust: jax.Array  # Bohr
    updated: jax.Array  # bool: H had a BFGS update (H0 already rescaled)
    steps: jax.Array  # evaluations done
    converged: jax.Array
    energies: jax.Array


def _atom_norms(v):
    """(max over atoms of |v_A|, sqrt(mean over atoms of |v_A|^2)) of a flat (3 natm,) v."""
    n = jnp.linalg.norm(v.reshape(-1, 3), axis=1)
    return jnp.max(n), jnp.sqrt(jnp.mean(n**2))


def _propose(x, g, h, trust):
    """Trial point x + p, p = -alpha H g with |p| <= trust; (trial, dE_pred, clipped)."""
    p = -h @ g
    norm = jnp.linalg.norm(p)
    alpha = jnp.minimum(1.0, trust / jnp.maximum(norm, 1e-300))
    return x + alpha * p, (alpha - 0.5 * alpha**2) * jnp.dot(g, p), alpha < 1.0


def _bfgs_update(h, s, y, updated):
    """N&W eq. 6.17, H0 rescaled by s.y / y.y first (eq. 6.20); skipped when s.y <= 0."""
    sy = jnp.dot(s, y)
    ok = sy > 1e-12
    safe = jnp.where(ok, sy, 1.0)
    h = jnp.where(updated, h, safe / jnp.dot(y, y) * jnp.eye(h.shape[0]))
    rho = 1.0 / safe
    a = jnp.eye(h.shape[0]) - rho * jnp.outer(s, y)
    new = a @ h @ a.T + rho * jnp.outer(s, s)
    return jnp.where(ok, new, h), updated | ok


def advance(st: State, e_new, forces, dm, scf_converged) -> State:
    """Take the evaluation of ``st.trial`` (its energy, forces (natm, 3), SCF density and whether
    the SCF converged): accept or reject the step, test convergence, propose the next trial."""
    g_new = -forces.reshape(-1)
    first = st.steps == 0
    accept = first | (scf_converged & (e_new <= st.e + E_TOL))
    s, de = st.trial - st.x, e_new - st.e
    h_upd, updated = _bfgs_update(st.h, s, g_new - st.g, st.updated)
    ratio = de / jnp.where(st.pred < 0, st.pred, -1.0)
    grow = (ratio > 0.75) & st.clipped
    trust = jnp.where(grow, 2.0 * st.trust, jnp.where(ratio < 0.25, 0.5 * st.trust, st.trust))
    trust = jnp.where(first, st.trust, trust)
    h = jnp.where(accept & ~first, h_upd, st.h)
    updated = jnp.where(accept & ~first, updated, st.updated)
    trust = jnp.clip(jnp.where(accept, trust, 0.25 * st.trust), TRUST_MIN, TRUST_MAX)
    x = jnp.where(accept, st.trial, st.x)
    e = jnp.where(accept, e_new, st.e)
    g = jnp.where(accept, g_new, st.g)
    dm = jnp.where(accept, dm, st.dm)
    g_max, g_rms = _atom_norms(g)
    d_max, d_rms = _atom_norms(s * BOHR_ANGSTROM)
    converged = (accept & ~first & (jnp.abs(de) < GAU[0]) & (g_rms < GAU[1]) & (g_max < GAU[2])
                 & (d_rms < GAU[3]) & (d_max < GAU[4]))
    trial, pred, clipped = _propose(x, g, h, trust)
    return State(x, e, g, dm, h, trial, pred, clipped, trust, updated, st.steps + 1,
                  converged, st.energies.at[st.steps].set(e_new))


def _step(setup, st: State) -> State:
    """Evaluate the trial point (one SCF from the last accepted density, and its forces), then
    :func:`advance`."""
    res = energy_and_forces(setup, st.trial.reshape(-1, 3), dm0=st.dm)
    return advance(st, res.e_tot, res.forces, res.scf.dm, res.converged)


def start(setup, coords0, max_steps: int = 200, trust: float = 0.3, dm0=None) -> State:
    """The state before the first evaluation: trial = ``coords0`` ((natm, 3) Bohr), H0 = I / B0,
    the SCF's start ``dm0`` (default the initial guess at ``coords0``)."""
    x0 = jnp.asarray(coords0, dtype=jnp.float64).reshape(-1)
    n = x0.shape[0]
    if dm0 is None:
        dm0 = initial_guess(setup, integrals(setup, x0.reshape(-1, 3)))
    zero = jnp.zeros(n)
    return State(x0, jnp.asarray(jnp.inf), zero, dm0, jnp.eye(n) / B0, x0, jnp.zeros(()),
                  jnp.asarray(False), jnp.asarray(trust, dtype=jnp.float64), jnp.asarray(False),
                  jnp.asarray(0), jnp.asarray(False), jnp.full(max_steps + 1, jnp.nan))


def result(st: State) -> BFGSResult:
    """The :class:`BFGSResult` of a state."""
    g_max, _ = _atom_norms(st.g)
    return BFGSResult(st.x.reshape(-1, 3), st.e, -st.g.reshape(-1, 3), st.converged, st.steps,
                      st.energies, g_max)


def minimize(setup, coords0, max_steps: int = 200, trust: float = 0.3) -> BFGSResult:
    """Minimise the SCF energy from ``coords0`` ((natm, 3) Bohr) by BFGS in Cartesian
    coordinates, at most ``max_steps`` evaluations, initial trust radius ``trust`` (Bohr, on the
    norm of the whole step). Pure JAX (one ``lax.while_loop``): jit it, vmap it over
    ``coords0`` (see :func:`minimize_batch`); ``max_steps`` must be static."""
    st = start(setup, coords0, max_steps, trust)

    def cond(st):
        return ~st.converged & (st.steps < max_steps)

    def body(st):
        new = _step(setup, st)
        done = ~cond(st)  # never true unbatched; under vmap it freezes finished conformers
        return jax.tree.map(lambda old, nw: jnp.where(done, old, nw), st, new)

    return result(jax.lax.while_loop(cond, body, st))


@functools.partial(jax.jit, static_argnames=("max_steps",))
def minimize_batch(setup, coords_batch, max_steps: int = 200, trust: float = 0.3) -> BFGSResult:
    """:func:`minimize` vmapped over ``coords_batch`` ((nconf, natm, 3) Bohr), jitted: one
    compiled program per (setup, batch shape, max_steps)."""
    return jax.vmap(lambda c: minimize(setup, c, max_steps, trust))(coords_batch)
