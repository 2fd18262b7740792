"""Drivers: the SCF energy at a geometry, pure (:func:`kernel`) or in one call (:func:`run`).

:func:`kernel` is the pure JAX function of ``(setup, coords)`` (a :class:`~dftad.setup.Setup`
from :func:`~dftad.setup.build`, coordinates in Bohr) that evaluates the integrals and runs the
SCF, differentiable by the implicit function theorem at the fixed point
(:mod:`dftad.implicit`). :func:`converge` continues an SCF that DIIS did not converge with
second-order steps (:mod:`dftad.newton`), behind the same implicit derivative. :func:`run`
builds, runs, converges and (optionally) computes forces in one Python call.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp

from . import forces as _forces
from . import guess, implicit, newton, scf, scf_pieces
from .hamiltonian import (
    Integrals,
    Result,
    hamiltonian,
    integrals,
)
from .molecule import Molecule
from .setup import Setup, build


def kernel(setup: Setup, coords, xc_params=None, dm0=None, field=None) -> Result:
    """Run the SCF (DIIS) at ``coords`` (Bohr). Pure JAX: wrap in ``jax.jit``.

    Differentiable in ``coords``, ``xc_params``, ``field`` and the setup's basis exponents, in
    forward and reverse mode and to second order: the density is differentiated at the SCF fixed
    point (:mod:`dftad.implicit`), never through the iterations. ``scf.mo_coeff`` carries no
    derivative (it is gauge dependent); ``e_tot``, ``dm``, ``fock`` and ``mo_energy`` do."""
    return kernel_from_integrals(setup, integrals(setup, coords, field, xc_params), xc_params, dm0)


def kernel_from_integrals(setup: Setup, ints: Integrals, xc_params=None, start=None,
                          solver=scf.solve) -> Result:
    """:func:`kernel`'s SCF on precomputed :class:`~dftad.hamiltonian.Integrals`
    (differentiable in them and in ``xc_params``), by any ``solver`` with the signature of
    :func:`dftad.scf.solve` (``start``: its starting point; default the setup's initial guess
    for DIIS). Lets several setups of one molecule and basis share one integral evaluation."""
    energy_fn, components = hamiltonian(setup, ints, xc_params)
    if start is None:
        start = guess.initial_guess(setup, ints)
    res = implicit.solve(energy_fn, ints.s1e, start, setup.occupation, setup.options, solver)
    return Result(res, components(res.dm))


def second_order(setup: Setup, ints: Integrals, result: Result, xc_params=None) -> Result:
    """Continue ``result`` (an SCF that DIIS did not converge) with trust-region Newton steps on
    the orbital rotations (:func:`dftad.newton.solve`). Pure JAX; differentiable like
    :func:`kernel` (the same implicit derivative)."""
    return kernel_from_integrals(setup, ints, xc_params, result.scf, newton.solve)


_integrals_jit = jax.jit(integrals)
_second_order_jit = jax.jit(second_order)


def kernel_stepwise(setup: Setup, coords, callback=None, dm0=None) -> Result:
    """:func:`kernel`'s DIIS SCF driven from Python one cycle at a time through compiled pieces
    that molecules of one size bucket share (:func:`dftad.scf_pieces.solve`), ``callback(state)``
    (a :class:`dftad.scf.State`) after each cycle, e.g. to print it (the CLI does); ``dm0``: the
    starting density (default the setup's initial guess), e.g. the previous geometry's. Same
    numbers as :func:`kernel`; not differentiable (use :func:`kernel` under ``jax.grad``)."""
    return scf_pieces.solve(setup, coords, callback, dm0)


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
        ints = _integrals_jit(setup, jnp.asarray(coords), None, xc_params)
    return _second_order_jit(setup, ints, result, xc_params)


def run(mol: Molecule, basis="def2-svp", xc="b3lyp", forces: bool = False, **kwargs) -> Result:
    """Build and run in one call; ``forces=True`` adds ``result.forces`` (Hartree/Bohr). The SCF
    and the forces are driven from Python through compiled pieces shared across molecules
    (:func:`kernel_stepwise`, :func:`dftad.forces.gradient_stepwise`); an SCF that DIIS does not
    converge goes on with second-order steps (:func:`converge`); warns when it still did not
    converge. ``kwargs`` go to :func:`~dftad.setup.build`."""
    setup = build(mol, basis, xc, **kwargs)
    coords = jax.device_put(mol.coords)
    with _forces.compile_ahead(setup, coords, forces):  # the forces' pieces beside the SCF
        res = kernel_stepwise(setup, coords)
    return finish(setup, coords, res, forces)


def _forces_stepwise(setup: Setup, coords, res: Result) -> jax.Array:
    return jax.device_put(-_forces.gradient_stepwise(setup, coords, res.scf))


def finish(setup: Setup, coords, res: Result, forces: bool = False, warn: bool = True) -> Result:
    """``res`` converged (:func:`converge`) and, with ``forces``, its forces at the converged
    density when they are missing or belong to an unconverged SCF; warns (``warn``) when it does
    not converge."""
    if not bool(res.converged):
        res = converge(setup, coords, res)
        if forces and bool(res.converged):
            res = res._replace(forces=_forces_stepwise(setup, coords, res))
    elif forces and res.forces is None:
        res = res._replace(forces=_forces_stepwise(setup, coords, res))
    if warn and not bool(res.converged):
        warnings.warn(
            f"SCF did not converge in {int(res.scf.cycles)} cycles "
            f"(last dE {float(res.scf.e_change):.2e}, |[F,D]| {float(res.scf.grad_norm):.2e}); "
            "try level_shift=0.3, damp=0.5 or max_cycle=200",
            RuntimeWarning,
            stacklevel=3,
        )
    return res
