"""Exchange-correlation functionals in JAX (Hartree, Bohr; energies per volume).

    from dftad.xc import parse_xc
    f = parse_xc("b3lyp")                            # PySCF's names and strings
    e = f.energy_density(f.params, rho, sigma)        # restricted: n, |grad n|^2 (, tau)
    e = f.energy_density_polarized(f.params, (na, nb), (saa, sab, sbb), (ta, tb))
    f.family                                          # 'lda' | 'gga' | 'mgga' | 'hf'
    f.hyb, f.alpha, f.beta, f.omega                   # exact exchange, PySCF's rsh_coeff convention

See :mod:`dftad.xc.functional` for the conventions (thresholds, exact exchange) and
:mod:`dftad.xc.hybrid` for the accepted strings; the kernels are in :mod:`dftad.xc.lda`,
:mod:`dftad.xc.gga` and :mod:`dftad.xc.mgga`, on the variables and helpers of
:mod:`dftad.xc.common`.

Adding a functional: write its kernel in the module of its family and register it there in
``COMPONENTS`` (with libxc's density threshold and, if short-range, its default omega); give a
complete functional a name in :data:`~dftad.xc.hybrid.NAMED` (and, if wanted, a short name in
``X_ALIASES``/``C_ALIASES``).
"""

from .common import Component, libxc_arithmetic
from .functional import COMPONENTS, Functional, component_energy, eval_xc
from .hybrid import NAMED, parse_xc

__all__ = [
    "COMPONENTS",
    "NAMED",
    "Component",
    "Functional",
    "component_energy",
    "eval_xc",
    "libxc_arithmetic",
    "parse_xc",
]
