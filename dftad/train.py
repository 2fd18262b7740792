"""Training a functional on reaction energies: ``dftad train CONFIG.toml``.

The loss of a batch of reactions r (kcal/mol; E_s from a converged SCF with the model's
functional at theta, :mod:`dftad.learn`):

    L(theta) = w_R mean_r (dE_r(theta) - ref_r)^2,    dE_r = 627.509... sum_s c_rs E_s(theta),
    dL/dtheta = w_R mean_r 2 (dE_r - ref_r) 627.509... sum_s c_rs dE_s/dtheta,

plus, with their weights, terms for the species' reference total energies, forces and
densities (``[loss]`` below; the references are optional per species, :mod:`dftad.dataset`),

with dE_s/dtheta SCF-consistent at each species' fixed point (never unrolled). An SCF that does
not converge leaves its reactions out of that step's loss (counted and reported); the
parameters never see a NaN. Optimizers come from optax.

Config (TOML; every key but ``[data] path`` has a default)::

    [functional]
    model = "b3lyp3"                    # or "subset" with base = "b97", train = ["alpha", ...],
                                        # or "neural" with base = "pbe", hidden = [16, 16],
                                        # seed = 0, learn_hyb = false (dftad.xc.neural)
    start = { a0 = 0.24 }               # optional: start values over the model's own
    [data]
    path = "molecules/w4-11"            # a dataset folder (dftad.dataset)
    basis = "def2-svp"
    grid_level = 2
    max_reactions = 0                   # > 0: the first N reactions of each split (quick runs)
    [loss]                              # weights of the terms (a weighted sum)
    reactions = 1.0                     # mean squared reaction-energy error, (kcal/mol)^2
    energies = 0.0                      # mean squared total-energy error, (kcal/mol)^2, over
                                        # the batch's species with a reference energy
    forces = 0.0                        # mean over molecules of mean |F - F_ref|^2 in
                                        # (kcal/mol/A)^2 (F_ref from the dataset's references,
                                        # else zero: equilibrium geometries)
    densities = 0.0                     # mean over the batch's species with a reference
                                        # density of int (rho - rho_ref)^2 dr (e^2/Bohr^3)
                                        # (forces and densities: through the implicit
                                        # derivative of the density, one compiled program per
                                        # molecule)
    [scf]                               # optional: SCF options (dftad.scf.SCFOptions)
    conv_tol = 1e-10
    [optimizer]
    name = "adam"                       # any optax optimizer taking learning_rate
    learning_rate = 0.01
    [run]
    steps = 50                          # optimizer steps
    batch = 8                           # reactions per step (drawn without replacement per epoch)
    seed = 0
    checkpoint = "runs/NAME"            # folder: checkpoint, metrics.csv, loss.png, report
    eval_every = 10                     # validation MAE every N steps (0: only at the end)
    devices = 0                         # local JAX devices the molecules are spread over
                                        # (0: all); with jax.distributed, over processes too
                                        # (dftad.parallel)

The checkpoint folder holds everything a run has finished: theta, the optimizer state, the
random generator, each species' last density (the next SCF starts from it) and the metrics.
It is written after every step (atomically); ``--resume`` continues from it and reaches the
same parameters, bit for bit, as a run that was never interrupted.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import os
import pickle
import time
import tomllib

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from . import learn, parallel
from .constants import BOHR_ANGSTROM, HARTREE_KCAL
from .dataset import SPLITS, Dataset, load_dataset
from .pieces import repeated
from .scf import SCFOptions
from .xc.models import model_from_config, start_values

DEFAULTS = {
    "functional": {"model": "b3lyp3"},
    "data": {"basis": "def2-svp", "grid_level": 2, "max_reactions": 0},
    "loss": {"reactions": 1.0, "energies": 0.0, "forces": 0.0, "densities": 0.0},
    "scf": {},
    "optimizer": {"name": "adam", "learning_rate": 0.01},
    "run": {"steps": 50, "batch": 8, "seed": 0, "checkpoint": "runs/train", "eval_every": 10,
            "devices": 0},
}


class ConfigError(ValueError):
    """A training config that cannot be used (the message says why)."""


def read_config(path) -> dict:
    """The config at ``path`` over :data:`DEFAULTS` (unknown tables or keys are errors)."""
    try:
        with open(path, "rb") as f:
            user = tomllib.load(f)
    except OSError as err:
        raise ConfigError(f"cannot read the config {str(path)!r}: {err}") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    return make_config(user, str(path))


def make_config(user: dict, path: str = "config") -> dict:
    """A config from its tables (as :func:`read_config` reads them) over :data:`DEFAULTS`."""
    cfg = {k: dict(v) for k, v in DEFAULTS.items()}
    for table, values in user.items():
        if table not in DEFAULTS or not isinstance(values, dict):
            raise ConfigError(f"{path}: unknown table [{table}]; known: "
                              f"{', '.join(DEFAULTS)}")
        known = set(DEFAULTS[table]) | {"functional": {"base", "train", "start", "hidden",
                                                       "seed", "learn_hyb"},
                                        "data": {"path"},
                                        "scf": set(SCFOptions._fields)}.get(table, set())
        for key in values:
            if key not in known and table != "optimizer":
                raise ConfigError(f"{path}: unknown key {key!r} in [{table}]; known: "
                                  f"{', '.join(sorted(known))}")
        cfg[table].update(values)
    for key, w in cfg["loss"].items():
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not w >= 0:
            raise ConfigError(f"{path}: [loss] {key} must be a weight >= 0")
    if cfg["optimizer"].get("name") == "levenberg_marquardt" and any(
            cfg["loss"][k] for k in ("energies", "forces", "densities")):
        raise ConfigError(f"{path}: levenberg_marquardt fits reaction energies only; use an "
                          "optax optimizer for total-energy, force or density terms")
    if "path" not in cfg["data"]:
        raise ConfigError(f"{path}: [data] needs path = \"<dataset folder>\"")
    run = cfg["run"]
    for key in ("steps", "batch"):
        if not isinstance(run[key], int) or run[key] < 1:
            raise ConfigError(f"{path}: [run] {key} must be a positive integer")
    if not isinstance(run["devices"], int) or run["devices"] < 0:
        raise ConfigError(f"{path}: [run] devices must be an integer >= 0 (0: all)")
    return cfg


# ---------------------------------------------------------------------- the loss
@dataclasses.dataclass
class Trainer:
    """A model, a dataset and the species' calculations (:class:`dftad.learn.Species`)."""

    model: object
    data: Dataset
    basis: str
    grid_level: int
    scf: dict = dataclasses.field(default_factory=dict)
    force_weight: float = 0.0
    devices: int = 1
    species: dict = dataclasses.field(default_factory=dict)
    reaction_weight: float = 1.0
    energy_weight: float = 0.0
    density_weight: float = 0.0

    @classmethod
    def from_config(cls, cfg: dict) -> Trainer:
        data, loss = cfg["data"], cfg["loss"]
        try:
            dataset = load_dataset(data["path"])
        except ValueError as err:
            raise ConfigError(str(err)) from None
        return cls(model_from_config(cfg["functional"]), dataset,
                   str(data["basis"]), int(data["grid_level"]), dict(cfg["scf"]),
                   float(loss["forces"]), int(cfg["run"]["devices"]),
                   reaction_weight=float(loss["reactions"]),
                   energy_weight=float(loss["energies"]),
                   density_weight=float(loss["densities"]))

    @functools.cached_property
    def layout(self) -> parallel.Layout:
        """Which device of which process computes each species (:mod:`dftad.parallel`)."""
        return parallel.Layout(self.data.species, parallel.local_devices(self.devices))

    def map(self, fn, names, pack=None, unpack=None) -> dict:
        """{name: fn(species)} over ``names``, data parallel (:meth:`dftad.parallel.Layout.map`;
        the species are set up here first, on the Python side)."""
        for n in names:
            if self.layout.owner(n)[0] == self.layout.process:
                self.calc(n)
        return self.layout.map(lambda n: fn(self.species[n]), names, pack, unpack)

    def calc(self, name: str) -> learn.Species:
        if name not in self.species:
            f = self.model.functional(self.model.init())
            self.species[name] = learn.Species.build(name, self.data.species[name], f, self.basis,
                                                     grid_level=self.grid_level, **self.scf)
        return self.species[name]

    def energies(self, names, theta):
        """{name: :class:`dftad.learn.Point`} at ``theta``: through the shared SCF pieces, or,
        when omega is learned, through the implicitly differentiated whole SCF program (one
        compiled program per molecule, :func:`dftad.learn.energy_and_grad_implicit`)."""
        fn = (learn.energy_and_grad_implicit if learn.model_trains_omega(self.model)
              else learn.energy_and_grad)
        _, unravel = ravel_pytree(theta)

        def pack(p):
            return np.concatenate([[p.e_tot, p.converged, p.cycles],
                                   np.asarray(ravel_pytree(p.grad)[0])])

        def unpack(a):
            return learn.Point(float(a[0]), unravel(jnp.asarray(a[3:])), bool(a[1]), int(a[2]))

        return self.map(lambda sp: fn(sp, self.model, theta), names, pack, unpack)

    def residuals(self, reactions, theta, points=None):
        """(errors, jacobian, failed): the error dE_r - ref_r (kcal/mol) of each reaction whose
        species all converged, d(error)/dtheta (a pytree like theta) of each, and the names of
        the species whose SCF did not converge. ``points``: :meth:`energies` if computed."""
        if points is None:
            points = self.energies(self.data.species_of(reactions), theta)
        failed = sorted(n for n, p in points.items() if not p.converged)
        errors, jac = {}, {}
        for r in reactions:
            if set(r.species) & set(failed):
                continue
            scales = [HARTREE_KCAL * c for c in r.coefficients]
            pts = [points[s] for s in r.species]
            errors[r.name] = sum(k * p.e_tot for k, p in zip(scales, pts)) - r.reference
            jac[r.name] = _combine(scales, [p.grad for p in pts])
        return errors, jac, failed

    def loss(self, reactions, theta):
        """(loss, grad, errors (kcal/mol) per reaction kept, names of unconverged species):
        the weighted sum of the loss terms and its gradient (module docstring)."""
        points = self.energies(self.data.species_of(reactions), theta)
        errors, jac, failed = self.residuals(reactions, theta, points)
        terms = []
        if self.reaction_weight and errors:
            w = self.reaction_weight
            terms.append((w * float(np.mean([e * e for e in errors.values()])),
                          _combine([2.0 * w * e / len(errors) for e in errors.values()],
                                   [jac[n] for n in errors])))
        if self.energy_weight:
            terms.append(self.energy_term(points))
        kept = [r for r in reactions if not set(r.species) & set(failed)]
        if self.force_weight and kept:
            terms.append(self.force_term(kept, theta))
        if self.density_weight and kept:
            terms.append(self.density_term(kept, theta))
        terms = [t for t in terms if t is not None]
        if not terms:
            return float("nan"), jax.tree.map(jnp.zeros_like, theta), errors, failed
        return (sum(v for v, _ in terms), _combine([1.0] * len(terms), [g for _, g in terms]),
                errors, failed)

    def energy_term(self, points: dict):
        """w_E mean_s (627.509... (E_s - E_ref,s))^2 over the converged species of ``points``
        with a reference energy, and its gradient; None when there are none."""
        refs = self.data.references
        names = [n for n, p in points.items()
                 if p.converged and n in refs and refs[n].energy is not None]
        if not names:
            return None
        errors = [HARTREE_KCAL * (points[n].e_tot - refs[n].energy) for n in names]
        w, m = self.energy_weight, len(names)
        return (w * sum(e * e for e in errors) / m,
                _combine([2.0 * w * HARTREE_KCAL * e / m for e in errors],
                         [points[n].grad for n in names]))

    def density_term(self, reactions, theta):
        """w_D mean_s int (rho_s - rho_ref,s)^2 dr (e^2/Bohr^3) over the molecules of
        ``reactions`` with a reference density, and its gradient
        (:func:`dftad.learn.density_error_and_grad`); None when there are none."""
        refs = self.data.references
        names = [n for n in self.data.species_of(reactions)
                 if n in refs and refs[n].density is not None]
        for n in names:
            nao = self.calc(n).setup.basis.nao
            if refs[n].density_basis.lower() != self.basis.lower() or \
                    refs[n].density.shape != (nao, nao):
                raise ConfigError(f"{n}: the reference density is in {refs[n].density_basis} "
                                  f"{refs[n].density.shape}; training uses {self.basis} "
                                  f"({nao} AOs)")
        if not names:
            return None
        _, unravel = ravel_pytree(theta)

        def pack(r):
            return np.concatenate([[r[0], r[2]], np.asarray(ravel_pytree(r[1])[0])])

        def unpack(a):
            return float(a[0]), unravel(jnp.asarray(a[2:])), bool(a[1])

        results = self.map(lambda sp: learn.density_error_and_grad(
            sp, self.model, theta, refs[sp.name].density), names, pack, unpack)
        kept = [n for n in names if results[n][2]]
        if not kept:
            return None
        w, m = self.density_weight, len(kept)
        return (w * sum(results[n][0] for n in kept) / m,
                _combine([w / m] * m, [results[n][1] for n in kept]))

    def force_term(self, reactions, theta):
        """w_F mean_s mean_(atoms, xyz) |F_s - F_ref,s|^2 in (kcal/mol/A)^2 over the molecules
        (two atoms or more) of ``reactions``, F_ref from the dataset's references or else zero
        (equilibrium geometries), and its gradient (through the implicit second derivative,
        :func:`dftad.learn.force_error_and_grad`)."""
        names = [n for n in self.data.species_of(reactions) if self.data.species[n].natm > 1]
        unit = (HARTREE_KCAL / BOHR_ANGSTROM) ** 2
        _, unravel = ravel_pytree(theta)

        def pack(r):
            return np.concatenate([[r[0], r[3]], np.asarray(ravel_pytree(r[1])[0])])

        def unpack(a):
            return float(a[0]), unravel(jnp.asarray(a[2:])), None, bool(a[1])

        refs = self.data.references

        def error(sp):
            ref = refs.get(sp.name)
            return learn.force_error_and_grad(sp, self.model, theta,
                                              None if ref is None else ref.forces)

        results = self.map(error, names, pack, unpack)
        values, grads = [], []
        for n in names:
            v, g, _, converged = results[n]
            if converged:
                k = self.force_weight * unit / (3 * self.data.species[n].natm)
                values.append(k * v)
                grads.append(jax.tree.map(lambda x, k=k: k * x, g))
        if not values:
            return 0.0, jax.tree.map(jnp.zeros_like, theta)
        m = len(values)
        return sum(values) / m, _combine([1.0 / m] * m, grads)


def _combine(scales, trees):
    """sum_i scales[i] * trees[i] (pytrees of one structure)."""
    return jax.tree.map(lambda *leaves: sum(k * x for k, x in zip(scales, leaves)), *trees)


def mae(errors: dict) -> float:
    return float(np.mean(np.abs(list(errors.values())))) if errors else float("nan")


# ---------------------------------------------------------------------- the run
@dataclasses.dataclass
class State:
    """Everything a run has finished (what the checkpoint holds)."""

    step: int
    theta: dict
    opt_state: object
    rng: dict  # numpy bit generator state
    order: list  # the current epoch's remaining reactions (names)
    densities: dict  # species name -> last converged density
    rows: list  # metrics rows so far


CHECKPOINT = "checkpoint.pkl"
METRICS = "metrics.csv"
COLUMNS = ("step", "loss", "train_mae", "validation_mae", "reactions", "unconverged", "seconds",
           "theta")


def _host(tree):
    return jax.tree.map(lambda a: np.asarray(a) if isinstance(a, jax.Array) else a, tree)


def _device(tree):
    return jax.tree.map(lambda a: jax.device_put(a) if isinstance(a, np.ndarray)
                        and a.dtype.kind in "fiub" else a, tree)


def _checkpoint(folder: str) -> str:
    """The checkpoint file of this process (one per process with jax.distributed: each holds
    the last densities of its own species)."""
    if jax.process_count() == 1:
        return os.path.join(folder, CHECKPOINT)
    return os.path.join(folder, f"checkpoint.{jax.process_index()}.pkl")


def save(folder: str, state: State) -> None:
    """Write the checkpoint atomically (a crash mid-write leaves the previous one)."""
    os.makedirs(folder, exist_ok=True)
    path = _checkpoint(folder)
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        pickle.dump(dataclasses.replace(state, theta=_host(state.theta),
                                        opt_state=_host(state.opt_state)), f)
    os.replace(tmp, path)
    if jax.process_index() != 0:
        return
    with open(os.path.join(folder, METRICS), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        w.writerows([[row.get(c, "") for c in COLUMNS] for row in state.rows])


def load_state(folder: str) -> State:
    path = _checkpoint(folder)
    try:
        with open(path, "rb") as f:
            state = pickle.load(f)
    except FileNotFoundError:
        raise ConfigError(f"--resume: no checkpoint in {folder!r}") from None
    except Exception as err:  # noqa: BLE001 - a damaged file
        raise ConfigError(f"--resume: cannot read {path}: {err}") from None
    return dataclasses.replace(state, theta=_device(state.theta),
                               opt_state=_device(state.opt_state))


class LevenbergMarquardt:
    """Levenberg-Marquardt for the sum of squares of the reaction errors (Marquardt, J. Soc.
    Ind. Appl. Math. 11, 431 (1963); Nocedal and Wright, Numerical Optimization, ch. 10): with
    the errors r and their Jacobian J at theta,

        (J^T J + mu diag(J^T J)) delta = -J^T r,

    theta + delta is accepted when it lowers sum r^2 (then mu /= 3), else rejected (mu *= 4).
    For models with few parameters (B3LYP's three, a B97 series) it converges in a handful of
    steps where first-order methods crawl along the ill-conditioned valley. It uses every
    training reaction at each step (``batch`` is ignored); one SCF per species per step.
    ``[optimizer] name = "levenberg_marquardt"``, ``damping`` (initial mu, default 1e-3)."""

    def __init__(self, damping: float = 1e-3):
        self.damping = float(damping)

    def init(self, theta) -> dict:
        return {"damping": self.damping, "errors": None, "jac": None, "names": None}

    def step(self, trainer: Trainer, reactions, state: State):
        """One accepted or rejected step: ``(loss, errors, failed)`` at the new theta."""
        opt = state.opt_state
        flat, unravel = ravel_pytree(state.theta)
        first_failed = []
        if opt["errors"] is None:
            errors, jac, first_failed = trainer.residuals(reactions, state.theta)
            opt.update(_lm_arrays(errors, jac))
        r, J = np.asarray(opt["errors"]), np.asarray(opt["jac"])
        jtj = J.T @ J
        scale = np.maximum(np.diag(jtj), 1e-12 * max(np.diag(jtj).max(), 1e-300))
        delta = np.linalg.solve(jtj + opt["damping"] * np.diag(scale), -J.T @ r)
        trial = unravel(flat + delta)
        errors, jac, failed = trainer.residuals(reactions, trial)
        new = _lm_arrays(errors, jac)
        if new["names"] == opt["names"] and np.sum(new["errors"] ** 2) < np.sum(r * r):
            state.theta = trial
            opt.update(new, damping=max(opt["damping"] / 3.0, 1e-12))
            kept = errors
        else:
            opt["damping"] *= 4.0
            kept = dict(zip(opt["names"], opt["errors"]))
        loss = float(np.mean(np.square(opt["errors"])))
        return loss, kept, sorted(set(failed) | set(first_failed))


def _lm_arrays(errors: dict, jac: dict) -> dict:
    names = list(errors)
    return {"names": names, "errors": np.array([errors[n] for n in names]),
            "jac": np.array([np.asarray(ravel_pytree(jac[n])[0]) for n in names])}


def optimizer(table: dict):
    import optax

    name = str(table.get("name", "adam"))
    if name == "levenberg_marquardt":
        return LevenbergMarquardt(**{k: v for k, v in table.items()
                                     if k not in ("name", "learning_rate")})
    maker = getattr(optax, name, None)
    if maker is None or not callable(maker):
        raise ConfigError(f"unknown optimizer {name!r} (an optax optimizer such as adam, sgd)")
    kwargs = {k: v for k, v in table.items() if k != "name"}
    try:
        return maker(**kwargs)
    except TypeError as err:
        raise ConfigError(f"optimizer {name!r}: {err}") from None


def _batch(state: State, names: list, size: int):
    """The next ``size`` reactions of the epoch's shuffled order (a new epoch reshuffles)."""
    rng = np.random.default_rng()
    rng.bit_generator.state = state.rng
    out = []
    while len(out) < min(size, len(names)):
        if not state.order:
            state.order = [names[i] for i in rng.permutation(len(names))]
        out.append(state.order.pop(0))
    state.rng = rng.bit_generator.state
    return out


def _theta_text(theta) -> str:
    return " ".join(f"{k}={np.array2string(np.asarray(v), precision=6, separator=',')}"
                    for k, v in theta.items())


@repeated
def run(cfg: dict, resume: bool = False, progress=True, stop_after: int | None = None):
    """Train as ``cfg`` says (module docstring); returns the final :class:`State`.
    ``stop_after``: stop (as if interrupted) after this many steps of this call."""
    trainer = Trainer.from_config(cfg)
    model, data = trainer.model, trainer.data
    limit = int(cfg["data"]["max_reactions"])
    train = list(data.reactions_in("train"))
    valid = list(data.reactions_in("validation"))
    if limit > 0:
        train, valid = train[:limit], valid[:limit]
    if not train:
        raise ConfigError(f"dataset {data.path!r} has no training reactions")
    by_name = {r.name: r for r in data.reactions}
    runcfg = cfg["run"]
    folder = str(runcfg["checkpoint"])
    opt = optimizer(cfg["optimizer"])
    if resume:
        state = load_state(folder)
    elif os.path.exists(_checkpoint(folder)):
        raise ConfigError(f"{folder!r} holds a checkpoint of an earlier run: continue it with "
                          "--resume, or give [run] checkpoint another folder")
    else:
        theta = start_values(model, cfg["functional"])
        state = State(0, theta, opt.init(theta), np.random.default_rng(runcfg["seed"])
                      .bit_generator.state, [], {}, [])
    for name, dm in state.densities.items():
        trainer.calc(name).dm = dm
    steps = int(runcfg["steps"])
    bar = _progress(steps, state.step, progress)
    done = 0
    while state.step < steps and (stop_after is None or done < stop_after):
        t0 = time.perf_counter()
        if isinstance(opt, LevenbergMarquardt):
            loss, errors, failed = opt.step(trainer, train, state)
        else:
            batch = [by_name[n] for n in _batch(state, [r.name for r in train], runcfg["batch"])]
            loss, grad, errors, failed = trainer.loss(batch, state.theta)
            if errors:
                updates, state.opt_state = opt.update(grad, state.opt_state, state.theta)
                state.theta = jax.tree.map(lambda t, u: t + u, state.theta, updates)
        state.step += 1
        row = {"step": state.step, "loss": loss, "train_mae": mae(errors),
               "reactions": len(errors), "unconverged": " ".join(failed),
               "theta": _theta_text(state.theta)}
        every = int(runcfg["eval_every"])
        if valid and ((every and state.step % every == 0) or state.step == steps):
            row["validation_mae"] = mae(trainer.loss(valid, state.theta)[2])
        row["seconds"] = round(time.perf_counter() - t0, 3)
        state.rows.append(row)
        state.densities = {n: sp.dm for n, sp in trainer.species.items() if sp.dm is not None}
        save(folder, state)
        done += 1
        bar(state.step, loss, mae(errors), failed)
    return state


def _progress(total: int, start: int, enabled: bool):
    """A progress bar (tqdm) showing the loss; silent when disabled."""
    if not enabled:
        return lambda *a: None
    from tqdm import tqdm

    bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True)

    def update(step, loss, mae_, failed):
        bar.update(step - bar.n)
        bar.set_postfix(loss=f"{loss:.4g}", mae=f"{mae_:.3f} kcal/mol",
                        unconverged=len(failed))
        if step >= total:
            bar.close()

    return update


# ---------------------------------------------------------------------- report
def split_errors(trainer: Trainer, theta, limit: int = 0, splits=SPLITS,
                 tick=lambda: None) -> dict:
    """{split: {reaction: error (kcal/mol)}} of the ``splits`` at ``theta``; ``tick()`` after
    each split (a progress bar)."""
    out = {}
    for which in splits:
        reactions = list(trainer.data.reactions_in(which))
        if limit > 0:
            reactions = reactions[:limit]
        out[which] = trainer.residuals(reactions, theta)[0] if reactions else {}
        # each species keeps its integrals and grid (~100 MB in def2-SVP): a whole dataset
        # of them, for several functionals, does not fit in memory
        trainer.species.clear()
        tick()
    return out


def report(cfg: dict, state: State, compare=("b3lyp", "pbe"), splits=SPLITS,
           progress: bool = False) -> str:
    """A markdown table of MAEs (kcal/mol) per split: the model at its start and after
    training, and the ``compare`` functionals in the same basis and grid; written to
    ``report.md`` in the checkpoint folder, with ``functional.json`` (the trained functional)
    and ``loss.png`` (the loss curve, when matplotlib is installed). ``progress``: a progress
    bar over the (functional, split) evaluations."""
    from .xc.models import Fixed, save_functional

    trainer = Trainer.from_config(cfg)
    limit = int(cfg["data"]["max_reactions"])
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=(2 + len(compare)) * len(splits), desc="report", unit="split",
                   dynamic_ncols=True)
    tick = bar.update if bar is not None else (lambda: None)
    columns = {"start": split_errors(trainer, start_values(trainer.model, cfg["functional"]),
                                     limit, splits, tick),
               "trained": split_errors(trainer, state.theta, limit, splits, tick)}
    for name in compare:
        other = dataclasses.replace(trainer, model=Fixed(name), species={})
        columns[name] = split_errors(other, {}, limit, splits, tick)
    if bar is not None:
        bar.close()
    lines = ["| split | reactions | " + " | ".join(columns) + " |",
             "|---|---|" + "---|" * len(columns)]
    for which in splits:
        n = len(columns["trained"][which])
        lines.append(f"| {which} | {n} | "
                     + " | ".join(f"{mae(c[which]):.2f}" for c in columns.values()) + " |")
    table = "\n".join(lines)
    folder = str(cfg["run"]["checkpoint"])
    text = (f"# {trainer.model.name}: mean absolute errors (kcal/mol)\n\n"
            f"{trainer.data.path}, {trainer.basis}, grid level {trainer.grid_level}, "
            f"{state.step} steps\n\n{table}\n\nparameters: {_theta_text(state.theta)}\n")
    if jax.process_index() != 0:  # with jax.distributed: one process writes
        return text
    os.makedirs(folder, exist_ok=True)
    save_functional(os.path.join(folder, "functional.json"), trainer.model, state.theta)
    with open(os.path.join(folder, "report.md"), "w") as f:
        f.write(text)
    plot_losses(state.rows, os.path.join(folder, "loss.png"))
    return text


def plot_losses(rows: list, path: str) -> bool:
    """The loss curve (training loss and MAE per step, validation MAE where evaluated) as a
    PNG; False when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    steps = [r["step"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.semilogy(steps, [r["train_mae"] for r in rows], label="training batch MAE")
    val = [(r["step"], r["validation_mae"]) for r in rows if r.get("validation_mae") is not None]
    if val:
        ax.semilogy(*zip(*val), "o-", label="validation MAE")
    ax.set_xlabel("step")
    ax.set_ylabel("mean absolute error (kcal/mol)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True
