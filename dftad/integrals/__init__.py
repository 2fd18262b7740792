"""Gaussian integrals in JAX: Boys function, one-electron, two-electron, AO values on points.

Every integral is a pure function of ``(basis, coords)``, where ``basis`` is a :class:`dftad.Basis`
pytree (static layout, traced exponents/coefficients) and ``coords`` the nuclear coordinates in
Bohr, so it compiles once per basis layout and is differentiable in coordinates and exponents.
Two-electron integrals also take a plan (:mod:`.eri_plan`, built once on the Python side) that
says which shell quartets to compute; :mod:`.two_electron` re-exports its ``build_plan``.
"""
