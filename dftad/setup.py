"""What is fixed for one kind of calculation: :class:`Setup` and :func:`build`.

:func:`build` does the Python-side work once per molecule *kind* (basis, screening plans, grid
layout, functional, electron counts, the Coulomb/exchange back end) and returns a
:class:`Setup`, a pytree whose arrays (basis exponents and coefficients, nuclear charges,
functional parameters, screening index arrays) are traced and whose layout is static. The pure
functions of ``(setup, coords)`` (:func:`dftad.energy.kernel`,
:func:`dftad.forces.energy_and_forces`, :mod:`dftad.properties`) compile once per setup and
re-run for any geometry.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from . import dispersion, scf
from .basis import Basis
from .grid import Grid
from .guess import KINDS as GUESS_KINDS
from .integrals import two_electron
from .jk import DFJK, IncoreJK
from .molecule import Molecule
from .occupation import Occupation
from .xc import parse_xc
from .xc.functional import Functional

INCORE_BYTES = 4 * 2**30
"""Largest full ERI tensor (bytes) kept in memory before density fitting takes over."""


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Dispersion:
    """A DFT-D3 correction (:mod:`dftad.dispersion`): the molecule's ``model`` and the damping
    ``params`` (a pytree of scalars, learnable); E_disp = dispersion.energy(model, R, params)."""

    model: dispersion.D3Model
    params: dict

    def energy(self, coords):
        return dispersion.energy(self.model, coords, self.params)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True, eq=False)
class Setup:
    """Everything fixed for one kind of calculation.

    Traced: ``basis``, ``charges`` (nuclear charges, float), ``xc`` (the functional; Hartree-Fock
    is ``parse_xc("hf")``, exact exchange only), ``jk`` (:class:`~dftad.jk.IncoreJK` or
    :class:`~dftad.jk.DFJK`), ``disp`` (a :class:`Dispersion` correction, or None). Static: the
    integration ``grid`` (None when the functional has no
    semilocal part), the ``occupation`` (electron counts, restricted or not), SCF ``options``,
    the grid ``block_size``, the ``basis_name``, the initial guess and the atomic numbers."""

    basis: Basis
    charges: jax.Array
    xc: Functional
    jk: IncoreJK | DFJK
    disp: Dispersion | None
    grid: Grid | None = dataclasses.field(metadata={"static": True})
    occupation: Occupation = dataclasses.field(metadata={"static": True})
    options: scf.SCFOptions = dataclasses.field(metadata={"static": True})
    block_size: int = dataclasses.field(metadata={"static": True})
    basis_name: str = dataclasses.field(metadata={"static": True})
    init_guess: str = dataclasses.field(metadata={"static": True})
    atomic_numbers: tuple = dataclasses.field(metadata={"static": True})

    @property
    def restricted(self) -> bool:
        return self.occupation.restricted

    @property
    def density_fitting(self) -> bool:
        return self.jk.density_fitting

    @property
    def nao(self) -> int:
        return self.basis.nao

    @property
    def semilocal(self) -> bool:
        """Whether the functional has a semilocal (grid) part; Hartree-Fock has none."""
        return self.xc.family != "hf"

    def replace(self, **changes) -> Setup:
        """A copy with some fields changed (e.g. ``options=...``)."""
        return dataclasses.replace(self, **changes)


def build(
    mol: Molecule,
    basis: str = "def2-svp",
    xc: str | Functional = "b3lyp",
    grid_level: int = 3,
    density_fit: bool | None = None,
    auxbasis: str | None = None,
    unrestricted: bool | None = None,
    block_size: int = 4096,
    init_guess: str = "sad",
    disp: str | None = None,
    atm: bool = False,
    **scf_options,
) -> Setup:
    """Set up a calculation of ``mol``. ``xc``: a PySCF functional string (``"hf"`` is
    Hartree-Fock), optionally with a D3 suffix as PySCF and ORCA users write it
    (``"b3lyp-d3bj"``, ``"pbe0-d3zero"``, ``"b3lyp-d3bj-atm"``), or a
    :class:`~dftad.xc.functional.Functional`; ``disp``: ``"d3bj"`` or ``"d3zero"`` (or ``"bj"``,
    ``"zero"``) adds DFT-D3 with the functional's published parameters, ``atm`` its three-body
    term (:mod:`dftad.dispersion`); ``unrestricted`` defaults to
    ``mol.spin != 0``; ``density_fit=None`` picks density fitting when the incore ERI tensor
    would exceed :data:`INCORE_BYTES`; ``scf_options`` are :class:`~dftad.scf.SCFOptions`
    fields."""
    bas = Basis.build(mol, basis)
    coords = jax.device_put(mol.coords)
    d3 = None
    if isinstance(xc, str) and xc.endswith(".json"):  # a trained functional (dftad train)
        from .xc.models import functional_from_file

        xc = functional_from_file(xc)
    if not isinstance(xc, Functional):
        xc, damping, atm_suffix = dispersion.split_method(str(xc))
        if damping is not None:
            if disp is not None:
                raise ValueError(f"dispersion given twice: in the method ({damping}) and as "
                                 f"disp={disp!r}")
            disp, atm = damping, atm or atm_suffix
        if atm and disp is None:
            raise ValueError("the ATM three-body term needs a D3 correction (disp='d3bj' or "
                             "'d3zero')")
        if disp is not None:
            damping = str(disp).lower().removeprefix("d3").strip("()") or "zero"
            params = dispersion.d3_params(xc, {"0": "zero"}.get(damping, damping), atm)
            d3 = Dispersion(dispersion.setup(mol.atomic_numbers),
                            {k: jnp.asarray(v, dtype=jnp.float64) for k, v in params.items()})
    elif disp is not None:
        raise ValueError("disp= needs the functional's name (its D3 parameters are looked up "
                         "by name); pass xc as a string")
    functional = xc if isinstance(xc, Functional) else _functional(xc)
    if unrestricted is None:
        unrestricted = mol.spin != 0
    occupation = Occupation(*mol.nelec, restricted=not unrestricted)
    if max(mol.nelec) > bas.nao:
        raise ValueError(f"{max(mol.nelec)} electrons of one spin do not fit in {bas.nao} "
                         "orbitals")
    if density_fit is None:
        density_fit = 8 * bas.nao**4 > INCORE_BYTES
    if density_fit:
        if auxbasis is None:
            auxbasis = default_auxbasis(mol, basis, functional.is_hybrid)
        aux = Basis.build(mol, auxbasis)
        jk = DFJK(aux, two_electron.build_plan(bas, coords, aux, kind="3c"),
                  two_electron.build_plan(bas, coords, aux, kind="2c"), auxbasis)
    else:
        jk = IncoreJK(two_electron.build_plan(bas, coords))
    if init_guess not in GUESS_KINDS:
        raise ValueError(f"init_guess must be one of {GUESS_KINDS}, got {init_guess!r}")
    semilocal = functional.family != "hf"
    return Setup(
        basis=bas,
        charges=jax.device_put(np.asarray(mol.atomic_numbers, dtype=np.float64)),
        xc=functional,
        jk=jk,
        disp=d3,
        grid=Grid.build(mol, level=grid_level) if semilocal else None,
        occupation=occupation,
        options=scf.SCFOptions(**scf_options),
        block_size=block_size,
        basis_name=str(basis),
        init_guess=init_guess,
        atomic_numbers=tuple(mol.atomic_numbers),
    )


def _functional(name: str) -> Functional:
    try:
        return parse_xc(str(name).lower())
    except KeyError as err:  # an unknown component name inside a functional string
        raise ValueError(str(err).strip("'\"")) from None


def default_auxbasis(mol: Molecule, basis: str, exact_exchange: bool = True) -> str:
    """The auxiliary basis PySCF's ``density_fit()`` uses for ``basis``: its predefined fitting
    set for the functional (``df.addons.predefined_auxbasis``: JK fitting with exact exchange, J
    fitting for a pure functional, e.g. def2-universal-jfit for def2 bases) and, where there is
    none (STO-nG or Pople bases with a pure functional), the JK-fitting default of
    ``make_auxbasis`` that PySCF's DF object falls back to."""
    from pyscf import df

    from .interop.pyscf import to_pyscf_mole

    pmol = to_pyscf_mole(mol, basis)
    xc = "HF" if exact_exchange else "LDA"  # PySCF looks only at whether xc is hybrid
    aux = df.addons.predefined_auxbasis(pmol, basis, xc) or df.addons.make_auxbasis(pmol)
    names = list(aux.values()) if isinstance(aux, dict) else [aux]
    if not all(isinstance(n, str) for n in names) or len(set(names)) != 1:
        raise ValueError(f"no single auxiliary basis name for {basis!r}: give auxbasis=")
    return names[0]
