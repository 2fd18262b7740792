"""Gaussian integrals in JAX: Boys function, one-electron, two-electron, AO values on points.

Every integral is a pure function of ``(basis, coords)``, where ``basis`` is a :class:`dftad.Basis`
pytree (static layout, traced exponents/coefficients) and ``coords`` the nuclear coordinates in
Bohr, so it compiles once per basis layout and is differentiable in coordinates and exponents.
"""
