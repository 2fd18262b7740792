"""Geometry optimization (``dftad.geomopt``): dftad's energies and forces drive geomeTRIC.

geomeTRIC (the internal-coordinate optimizer PySCF uses, :func:`geometric.optimize.
run_optimizer`) proposes the steps; each step here is one SCF, started from the previous step's
density, and its analytic forces (:func:`dftad.energy.kernel_stepwise`, then
:func:`dftad.forces.gradient_at`: the same compiled pieces for every geometry of the molecule).

    opt = dftad.optimize(mol, "def2-svp", "b3lyp")            # opt.mol: the optimized geometry
    opt = geomopt.run(setup, mol, hessian="first+last")      # exact Hessians, frequencies
    opt = geomopt.run(setup, mol, transition=True)           # a saddle point

Convergence is geomeTRIC's, by criteria set (:data:`CONVERGENCE_SETS`; default ``"gau"``:
energy change 1e-6 Ha, RMS/max gradient 3e-4/4.5e-4 Ha/Bohr, RMS/max displacement
1.2e-3/1.8e-3 A). Constraints are geomeTRIC's constraint file format (``$freeze``, ``$set``,
``$scan`` of ``xyz``, ``distance``, ``angle``, ``dihedral``). ``hessian``: ``"first"`` gives
geomeTRIC the AD Hessian (through the implicit SCF, :func:`dftad.properties.
second_derivatives`) as its initial Hessian, ``"last"`` computes it at the end for the harmonic
frequencies (``opt.vibrations``; :func:`dftad.properties.harmonic_analysis`), ``"first+last"``
both. A transition-state search starts from the AD Hessian. ``optimizer="ase-bfgs"`` runs ASE's
Cartesian BFGS on the same evaluations instead (:mod:`dftad.ase` is the full ASE calculator).

Needs the ``optimize`` extra (``pip install dftad[optimize]``: geomeTRIC).
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import bfgs, energy, forces, hessian_pieces, properties
from .constants import ANGSTROM_BOHR, BOHR_ANGSTROM
from .hamiltonian import Result
from .molecule import Molecule
from .pieces import repeated
from .setup import Setup, build

CONVERGENCE_SETS = ("gau", "gau_loose", "gau_tight", "gau_verytight", "nwchem_loose",
                    "turbomole", "interfrag_tight")
"""geomeTRIC's criteria sets (energy change, RMS/max gradient, RMS/max displacement)."""

HESSIAN_CHOICES = ("never", "first", "last", "first+last")


class SCFNotConverged(RuntimeError):
    """An SCF of the optimization did not converge (DIIS and second-order steps)."""


class Step(NamedTuple):
    """One energy and gradient evaluation of the optimization (Hartree, Bohr)."""

    step: int  # 1, 2, ...
    coords: np.ndarray  # (natm, 3) Bohr
    e_tot: float
    e_change: float  # from the previous step (0 at the first)
    max_force: float  # max over atoms of |F_A|, Hartree/Bohr
    rms_force: float  # sqrt(mean over atoms of |F_A|^2) (geomeTRIC's RMS gradient)
    displacement: float  # max over atoms of the move from the previous step, Bohr
    scf_cycles: int
    trust: float | None = None  # the optimizer's trust radius that bounded this step, Angstrom
    #                             (geomeTRIC: on the RMS atomic move; jax: on the step's norm)


class OptResult(NamedTuple):
    """The optimization: ``mol`` the final geometry, ``result`` its energy, forces and SCF."""

    mol: Molecule
    result: Result
    converged: bool
    steps: int  # energy and gradient evaluations (one SCF each)
    trajectory: list[Step]
    hessian: np.ndarray | None  # (natm, 3, natm, 3) Hartree/Bohr^2 at the end (hessian="last")
    vibrations: properties.Vibrations | None

    @property
    def e_tot(self) -> float:
        return float(self.result.e_tot)

    @property
    def n_imaginary(self) -> int | None:
        """Imaginary frequencies at the end (``hessian="last"``), else ``None``."""
        if self.vibrations is None:
            return None
        return int(np.sum(self.vibrations.frequencies_cm1 < 0))


def force_stats(forces) -> tuple[float, float]:
    """(max over atoms of |F_A|, sqrt of the mean over atoms of |F_A|^2), Hartree/Bohr: the
    gradient measures of geomeTRIC's convergence test."""
    norms = np.linalg.norm(np.asarray(forces, dtype=float), axis=1)
    return float(norms.max()), float(np.sqrt(np.mean(norms**2)))


def single_point(setup: Setup, coords, dm0=None, callback=None) -> Result:
    """Energy and forces at ``coords`` (Bohr), the SCF started from ``dm0`` (e.g. the previous
    geometry's density) and continued by second-order steps where DIIS does not converge.
    Raises :class:`SCFNotConverged` rather than return forces of an unconverged density.
    Without ``dm0`` (a first step), the forces' pieces compile beside the SCF
    (:func:`dftad.forces.compile_ahead`)."""
    coords = jnp.asarray(coords)
    with forces.compile_ahead(setup, coords, dm0 is None):
        res = energy.kernel_stepwise(setup, coords, callback, dm0)
    res = energy.finish(setup, coords, res, forces=True, warn=False)
    if not bool(res.converged):
        raise SCFNotConverged(
            f"SCF did not converge (|dE| {abs(float(res.scf.e_change)):.1e}, "
            f"|[F,D]| {float(res.scf.grad_norm):.1e}) at an optimization step")
    return res


def _geometric():
    try:
        import geometric.engine
        import geometric.errors
        import geometric.molecule
        import geometric.optimize
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("geometry optimization needs geomeTRIC: "
                          "pip install 'dftad[optimize]' (or pip install geometric)") from err
    return geometric


def _engine_class():
    geometric = _geometric()

    class Engine(geometric.engine.Engine):
        """geomeTRIC's view of dftad: coordinates (flat, Bohr) -> energy and gradient."""

        def __init__(self, gmol, evaluate):
            super().__init__(gmol)
            self.evaluate = evaluate

        def calc_new(self, coords, dirname):
            self.evaluate.trust = _geometric_trust()
            res = self.evaluate(coords)
            return {"energy": float(res.e_tot),
                    "gradient": -np.asarray(res.forces, dtype=float).ravel()}

    return Engine


def _geometric_trust() -> float | None:
    """The trust radius (Angstrom) of the geomeTRIC optimizer that asked for this evaluation:
    its ``Optimizer`` is up the call stack (run_optimizer hands the engine no reference to it);
    ``None`` where it is not found (another geomeTRIC version)."""
    frame = sys._getframe(1)
    while frame is not None:
        obj = frame.f_locals.get("self")
        if type(obj).__name__ == "Optimizer" and isinstance(getattr(obj, "trust", None),
                                                            (int, float)):
            return float(obj.trust)
        frame = frame.f_back
    return None


_LOG_INI = """[loggers]
keys=root
[handlers]
keys=file_handler
[formatters]
keys=formatter
[logger_root]
level=INFO
handlers=file_handler
[handler_file_handler]
class=geometric.nifty.RawFileHandler
level=INFO
formatter=formatter
args=(r'%(logfilename)s',)
[formatter_formatter]
format=%(message)s
"""


OPTIMIZERS = ("geometric", "jax", "ase-bfgs")

_bfgs_advance = jax.jit(bfgs.advance)


class _Evaluations:
    """Every energy and gradient of an optimization: the trajectory, the results, the density
    the next SCF starts from."""

    def __init__(self, setup: Setup, callback):
        self.setup, self.callback, self.dm = setup, callback, None
        self.trust = None  # set by the optimizer before each evaluation where it has one
        self.trajectory: list[Step] = []
        self.results: list[tuple[np.ndarray, Result]] = []

    def __call__(self, coords) -> Result:
        coords = np.reshape(np.array(coords, dtype=float), (-1, 3))
        res = single_point(self.setup, coords, self.dm)
        self.dm = res.scf.dm
        self.results.append((coords, res))
        self.record(coords, res)
        return res

    def record(self, coords, res: Result) -> None:
        fmax, frms = force_stats(res.forces)
        prev = self.trajectory[-1] if self.trajectory else None
        step = Step(len(self.trajectory) + 1, np.array(coords), float(res.e_tot),
                    0.0 if prev is None else float(res.e_tot) - prev.e_tot, fmax, frms,
                    0.0 if prev is None else float(np.linalg.norm(coords - prev.coords,
                                                                  axis=1).max()),
                    int(res.scf.cycles), None if prev is None else self.trust)
        self.trajectory.append(step)
        if self.callback is not None:
            self.callback(step)

    def at(self, coords) -> tuple[np.ndarray, Result]:
        """The evaluation nearest ``coords`` (an optimizer's final structure is one it
        evaluated, after a rejected step not the last one)."""
        return min(self.results, key=lambda cr: np.abs(cr[0] - coords).max())


@repeated
def run(setup: Setup, mol: Molecule, *, optimizer: str = "geometric", convergence: str = "gau",
        max_steps: int = 300, constraints: str | None = None, transition: bool = False,
        hessian: str = "never", callback: Callable[[Step], None] | None = None,
        workdir: str | None = None, **geometric_options) -> OptResult:
    """Optimize ``mol`` (a minimum, or with ``transition`` a first-order saddle point) with
    the calculation ``setup`` (built for ``mol``: :func:`dftad.build`).

    ``optimizer``: ``"geometric"`` (internal coordinates; everything below), ``"jax"``
    (:mod:`dftad.bfgs`, Cartesian BFGS in JAX, the ``gau`` criteria) or ``"ase-bfgs"`` (ASE's
    Cartesian BFGS, converged when the largest atomic force is below the set's max gradient: ASE
    tests nothing else); the last two take no constraints, transition states or initial
    Hessian.
    ``constraints``: the text of a geomeTRIC constraints file; ``hessian``: one of
    :data:`HESSIAN_CHOICES`; ``callback(step)`` after each energy and gradient; ``workdir``:
    where geomeTRIC writes its log (``dftad_geometric.log``) and scratch (default a temporary
    directory, removed afterwards). ``geometric_options`` go to geomeTRIC's ``run_optimizer``
    (e.g. ``coordsys="cart"``, ``trust=0.05``).

    Returns an :class:`OptResult` whose ``converged`` is ``False`` when ``max_steps``
    optimization cycles were not enough (no exception); an SCF that does not converge raises
    :class:`SCFNotConverged`."""
    convergence = convergence.lower()
    if convergence not in CONVERGENCE_SETS:
        raise ValueError(f"unknown convergence set {convergence!r}; "
                         f"choose one of {', '.join(CONVERGENCE_SETS)}")
    if hessian not in HESSIAN_CHOICES:
        raise ValueError(f"hessian must be one of {', '.join(HESSIAN_CHOICES)}, got {hessian!r}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
    if max_steps < 1:
        raise ValueError(f"max_steps must be at least 1, got {max_steps}")
    if transition and hessian in ("never", "last"):
        hessian = "first" if hessian == "never" else "first+last"
    if optimizer == "jax" and convergence != "gau":
        raise ValueError(f"optimizer 'jax' (dftad.bfgs) tests the gau criteria only, "
                         f"got {convergence!r}")
    if optimizer != "geometric" and (transition or constraints is not None
                                     or hessian in ("first", "first+last")):
        raise ValueError(f"{optimizer} takes no constraints, transition states or initial "
                         "Hessian: use optimizer='geometric'")
    evals = _Evaluations(setup, callback)
    if optimizer == "geometric":
        final, converged = _run_geometric(evals, mol, convergence, max_steps, constraints,
                                          transition, hessian, workdir, geometric_options)
    elif optimizer == "jax":
        final, converged = _run_jax_bfgs(evals, mol, max_steps)
    else:
        final, converged = _run_ase_bfgs(evals, mol, convergence, max_steps)
    coords, res = evals.at(final)
    hess = vib = None
    if hessian in ("last", "first+last"):
        hess = _hessian(setup, coords)
        vib = properties.harmonic_analysis(hess, coords, mol.masses)
    return OptResult(mol.with_coords(coords), res, converged, len(evals.trajectory),
                     evals.trajectory, hess, vib)


def _run_geometric(evals, mol, convergence, max_steps, constraints, transition, hessian,
                   workdir, geometric_options):
    """geomeTRIC's run_optimizer on :class:`_Evaluations`: (final coords in Bohr, converged)."""
    geometric = _geometric()
    gmol = geometric.molecule.Molecule()
    gmol.elem = list(mol.symbols)
    gmol.xyzs = [np.asarray(mol.coords) * BOHR_ANGSTROM]
    if constraints is not None:
        _check_constraints(geometric, gmol, constraints)
    engine = _engine_class()(gmol, evals)

    with tempfile.TemporaryDirectory(prefix="dftad-opt-") as tmp:
        where = workdir or tmp
        os.makedirs(where, exist_ok=True)
        prefix = os.path.join(where, "dftad_geometric")
        log_ini = os.path.join(where, "dftad_geometric_log.ini")
        with open(log_ini, "w") as f:
            f.write(_LOG_INI)
        kwargs = dict(customengine=engine, prefix=prefix, logIni=log_ini,
                      convergence_set=convergence.upper(), maxiter=max_steps,
                      transition=transition, hessian="never", **geometric_options)
        if constraints is not None:
            kwargs["constraints"] = os.path.join(where, "constraints.txt")
            with open(kwargs["constraints"], "w") as f:
                f.write(constraints)
        if hessian in ("first", "first+last"):
            kwargs["hessian"] = "file:" + os.path.join(where, "hessian_first.txt")
            np.savetxt(kwargs["hessian"][5:], _hessian(evals.setup, mol.coords).reshape(
                3 * mol.natm, 3 * mol.natm))
        try:
            progress = geometric.optimize.run_optimizer(**kwargs)
            return np.asarray(progress.xyzs[-1]) * ANGSTROM_BOHR, True
        except geometric.errors.GeomOptNotConvergedError:
            return evals.results[-1][0], False
        finally:
            _quiet_geometric_logging()


def _run_jax_bfgs(evals, mol, max_steps):
    """dftad's JAX BFGS (:mod:`dftad.bfgs`) driven from Python on :class:`_Evaluations`: its
    jitted update after each evaluation; (final coords in Bohr, converged)."""
    res = evals(mol.coords)
    st = bfgs.start(evals.setup, mol.coords, max_steps, dm0=res.scf.dm)
    while True:
        st = _bfgs_advance(st, res.e_tot, res.forces, res.scf.dm, res.converged)
        if bool(st.converged) or int(st.steps) >= max_steps:
            return np.asarray(st.x).reshape(-1, 3), bool(st.converged)
        evals.trust = float(st.trust) * BOHR_ANGSTROM
        res = evals(np.asarray(st.trial).reshape(-1, 3))


def _run_ase_bfgs(evals, mol, convergence, max_steps):
    """ASE's BFGS on :class:`_Evaluations`: (final coords in Bohr, converged)."""
    import geometric.params
    from ase import Atoms, units
    from ase.calculators.calculator import Calculator, all_changes
    from ase.optimize import BFGS

    class _Calc(Calculator):
        implemented_properties = ("energy", "forces")

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            res = evals(self.atoms.positions * ANGSTROM_BOHR)
            self.results = {"energy": float(res.e_tot) * units.Hartree,
                            "forces": np.asarray(res.forces) * units.Hartree / BOHR_ANGSTROM}

    gmax = geometric.params.OptParams(convergence_set=convergence.upper()).Convergence_gmax
    atoms = Atoms(mol.symbols, positions=mol.coords_angstrom)
    atoms.calc = _Calc()
    converged = BFGS(atoms, logfile=None).run(fmax=gmax * units.Hartree / BOHR_ANGSTROM,
                                              steps=max_steps)
    return atoms.positions * ANGSTROM_BOHR, bool(converged)


def _check_constraints(geometric, gmol, text: str) -> None:
    """geomeTRIC's parse of a constraints text, its errors as one ``ValueError``."""
    import copy

    import geometric.prepare

    try:
        geometric.prepare.parse_constraints(copy.deepcopy(gmol), text)
    except (RuntimeError, ValueError, KeyError, IndexError) as err:
        raise ValueError(f"malformed constraints ({type(err).__name__}: {err}); geomeTRIC's "
                         "format: a line '$freeze', '$set' or '$scan', then lines such as "
                         "'xyz 1-3', 'distance 1 2 [1.0]', 'angle 2 1 3 [104.5]', "
                         "'dihedral 1 2 3 4 [180]'") from err
    if not text.strip():
        raise ValueError("the constraints file is empty")


def _hessian(setup: Setup, coords) -> np.ndarray:
    """The analytic Hessian (natm, 3, natm, 3), Hartree/Bohr^2, one atom's displacements at a
    time (:func:`dftad.properties.second_derivatives_stepwise`: through pieces for closed-shell
    Hartree-Fock, else by AD through the implicit SCF, where ethanol HF/def2-SVP peaks at
    5.7 GB and the one-program Hessian at 22.3 GB)."""
    try:
        d = properties.second_derivatives_stepwise(setup, jnp.asarray(coords))
    except hessian_pieces.CPHFNotConverged as err:
        raise SCFNotConverged(f"{err} (where the Hessian is taken)") from err
    if not bool(d.result.converged):
        raise SCFNotConverged(f"SCF did not converge (|[F,D]| "
                              f"{float(d.result.scf.grad_norm):.1e}) where the Hessian is taken")
    return np.asarray(d.hessian)


def _quiet_geometric_logging():
    """geomeTRIC configures the root logger with its file handler: remove it again."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if type(h).__module__.startswith("geometric"):
            root.removeHandler(h)
            h.close()


def optimize(mol: Molecule, basis="def2-svp", xc="b3lyp", **kwargs) -> OptResult:
    """Build and optimize in one call: ``kwargs`` go to :func:`run` (``convergence``,
    ``max_steps``, ``constraints``, ``transition``, ``hessian``, ``callback``, ``workdir``) or
    else to :func:`dftad.build` (``grid_level``, ``density_fit``, ``disp``, ...)."""
    run_keys = {"optimizer", "convergence", "max_steps", "constraints", "transition", "hessian",
                "callback", "workdir"}
    run_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in run_keys}
    return run(build(mol, basis, xc, **kwargs), mol, **run_kwargs)


def write_trajectory(path, mol: Molecule, trajectory: list[Step]) -> None:
    """Multi-frame xyz (Angstrom), the energy of each step in its comment line."""
    with open(path, "w") as f:
        for s in trajectory:
            f.write(mol.with_coords(s.coords).to_xyz(
                f"step {s.step} E = {s.e_tot:.10f} Eh max|F| = {s.max_force:.2e} Eh/Bohr"))


__all__ = ["OptResult", "SCFNotConverged", "Step", "optimize", "run",
           "single_point", "write_trajectory"]
