"""Learnable functionals: a *model* maps trainable parameters theta (a pytree of float64 arrays)
to a :class:`~dftad.xc.functional.Functional`, differentiably.

    model = Subset("b97", ("components.0.c_x", "components.0.c_ss", "components.0.c_ab", "alpha"))
    theta = model.init()                 # {"components.0.c_x": array([...]), ...}
    f = model.functional(theta)          # a Functional, used like any named one
    jax.grad(lambda t: loss(model.functional(t)))(theta)

Models are static (hashable) descriptions; theta is the only thing that changes while
training. Two kinds of parametric model:

* :class:`Subset`: any named functional (or PySCF-style string) with a chosen subset of its
  parameters trained, each named by its path in ``Functional.params`` with dots:
  ``"alpha"``, ``"beta"``, ``"omega"`` (exact exchange and range separation, PySCF's
  ``rsh_coeff`` convention), ``"weights.1"`` (the mixing weight of the second component),
  ``"components.0.kappa"`` (an internal constant of the first component, e.g. PBE's kappa and
  mu, or the B97 power-series coefficients ``c_x``, ``c_ss``, ``c_ab``).
* :class:`B3LYP3`: B3LYP's three mixing coefficients (Becke 1993 as PySCF/libxc define it),

      E_xc = (1 - a0 - ax) E_x^Slater + a0 E_x^HF + ax E_x^B88
             + (1 - ac) E_c^VWN(RPA) + ac E_c^LYP,      (a0, ax, ac) = (0.20, 0.72, 0.81),

  so that the exchange weights always sum to one (the uniform-gas limit of exchange holds for
  every theta).

:func:`model_from_config` builds a model from a ``[functional]`` table of a training config.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from .functional import Functional
from .hybrid import parse_xc


# ---------------------------------------------------------------------- parameter paths
def _split(path: str) -> list:
    return [int(k) if k.isdigit() else k for k in path.split(".")]


def get_path(params, path: str):
    """The leaf of ``params`` at a dotted ``path`` (``"components.0.kappa"``)."""
    node = params
    for key in _split(path):
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            raise ValueError(f"no parameter {path!r}; known: "
                             f"{', '.join(param_paths(params))}") from None
    if isinstance(node, (dict, tuple, list)):
        raise ValueError(f"{path!r} is a group of parameters, not one; known: "
                       f"{', '.join(p for p in param_paths(params) if p.startswith(path))}")
    return node


def set_path(params, path: str, value):
    """A copy of ``params`` with the leaf at ``path`` replaced by ``value``."""

    def put(node, keys):
        if not keys:
            return value
        key, rest = keys[0], keys[1:]
        if isinstance(node, dict):
            return {**node, key: put(node[key], rest)}
        items = list(node)
        items[key] = put(items[key], rest)
        return type(node)(items)

    get_path(params, path)  # a clear error for a wrong path
    return put(params, _split(path))


def param_paths(params, prefix: str = "") -> list[str]:
    """Every leaf path of a functional's parameters."""
    if isinstance(params, dict):
        items = params.items()
    elif isinstance(params, (tuple, list)):
        items = enumerate(params)
    else:
        return [prefix]
    out = []
    for k, v in items:
        out += param_paths(v, f"{prefix}.{k}" if prefix else str(k))
    return out


# ---------------------------------------------------------------------- models
@dataclasses.dataclass(frozen=True)
class Subset:
    """A named functional ``base`` with the parameters at ``train`` (dotted paths, module
    docstring) learnable; theta = {path: value}."""

    base: str
    train: tuple

    def __post_init__(self):
        object.__setattr__(self, "train", tuple(self.train))
        if not self.train:
            raise ValueError("a Subset model needs at least one parameter to train")
        f = self.base_functional
        for path in self.train:
            get_path(f.params, path)
            if path == "omega" and not f.range_separated:
                raise ValueError(f"{self.base!r} is not range separated: omega does not enter "
                                 "it and cannot be trained")
            if path in ("alpha", "beta") and not f.is_hybrid:
                raise ValueError(f"{self.base!r} has no exact exchange: {path!r} cannot be "
                                 "trained (start from a hybrid)")

    @property
    def base_functional(self) -> Functional:
        return parse_xc(self.base)

    @property
    def name(self) -> str:
        return f"{self.base} ({', '.join(self.train)} learned)"

    def init(self) -> dict:
        f = self.base_functional
        return {p: jnp.asarray(get_path(f.params, p), dtype=jnp.float64) for p in self.train}

    def functional(self, theta) -> Functional:
        f = self.base_functional
        params = f.params
        for path in self.train:
            params = set_path(params, path, jnp.asarray(theta[path], dtype=jnp.float64))
        return f.with_params(params)


_B3LYP_TERMS = ("lda_x", "gga_x_b88", "lda_c_vwn_rpa", "gga_c_lyp")


@dataclasses.dataclass(frozen=True)
class B3LYP3:
    """B3LYP's three coefficients (a0, ax, ac) (module docstring)."""

    a0: float = 0.20
    ax: float = 0.72
    ac: float = 0.81

    name = "B3LYP (a0, ax, ac learned)"

    def init(self) -> dict:
        return {k: jnp.asarray(getattr(self, k), dtype=jnp.float64) for k in ("a0", "ax", "ac")}

    def functional(self, theta) -> Functional:
        f = Functional.from_components(list(zip(_B3LYP_TERMS, (0.08, 0.72, 0.19, 0.81))),
                                       alpha=0.2, name="b3lyp-3")
        a0, ax, ac = (jnp.asarray(theta[k], dtype=jnp.float64) for k in ("a0", "ax", "ac"))
        weights = (1.0 - a0 - ax, ax, 1.0 - ac, ac)
        return f.with_params({**f.params, "weights": weights, "alpha": a0})


@dataclasses.dataclass(frozen=True)
class Fixed:
    """A named functional with nothing learned (theta is empty): what trained models are
    compared with."""

    base: str

    @property
    def name(self) -> str:
        return self.base

    def init(self) -> dict:
        return {}

    def functional(self, theta) -> Functional:
        return parse_xc(self.base)


MODELS = ("subset", "b3lyp3", "neural")
"""Model kinds by the name a training config uses (``[functional] model = ...``); ``neural`` is
:class:`dftad.xc.neural.Neural` (needs equinox: ``pip install dftad[train]``)."""


def model_from_config(table: dict):
    """A model from a config's ``[functional]`` table: ``model = "b3lyp3"``, or
    ``model = "subset"`` with ``base`` (a functional name) and ``train`` (a list of paths);
    ``start`` (optional) overrides theta's initial values (``{path: value or list}``)."""
    kind = table.get("model", "subset")
    if kind not in MODELS:
        raise ValueError(f"unknown model {kind!r}; known: {', '.join(MODELS)}")
    if kind == "neural":
        from .neural import Neural

        return Neural(str(table.get("base", "pbe")), tuple(int(h) for h in table.get(
            "hidden", (16, 16))), int(table.get("seed", 0)), bool(table.get("learn_hyb", False)))
    if kind == "subset":
        if "base" not in table or "train" not in table:
            raise ValueError("a 'subset' model needs 'base' (a functional) and 'train' (a list "
                             "of parameter paths such as 'alpha' or 'components.0.kappa')")
        model = Subset(str(table["base"]), tuple(str(p) for p in table["train"]))
    else:
        model = B3LYP3()
    return model


def start_values(model, table: dict) -> dict:
    """theta to start from: the model's own values, with ``start`` of the config table over
    them (same shapes)."""
    theta = model.init()
    for key, value in dict(table.get("start", {})).items():
        if key not in theta:
            raise ValueError(f"start value for {key!r}, which the model does not train; it "
                             f"trains: {', '.join(theta)}")
        v = np.asarray(value, dtype=np.float64)
        if v.shape != theta[key].shape:
            raise ValueError(f"start value for {key!r} has shape {v.shape}, expected "
                             f"{theta[key].shape}")
        theta[key] = jnp.asarray(v)
    return theta


# ---------------------------------------------------------------------- files
FORMAT = "dftad-functional-1"


def save_functional(path, model, theta) -> None:
    """Write a trained functional: the model and its parameters (JSON, exact float64 values).
    ``dftad energy --xc PATH`` and ``dftad.build(mol, xc=PATH)`` use it like a named one."""
    import json

    if isinstance(model, Subset):
        desc = {"model": "subset", "base": model.base, "train": list(model.train)}
    elif isinstance(model, B3LYP3):
        desc = {"model": "b3lyp3"}
    elif type(model).__name__ == "Neural":
        desc = {"model": "neural", "base": model.base, "hidden": list(model.hidden),
                "seed": model.seed, "learn_hyb": model.learn_hyb}
    else:
        raise ValueError(f"cannot save a model of type {type(model).__name__}")
    values = {k: np.asarray(v).tolist() for k, v in theta.items()}
    with open(path, "w") as f:
        json.dump({"format": FORMAT, **desc, "theta": values}, f, indent=1)
        f.write("\n")


def load_functional(path):
    """``(model, theta)`` of a file written by :func:`save_functional`."""
    import json

    try:
        with open(path) as f:
            desc = json.load(f)
    except OSError as err:
        raise ValueError(f"cannot read the functional file {str(path)!r}: {err}") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not a functional file (invalid JSON: {err})") from None
    if not isinstance(desc, dict) or desc.get("format") != FORMAT:
        raise ValueError(f"{path}: not a dftad functional file (format {FORMAT!r})")
    model = model_from_config(desc)
    theta = start_values(model, {"start": desc.get("theta", {})})
    missing = set(model.init()) - set(desc.get("theta", {}))
    if missing:
        raise ValueError(f"{path}: no values for {', '.join(sorted(missing))}")
    return model, theta


def functional_from_file(path) -> Functional:
    """The :class:`~dftad.xc.functional.Functional` a trained-functional file describes."""
    model, theta = load_functional(path)
    return model.functional(theta)
