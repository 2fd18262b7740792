"""Exchange-correlation functionals in JAX (Hartree, Bohr; energies per volume).

    from dftad.xc import parse_xc
    f = parse_xc("b3lyp")                            # PySCF's names and strings
    e = f.energy_density(f.params, rho, sigma)        # restricted: n, |grad n|^2 (, tau)
    e = f.energy_density_polarized(f.params, (na, nb), (saa, sab, sbb), (ta, tb))
    f.family                                          # 'lda' | 'gga' | 'mgga' | 'hf'
    f.hyb, f.alpha, f.beta, f.omega                   # exact exchange, PySCF's rsh_coeff convention

See :mod:`dftad.xc.functional` for the conventions (thresholds, exact exchange) and
:mod:`dftad.xc.hybrid` for the accepted strings; the kernels are in :mod:`dftad.xc.lda`,
:mod:`dftad.xc.gga` and :mod:`dftad.xc.mgga`.
"""

from .functional import COMPONENTS, Component, Functional, component_energy, eval_xc
from .hybrid import NAMED, parse_xc
from .lda import libxc_arithmetic

__all__ = [
    "COMPONENTS", "Component", "Functional", "NAMED", "component_energy", "eval_xc",
    "libxc_arithmetic", "parse_xc",
]
