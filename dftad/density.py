"""Electron densities and their derivatives on points, from a density matrix and AO values.

For a density matrix ``D`` (only its symmetric part matters below, so any real ``D`` gives the
same result as ``(D + D^T)/2``) and AOs ``phi_m`` with derivatives from
:func:`dftad.integrals.ao.eval_ao` (all lengths in Bohr; densities in Bohr^-3):

    rho(r)        = sum_mn D_mn phi_m phi_n
    d_a rho       = 2 sum_mn D_mn (d_a phi_m) phi_n                        a = x, y, z
    sigma         = |grad rho|^2
    tau           = 1/2 sum_mn D_mn grad phi_m . grad phi_n                (PySCF's convention,
                                                                            no 1/2 in front of D)
    lapl rho      = 2 sum_mn D_mn (lapl phi_m) phi_n + 4 tau

For a closed shell ``D`` is the total density matrix and tau the total kinetic-energy density
(PySCF's ``eval_rho`` of ``dm``); unrestricted input is a stack ``(2, nao, nao)`` of alpha and beta
matrices and every quantity gets a leading spin axis of 2.

Layout of :func:`eval_rho` (rows, matching PySCF's ``numint.eval_rho``):

    'LDA':  rho                                      -> (npts,)
    'GGA':  rho, d_x rho, d_y rho, d_z rho           -> (4, npts)
    'MGGA': rho, d_x, d_y, d_z, lapl, tau            -> (6, npts)   with_lapl=True  (deriv=2 AOs)
            rho, d_x, d_y, d_z, tau                  -> (5, npts)   with_lapl=False (deriv=1 AOs)

(prefixed by a spin axis of 2 for unrestricted ``dm``). :func:`density` returns the same
quantities as a named tuple, with ``sigma`` added (for unrestricted input ``sigma`` is libxc's
``(sigma_aa, sigma_ab, sigma_bb)``).

Everything is pure JAX and works on AO arrays of shape ``(ncomp, npts, nao)`` (a 2-D
``(npts, nao)`` array is read as values only, as PySCF's deriv=0 output); extra batch axes
between ``ncomp`` and ``nao`` are carried through. For bounded memory on large grids use
:func:`eval_rho_on_points`, which evaluates AOs and densities block by block.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from .basis import Basis
from .integrals.ao import eval_ao

_XX, _YY, _ZZ = 4, 7, 9
"""Positions of the diagonal second derivatives in the AO component axis."""

AO_DERIV = {"LDA": 0, "GGA": 1, "MGGA": 1}
"""AO derivative order (:func:`~dftad.integrals.ao.eval_ao`) each xctype needs; the MGGA
Laplacian needs 2."""


class Density(NamedTuple):
    """Density quantities on points (Bohr^-3 and its derivatives; leading spin axis when
    unrestricted). Entries not requested are ``None``."""

    rho: jax.Array  # (..., npts)
    grad: jax.Array | None = None  # (..., 3, npts)
    sigma: jax.Array | None = None  # (npts,) restricted; (3, npts) aa, ab, bb unrestricted
    tau: jax.Array | None = None  # (..., npts)
    lapl: jax.Array | None = None  # (..., npts)


def _sym(dm):
    return 0.5 * (dm + jnp.swapaxes(dm, -1, -2))


def _one_spin(ao, dm, need_grad: bool, need_tau: bool, need_lapl: bool):
    """(rho, grad, tau, lapl) for one symmetric density matrix; unused ones are None."""
    c0 = jnp.einsum("...n,mn->...m", ao[0], dm)  # (npts, nao): sum_n D_mn phi_n
    rho = jnp.sum(c0 * ao[0], axis=-1)
    grad = tau = lapl = None
    if need_grad:
        grad = 2.0 * jnp.einsum("...m,a...m->a...", c0, ao[1:4])
    if need_tau:
        c1 = jnp.einsum("a...n,mn->a...m", ao[1:4], dm)
        tau = 0.5 * jnp.einsum("a...m,a...m->...", c1, ao[1:4])
    if need_lapl:
        ao2 = ao[_XX] + ao[_YY] + ao[_ZZ]
        lapl = 2.0 * jnp.sum(c0 * ao2, axis=-1) + 4.0 * tau
    return rho, grad, tau, lapl


def _as_components(ao):
    """AO values as (ncomp, npts, nao); a 2-D (npts, nao) array (PySCF's deriv=0 shape) is
    taken as values only."""
    ao = jnp.asarray(ao)
    if ao.ndim < 2:
        raise ValueError(f"ao must be (ncomp, npts, nao) or (npts, nao), got {ao.shape}")
    return ao[None] if ao.ndim == 2 else ao


def _check(ao, xctype: str, with_lapl: bool):
    xctype = xctype.upper()
    if xctype not in AO_DERIV:
        raise ValueError(f"xctype must be 'LDA', 'GGA' or 'MGGA', got {xctype!r}")
    need = 1 if xctype == "LDA" else (10 if xctype == "MGGA" and with_lapl else 4)
    if ao.shape[0] < need:
        raise ValueError(
            f"{xctype} (with_lapl={with_lapl}) needs {need} AO components "
            f"(eval_ao deriv={ {1: 0, 4: 1, 10: 2}[need] }), got {ao.shape[0]}"
        )
    return xctype


def density(ao, dm, xctype: str = "GGA", with_lapl: bool = False) -> Density:
    """Density quantities from AO values ``ao`` (ncomp, npts, nao) and ``dm`` (nao, nao) or
    (2, nao, nao) (alpha, beta). See the module docstring for the equations.

    ``xctype`` picks what is computed: 'LDA' rho; 'GGA' adds grad and sigma; 'MGGA' adds tau
    and, with ``with_lapl``, the Laplacian (needs deriv=2 AOs).
    """
    ao = _as_components(ao)
    xctype = _check(ao, xctype, with_lapl)
    dm = _sym(jnp.asarray(dm))
    g = xctype != "LDA"
    t = xctype == "MGGA"
    lap = t and with_lapl
    if dm.ndim == 2:
        rho, grad, tau, lapl = _one_spin(ao, dm, g, t, lap)
        sigma = jnp.sum(grad * grad, axis=0) if g else None
        return Density(rho, grad, sigma, tau, lapl)
    if dm.ndim != 3 or dm.shape[0] != 2:
        raise ValueError(f"dm must be (nao, nao) or (2, nao, nao), got {dm.shape}")
    a = _one_spin(ao, dm[0], g, t, lap)
    b = _one_spin(ao, dm[1], g, t, lap)
    stack = [None if x is None else jnp.stack([x, y]) for x, y in zip(a, b)]
    rho, grad, tau, lapl = stack
    sigma = None
    if g:
        ga, gb = a[1], b[1]
        sigma = jnp.stack(
            [jnp.sum(ga * ga, axis=0), jnp.sum(ga * gb, axis=0), jnp.sum(gb * gb, axis=0)]
        )
    return Density(rho, grad, sigma, tau, lapl)


def eval_rho(ao, dm, xctype: str = "LDA", with_lapl: bool = True):
    """PySCF's ``numint.eval_rho`` layout as one array (see the module docstring):

    LDA (npts,); GGA (4, npts); MGGA (6, npts) = rho, dx, dy, dz, lapl, tau with ``with_lapl``
    or (5, npts) without. Unrestricted ``dm`` (2, nao, nao) adds a leading spin axis of 2.
    """
    ao = _as_components(ao)
    d = density(ao, dm, xctype, with_lapl)
    xctype = xctype.upper()
    if xctype == "LDA":
        return d.rho
    spin = d.rho.ndim - (ao.ndim - 2)  # 1 if unrestricted
    rows = [jnp.expand_dims(d.rho, spin), d.grad]
    if xctype == "MGGA":
        if with_lapl:
            rows.append(jnp.expand_dims(d.lapl, spin))
        rows.append(jnp.expand_dims(d.tau, spin))
    return jnp.concatenate(rows, axis=spin)


def eval_rho_on_points(
    basis: Basis, coords, points, dm, xctype: str = "LDA", with_lapl: bool = False
):
    """:func:`eval_rho` straight from the basis, evaluated block by block.

    ``points`` is (nblock, blocksize, 3) Bohr (see :func:`dftad.grid.block_grid`);
    AOs of one block at a time are formed inside ``lax.map``, so memory is bounded by a block.
    Returns :func:`eval_rho`'s layout with the point axis split as (nblock, blocksize).
    Differentiable in ``coords``, ``points``, ``dm`` and the basis exponents.
    """
    xctype = xctype.upper()
    if xctype not in AO_DERIV:
        raise ValueError(f"xctype must be 'LDA', 'GGA' or 'MGGA', got {xctype!r}")
    deriv = 2 if (xctype == "MGGA" and with_lapl) else AO_DERIV[xctype]

    def one(p):
        return eval_rho(eval_ao(basis, coords, p, deriv=deriv), dm, xctype, with_lapl)

    out = jax.lax.map(one, jnp.asarray(points))  # (nblock, ..., blocksize)
    return jnp.moveaxis(out, 0, -2)


__all__ = ["AO_DERIV", "Density", "density", "eval_rho", "eval_rho_on_points"]
