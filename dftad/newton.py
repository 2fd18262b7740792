"""Second-order SCF: trust-region Newton steps on orbital rotations.

The orbitals C (per spin channel, occupied first) are varied by an occupied-virtual rotation
kappa (per channel ``(nvir, nocc)``, the channels packed into one vector):

    K = [[0, -kappa^T], [kappa, 0]],   U(K) = (1 - K/2)^-1 (1 + K/2)   (Cayley: exactly
    C(kappa) = C U(K),                 D(kappa) = sum_i^occ n_i C_i C_i^T     orthogonal)

and E(kappa) = E[D(kappa)]. The gradient is g = (dD/dkappa)^T F with F = dE/dD the Fock matrix
(g = 2 n C_vir^T F C_occ at kappa = 0); the Hessian is applied to vectors, never formed, as the
forward-mode derivative of g (the linearised Fock matrix: XC kernel, response of J and K).

One step (:func:`step`) minimises the quadratic model m(s) = g.s + s.H s / 2 within a trust
radius |s| <= r by truncated, preconditioned conjugate gradients (Steihaug-Toint): CG stops at
the boundary or on a direction of negative curvature, so a saddle point is left downhill. The
step is taken when the energy falls by at least ``ACCEPT`` of the model's prediction, and the
radius grows or shrinks with the ratio of actual to predicted change (Nocedal & Wright,
*Numerical Optimization*, Algorithms 4.1 and 7.2). Converges to a local minimum from any start,
quadratically near one; each step costs one Fock matrix and one Fock-matrix jvp (a Fock build
with its tangent) per CG iteration, and one energy.

:func:`solve` continues an SCF that DIIS did not converge (:func:`dftad.energy.converge`, which
:func:`dftad.run` and the CLI call); as a solver behind :func:`dftad.implicit.solve` its result
is differentiated exactly like a DIIS one. :mod:`dftad.stability` uses the same rotations and
Hessian.
It is not part of the jit-compiled kernel, where it would about double the compile time (water
/ def2-SVP: 22 s -> 40 s with B3LYP, 24 s -> 46 s with SCAN) for a path few SCFs need.
Units: kappa in radians, energies in Hartree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from . import scf
from .linalg import orthogonalizer
from .occupation import Occupation
from .scf import canonicalize

ACCEPT = 1e-4
"""A step is taken when the actual energy change is at least this fraction of the predicted one."""

MAX_RADIUS = 2.0
"""Largest trust radius (radians, norm of the packed rotation)."""

CG_MAXITER = 20
"""Conjugate-gradient iterations per step at most (a static loop bound)."""

PRECONDITIONER_FLOOR = 0.1
"""Smallest diagonal preconditioner entry (Hartree): a soft or inverted orbital pair must not
blow up the preconditioned residual."""

MAX_SHIFT = 1e-3
"""Largest shift mu of the model Hessian H + mu (Hartree); mu = min(|g|, MAX_SHIFT). A flat
direction (the hole of a degenerate pi* pair rotating about a linear molecule's axis: zero
curvature, a gradient of rounding size) would otherwise draw the conjugate gradients to the
trust boundary along it, where the energy change is rounding and the step is rejected; with the
shift the step along it is at most |g_flat| / mu. As g -> 0 the shift vanishes: convergence
stays superlinear."""

ROUNDING = 1e-13
"""Relative size of the energy's rounding noise (a few hundred ulps of E: sums over grids and
integrals). A step whose predicted energy change is below ROUNDING |E| is taken on the model's
word: the ratio of actual to predicted change is noise there (a flat direction the grid makes
slightly bumpy, e.g. UKS NO's pi-hole rotation, with energy changes of ~1e-14 Ha per step)."""

MIN_RADIUS = 1e-8
"""Smallest trust radius (radians)."""

INITIAL_RADIUS = 0.5
"""Trust radius of the first step (radians)."""


def size(nmo: int, occ: Occupation) -> int:
    """Number of rotation parameters (length of the packed kappa)."""
    return sum((nmo - n) * n for n in occ.counts)


def split(kappa, nmo: int, occ: Occupation):
    """Packed kappa -> list of (nvir, nocc) blocks, one per spin channel."""
    out, start = [], 0
    for n in occ.counts:
        out.append(kappa[start:start + (nmo - n) * n].reshape(nmo - n, n))
        start += (nmo - n) * n
    return out


def rotate(mo_coeff, kappa, occ: Occupation):
    """C U(K) per channel (Cayley transform of the packed rotation ``kappa``)."""
    nmo = mo_coeff.shape[-1]
    out = []
    for c, n, k in zip(occ.channels(mo_coeff), occ.counts, split(kappa, nmo, occ)):
        big = jnp.zeros((nmo, nmo), dtype=c.dtype).at[n:, :n].set(k).at[:n, n:].set(-k.T)
        eye = jnp.eye(nmo, dtype=c.dtype)
        out.append(c @ jnp.linalg.solve(eye - 0.5 * big, eye + 0.5 * big))
    return occ.join(out)


def make_dm(mo_coeff, occ: Occupation):
    """D = sum_i^occ n_i C_i C_i^T (occupied orbitals first in each channel)."""
    out = []
    for c, (n_i, n) in zip(occ.channels(mo_coeff), occ.spaces()):
        out.append(n_i * c[:, :n] @ c[:, :n].T)
    return occ.join(out)


def rotated_dm(mo_coeff, kappa, occ: Occupation):
    """D(C U(K))."""
    return make_dm(rotate(mo_coeff, kappa, occ), occ)


def preconditioner(mo_energy, occ: Occupation):
    """Approximate Hessian diagonal 2 n (e_a - e_i) (Hartree; occupied orbitals first)."""
    parts = []
    for e, (n_i, n) in zip(occ.channels(mo_energy), occ.spaces()):
        parts.append((2.0 * n_i * (e[n:, None] - e[None, :n])).ravel())
    return jnp.concatenate(parts)


def _steihaug(hop, g, diag, radius, rtol):
    """min_s g.s + s.H s / 2 subject to |s| <= radius, by preconditioned CG (``hop(v) = H v``,
    ``diag`` ~ diag(H)). Returns (s, r = g + H s)."""

    def to_boundary(s, p):  # tau >= 0 with |s + tau p| = radius
        pp, sp, ss = p @ p, s @ p, s @ s
        return (-sp + jnp.sqrt(sp * sp + pp * (radius * radius - ss))) / pp

    def body(c):
        i, s, r, p, rz, _ = c
        hp = hop(p)
        curv = p @ hp
        alpha = rz / jnp.where(curv > 0, curv, 1.0)
        out = (curv <= 0) | (jnp.linalg.norm(s + alpha * p) >= radius)
        tau = jnp.where(out, to_boundary(s, p), alpha)
        s, r = s + tau * p, r + tau * hp
        z = r / diag
        rz_new = r @ z
        p = -z + (rz_new / rz) * p
        done = out | (jnp.linalg.norm(r) <= rtol * jnp.linalg.norm(g))
        return i + 1, s, r, p, rz_new, done

    z = g / diag
    init = (0, jnp.zeros_like(g), g, -z, g @ z, jnp.linalg.norm(g) == 0)
    _, s, r, *_ = jax.lax.while_loop(lambda c: (c[0] < CG_MAXITER) & ~c[5], body, init)
    return s, r


def gradient_and_hessian(energy_fn: Callable, mo_coeff, occ: Occupation):
    """(g, hop): the orbital gradient dE/dkappa at kappa = 0 and the map v -> H v.

    Each product is a forward-mode derivative of the gradient (a Fock build and its tangent),
    not the tangent half of ``jax.linearize``: XLA runs that one 8x slower than the whole
    ``jvp`` (water STO-3G B3LYP, 34k grid points: 156 ms against 19 ms; the residuals of the
    XC kernel are stored per grid point and read back unfused), and a Hessian-vector product
    cost 0.45 s (CAM-B3LYP 1.0 s)."""
    kappa0 = jnp.zeros(size(mo_coeff.shape[-1], occ))

    def gradient(kappa):
        dm, pullback = jax.vjp(lambda k: rotated_dm(mo_coeff, k, occ), kappa)
        return pullback(energy_fn(dm)[1])[0]

    def hop(v):
        return jax.jvp(gradient, (kappa0,), (v,))[1]

    return gradient(kappa0), hop


class Step(NamedTuple):
    """Newton state: canonical orbitals (occupied first) and their energies, the energy and
    Fock matrix at their density, the trust radius, the energy change of the last step."""

    mo_coeff: jax.Array
    mo_energy: jax.Array
    e_tot: jax.Array
    fock: jax.Array
    radius: jax.Array
    e_change: jax.Array  # 0 when the step was rejected


def step(energy_fn: Callable, prev: Step, occ: Occupation) -> Step:
    """One trust-region Newton step from ``prev`` (canonical orbitals, see :func:`canonicalize`,
    with their energies, and the energy and Fock matrix at their density)."""
    mo_coeff, mo_energy, e_tot, fock, radius, _ = prev
    g, hop = gradient_and_hessian(energy_fn, mo_coeff, occ)
    gnorm = jnp.linalg.norm(g)
    diag = jnp.maximum(preconditioner(mo_energy, occ), PRECONDITIONER_FLOOR)
    mu = jnp.minimum(gnorm, MAX_SHIFT)
    s, r = _steihaug(lambda v: hop(v) + mu * v, g, diag, radius,
                     rtol=jnp.minimum(0.1, jnp.sqrt(gnorm)))
    predicted = 0.5 * (g @ s + r @ s)  # m(s), with H s = r - g
    trial = rotate(mo_coeff, s, occ)
    e_new, f_new = energy_fn(make_dm(trial, occ))
    actual = e_new - e_tot
    ratio = jnp.where(predicted < 0, actual / jnp.where(predicted < 0, predicted, -1.0), 0.0)
    # a predicted change below the energy's rounding: the model is all there is to go by
    noise = ROUNDING * jnp.abs(e_tot)
    ratio = jnp.where((predicted < 0) & (-predicted < noise), 1.0, ratio)
    accept = (predicted < 0) & (ratio > ACCEPT)
    snorm = jnp.linalg.norm(s)
    radius = jnp.where(ratio < 0.25, 0.25 * snorm,
                       jnp.where((ratio > 0.75) & (snorm > 0.99 * radius),
                                 jnp.minimum(2.0 * radius, MAX_RADIUS), radius))
    radius = jnp.maximum(radius, MIN_RADIUS)
    new_c, new_e = canonicalize(trial, f_new, occ)
    return Step(
        mo_coeff=jnp.where(accept, new_c, mo_coeff),
        mo_energy=jnp.where(accept, new_e, mo_energy),
        e_tot=jnp.where(accept, e_new, e_tot),
        fock=jnp.where(accept, f_new, fock),
        radius=radius,
        e_change=jnp.where(accept, actual, 0.0),
    )


def solve(energy_fn: Callable, s1e, start: scf.SCFResult, occ: Occupation,
          options: scf.SCFOptions = scf.DEFAULT_OPTIONS) -> scf.SCFResult:
    """Trust-region Newton steps from the orbitals of ``start`` (occupied first), one per cycle,
    until converged by the SCF's criteria (|dE| < ``conv_tol``, commutator norm <
    ``conv_tol_grad``) or after ``max_cycle`` steps. Cycles are counted on from ``start``'s.
    Pure JAX."""
    x = orthogonalizer(s1e)

    def grad_norm(mo_coeff, fock):
        return jnp.linalg.norm(scf.commutator(fock, make_dm(mo_coeff, occ), s1e, x))

    e_tot, fock = energy_fn(make_dm(start.mo_coeff, occ))
    mo_coeff, mo_energy = canonicalize(start.mo_coeff, fock, occ)
    first = Step(mo_coeff, mo_energy, e_tot, fock, jnp.asarray(INITIAL_RADIUS),
                 jnp.asarray(jnp.inf))
    init = (start.cycles, first, grad_norm(mo_coeff, fock), jnp.asarray(False))
    last_cycle = start.cycles + options.max_cycle

    def body(carry):
        cycle, prev, _, _ = carry
        new = step(energy_fn, prev, occ)
        gnorm = grad_norm(new.mo_coeff, new.fock)
        conv = (jnp.abs(new.e_change) < options.conv_tol) & (gnorm < options.conv_tol_grad)
        return cycle + 1, new, gnorm, conv

    cycle, last, gnorm, conv = jax.lax.while_loop(
        lambda c: (~c[3]) & (c[0] < last_cycle), body, init)
    return scf.SCFResult(last.e_tot, make_dm(last.mo_coeff, occ), last.fock, last.mo_energy,
                         last.mo_coeff, start.mo_occ, conv, cycle, last.e_change, gnorm)
