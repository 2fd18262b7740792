"""Grimme's DFT-D3 dispersion correction, D3(BJ) and D3(0), with the optional three-body term.

A pure JAX function of the coordinates (Bohr) and a parameter pytree; energies in Hartree. Forces
(``-jax.grad``), Hessians, ``vmap`` over geometries and gradients with respect to the damping
parameters all come from AD. The molecule enters through a :class:`D3Model`, built once on the
Python side from the atomic numbers (:func:`setup`); it is a pytree of arrays, so one compiled
program serves every geometry, and every molecule set up to the same shapes: ``setup(numbers,
natm=..., elements=...)`` pads with ghost atoms (which change no number) and spans a given set of
elements, so that molecules of different sizes share one program and ``vmap`` runs over them.

    model  = setup(mol.atomic_numbers)
    params = d3_params("b3lyp", "bj", atm=False)        # {"s6", "s8", "a1", "a2", "alp"}
    e      = energy(model, coords, params)              # Hartree
    forces = -jax.grad(energy, argnums=1)(model, coords, params)

The energy (S. Grimme, J. Antony, S. Ehrlich, H. Krieg, J. Chem. Phys. 132, 154104 (2010);
S. Grimme, S. Ehrlich, L. Goerigk, J. Comput. Chem. 32, 1456 (2011)), as simple-dftd3 evaluates it:

    CN_i   = sum_{j!=i} 1 / (1 + exp(-16 (R^cov_ij / r_ij - 1)))   R^cov: 4/3 Pyykko-Atsumi radii
    L_ia   = exp(-4 (CN_i - CN^ref_ia)^2) / sum_b exp(-4 (CN_i - CN^ref_ib)^2)
    C6_ij  = sum_ab L_ia L_jb C6^ref_{ia,jb}
    C8_ij  = 3 C6_ij Q_i Q_j,          Q_i = sqrt(0.5 <r^4>/<r^2>_i sqrt(Z_i))
    E2     = -sum_{i<j} sum_{n=6,8} s_n C_n,ij f_n(r_ij) / r_ij^n
      BJ:   f_n / r^n = 1 / (r^n + R0^n),               R0 = a1 sqrt(C8_ij / C6_ij) + a2
      zero: f_n = 1 / (1 + 6 (rs_n R0_ij / r)^alpha_n),  alpha_6 = alp, alpha_8 = alp + 2,
            rs_6 = rs6, rs_8 = rs8, R0_ij the pairwise radii of D3 (reference data)
    E3     = s9 sum_{i<j<k} sqrt(C6_ij C6_ik C6_jk) (3 cos a cos b cos c + 1) / (r_ij r_ik r_jk)^3
             / (1 + 6 ((4/3)^3 R0_ij R0_ik R0_jk / (r_ij r_ik r_jk))^((alp + 2) / 3))

Pairs (triples) beyond the real-space cutoffs of simple-dftd3 (CN 40, two-body 60, three-body 40
Bohr) are left out, as there, so large systems agree with the ``dftd3`` package too.

Parameters: the dict's keys choose the damping (``a1``/``a2``: BJ, ``rs6``/``rs8``: zero) and
whether the three-body term is evaluated at all (an ``s9`` key); ``alp`` defaults to 14. Every
value is a float or a JAX scalar, so the parameters can be learned (``jax.grad`` over the dict).

Reference data: ``dftad/data/d3/`` (see its README), made by ``scripts/make_d3_data.py`` from the
simple-dftd3 and mctc-lib sources; elements H to Lr (Z = 1-103).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

DATA_DIR = Path(__file__).resolve().parent / "data" / "d3"
MAX_Z = 103
"""Largest atomic number with D3 reference data."""

KCN = 16.0
"""Steepness of the coordination-number counting function."""
WF = 4.0
"""Width of the Gaussian weighting of the reference coordination numbers."""
RS9 = 4.0 / 3.0
"""Scaling of the pairwise radii in the three-body damping."""
ALP = 14.0
"""Default steepness of the zero damping (and, plus 2, of the three-body damping)."""

# real-space cutoffs (Bohr) of the coordination number, the two- and the three-body terms, as
# simple-dftd3's defaults
CUTOFF_CN = 40.0
CUTOFF_DISP2 = 60.0
CUTOFF_DISP3 = 40.0

_NAMES = {"bj": "D3(BJ)", "zero": "D3(0)"}
_DAMPINGS = {"bj": "bj", "rational": "bj", "d3bj": "bj", "d3(bj)": "bj",
             "zero": "zero", "0": "zero", "d3zero": "zero", "d3(0)": "zero", "d3": "zero"}


@functools.cache
def _reference() -> dict[str, np.ndarray]:
    with np.load(DATA_DIR / "reference.npz") as f:
        return {k: f[k] for k in f.files}


@functools.cache
def _parameter_table() -> dict:
    return json.loads((DATA_DIR / "parameters.json").read_text())


def _functional_key(xc: str) -> str:
    return xc.strip().lower().replace("-", "")


def functionals(damping: str = "bj") -> tuple[str, ...]:
    """Functional names (as :func:`d3_params` accepts them) with published parameters."""
    table = _parameter_table()
    damping = _damping(damping)
    return tuple(sorted(a for a, entry in table["aliases"].items() if entry in table[damping]))


def _damping(damping: str) -> str:
    key = str(damping).strip().lower().replace("-", "")
    if key not in _DAMPINGS:
        raise ValueError(f"unknown D3 damping {damping!r}: use 'bj' (rational, Becke-Johnson) "
                         "or 'zero'")
    return _DAMPINGS[key]


def d3_params(xc: str, damping: str = "bj", atm: bool = False) -> dict[str, float]:
    """The published D3 parameters of functional ``xc`` (names as simple-dftd3 takes them,
    case and dashes ignored: "b3lyp", "PBE0", "cam-b3lyp", "r2scan", "hf", ...).

    ``damping``: "bj" (rational) -> ``{s6, s8, a1, a2, alp}``; "zero" -> ``{s6, s8, rs6, rs8,
    alp}``. ``atm=True`` adds ``s9 = 1`` (the Axilrod-Teller-Muto three-body term, as
    simple-dftd3's ``atm`` switch). Unknown functional or damping: ``ValueError``."""
    damping = _damping(damping)
    table = _parameter_table()
    entry = table["aliases"].get(_functional_key(xc))
    if entry is None:
        raise ValueError(f"no DFT-D3 parameters for functional {xc!r}; "
                         f"dftad.dispersion.functionals({damping!r}) lists the known names")
    if entry not in table[damping]:
        other = [_NAMES[d] for d in ("bj", "zero") if entry in table[d]]
        hint = f" (only {other[0]})" if other else ""
        raise ValueError(f"no {_NAMES[damping]} parameters published for {xc!r}{hint}")
    params = {k: float(v) for k, v in table[damping][entry].items() if k != "doi"}
    params["alp"] = ALP
    if atm:
        params["s9"] = 1.0
    return params


def split_method(method: str) -> tuple[str, str | None, bool]:
    """``"b3lyp-d3bj"`` -> ``("b3lyp", "bj", False)``; also "-d3(bj)", "-d3zero", "-d3(0)",
    "-d3" (zero damping, as ORCA's D3), each optionally followed by "atm" ("b3lyp-d3bjatm",
    "pbe0-d3(bj)-atm"). A method without a D3 suffix -> ``(method, None, False)``."""
    m = re.fullmatch(r"(.+?)[-_ ]?(d3(?:bj|zero|\(bj\)|\(0\))?)[-_ ]?(atm)?", method.strip(),
                     re.IGNORECASE)
    if m is None:
        return method, None, False
    return m.group(1), _DAMPINGS[m.group(2).lower()], m.group(3) is not None


@functools.partial(jax.tree_util.register_dataclass,
                   data_fields=["numbers", "atoms", "rcov", "r4r2", "rvdw", "cnref",
                                "refmask", "species", "c6ref", "cutoff_cn", "cutoff_disp2",
                                "cutoff_disp3"],
                   meta_fields=[])
@dataclasses.dataclass(frozen=True)
class D3Model:
    """What D3 needs of a molecule besides its coordinates (a pytree of arrays; see :func:`setup`).

    numbers  (natm,)        atomic numbers (0: a ghost atom, padding)
    atoms    (natm,)        True for the real atoms
    rcov     (natm,)        D3 covalent radii, Bohr (4/3 of Pyykko-Atsumi's)
    r4r2     (natm,)        Q_i = sqrt(0.5 <r^4>/<r^2> sqrt(Z_i)); C8_ij = 3 C6_ij Q_i Q_j
    rvdw     (natm, natm)   pairwise radii R0_ij of the zero and three-body damping, Bohr
    cnref    (natm, mref)   reference coordination numbers of each atom's element (padded)
    refmask  (natm, mref)   which of them exist
    species  (natm, nsp)    one-hot: the atom's element among the model's elements (a ghost's
                            row is zero, so are its C6)
    c6ref    (K, K)         reference C6 between (element, reference) pairs, K = nsp * mref,
                            zero where a reference does not exist
    cutoff_* ()             real-space cutoffs, Bohr (``inf``: none)
    """

    numbers: np.ndarray
    atoms: np.ndarray
    rcov: np.ndarray
    r4r2: np.ndarray
    rvdw: np.ndarray
    cnref: np.ndarray
    refmask: np.ndarray
    species: np.ndarray
    c6ref: np.ndarray
    cutoff_cn: np.ndarray
    cutoff_disp2: np.ndarray
    cutoff_disp3: np.ndarray


def _pair_index(za: np.ndarray, zb: np.ndarray) -> np.ndarray:
    """0-based index of the element pair in the packed tables (lower triangle, row-major)."""
    lo, hi = np.minimum(za, zb), np.maximum(za, zb)
    return lo + hi * (hi - 1) // 2 - 1


def setup(numbers, *, natm: int | None = None, elements=None, cutoff_cn: float = CUTOFF_CN,
          cutoff_disp2: float = CUTOFF_DISP2, cutoff_disp3: float = CUTOFF_DISP3) -> D3Model:
    """The :class:`D3Model` of a molecule with these atomic numbers (Python side, once).

    ``natm``: pad to this many atoms with ghost atoms (their coordinates are ignored, any value
    will do); ``elements``: the atomic numbers the species axis spans (a superset of
    ``numbers``). Models with the same ``natm`` and the same ``elements`` have the same
    shapes: one compiled program, and ``jax.tree.map(np.stack, ...)`` of them batches.
    ``cutoff_*``: real-space cutoffs in Bohr (``float("inf")``: none)."""
    if not jax.config.jax_enable_x64:
        raise RuntimeError("dftad.dispersion needs float64: call "
                           "jax.config.update('jax_enable_x64', True) (importing dftad does)")
    z = np.asarray(numbers, dtype=np.int64).reshape(-1)
    bad = sorted({int(x) for x in z if not 1 <= x <= MAX_Z})
    if bad:
        raise ValueError(f"DFT-D3 reference data covers Z = 1-{MAX_Z}; got atomic number(s) "
                         f"{bad}")
    natm = z.size if natm is None else int(natm)
    if natm < z.size:
        raise ValueError(f"natm={natm} is less than the {z.size} atoms given")
    elements = np.unique(z if elements is None else np.asarray(elements, dtype=np.int64))
    missing = sorted(set(z.tolist()) - set(elements.tolist()))
    if missing or elements.min() < 1 or elements.max() > MAX_Z:
        raise ValueError(f"elements {elements.tolist()} must lie in 1-{MAX_Z} and include every "
                         f"atomic number given (missing: {missing})")
    ref = _reference()
    nref = ref["nref"][elements - 1]
    mref = int(nref.max())
    # C6 of reference a of the lighter and b of the heavier element: ref["c6"][pair, a, b]
    za, zb = np.meshgrid(elements, elements, indexing="ij")
    block = ref["c6"][_pair_index(za, zb)][..., :mref, :mref]
    block = np.where((za <= zb)[..., None, None], block, np.swapaxes(block, -1, -2))
    nsp = elements.size
    c6ref = block.transpose(0, 2, 1, 3).reshape(nsp * mref, nsp * mref)
    # ghost atoms borrow the first element's data; the masks and the zero species row remove them
    atoms = np.arange(natm) < z.size
    zp = np.concatenate([z, np.full(natm - z.size, elements[0])])
    zi, zj = np.meshgrid(zp, zp, indexing="ij")
    return D3Model(
        numbers=np.where(atoms, zp, 0),
        atoms=atoms,
        rcov=ref["rcov"][zp - 1],
        r4r2=ref["r4r2"][zp - 1],
        rvdw=ref["rvdw"][_pair_index(zi, zj)],
        cnref=ref["cnref"][zp - 1, :mref],
        refmask=np.arange(mref)[None, :] < ref["nref"][zp - 1][:, None],
        species=np.eye(nsp)[np.searchsorted(elements, zp)] * atoms[:, None],
        c6ref=c6ref,
        cutoff_cn=np.float64(cutoff_cn), cutoff_disp2=np.float64(cutoff_disp2),
        cutoff_disp3=np.float64(cutoff_disp3))


def _pairs(model: D3Model, coords, cutoff):
    """Squared distances (natm, natm), with 1 where a pair is masked so that no derivative
    divides by zero, and the mask of pairs of real atoms i != j within ``cutoff``."""
    coords = jnp.asarray(coords)
    r2 = jnp.sum((coords[:, None, :] - coords[None, :, :]) ** 2, axis=-1)
    atoms = jnp.asarray(model.atoms)
    mask = atoms[:, None] & atoms[None, :] & ~jnp.eye(coords.shape[0], dtype=bool)
    mask = mask & (r2 <= cutoff * cutoff)
    return jnp.where(mask, r2, 1.0), mask


def coordination_numbers(model: D3Model, coords) -> jax.Array:
    """D3's fractional coordination numbers CN_i (natm,)."""
    r2, mask = _pairs(model, coords, model.cutoff_cn)
    rc = model.rcov[:, None] + model.rcov[None, :]
    count = jax.nn.sigmoid(KCN * (rc / jnp.sqrt(r2) - 1.0))
    return jnp.sum(jnp.where(mask, count, 0.0), axis=1)


def c6_coefficients(model: D3Model, coords) -> jax.Array:
    """Geometry-dependent C6_ij (natm, natm), interpolated over the reference CNs."""
    cn = coordination_numbers(model, coords)
    logits = -WF * (cn[:, None] - model.cnref) ** 2
    logits = jnp.where(model.refmask, logits, -1e300)
    shift = jax.lax.stop_gradient(jnp.max(logits, axis=1, keepdims=True))
    g = jnp.exp(logits - shift)
    w = g / jnp.sum(g, axis=1, keepdims=True)  # (natm, mref); softmax, exact limit for large CN
    wk = (model.species[:, :, None] * w[:, None, :]).reshape(w.shape[0], -1)  # (natm, K)
    return wk @ model.c6ref @ wk.T


def _check_params(params) -> str:
    if "a1" in params and "a2" in params:
        return "bj"
    if "rs6" in params:
        return "zero"
    raise ValueError(f"D3 parameters need a1, a2 (BJ damping) or rs6 (zero damping); got keys "
                     f"{sorted(params)}")


def two_body_energy(model: D3Model, coords, params, c6=None) -> jax.Array:
    """E2, the damped C6 and C8 pair terms (Hartree); damping chosen by the keys of params."""
    damping = _check_params(params)
    if c6 is None:
        c6 = c6_coefficients(model, coords)
    r2, mask = _pairs(model, coords, model.cutoff_disp2)
    rr = 3.0 * model.r4r2[:, None] * model.r4r2[None, :]  # C8 / C6
    s6, s8 = params.get("s6", 1.0), params["s8"]
    if damping == "bj":
        r0 = params["a1"] * jnp.sqrt(rr) + params["a2"]
        pair = s6 / (r2**3 + r0**6) + s8 * rr / (r2**4 + r0**8)
    else:
        alp = params.get("alp", ALP)
        r = jnp.sqrt(r2)
        f6 = 1.0 / (1.0 + 6.0 * (params["rs6"] * model.rvdw / r) ** alp)
        f8 = 1.0 / (1.0 + 6.0 * (params.get("rs8", 1.0) * model.rvdw / r) ** (alp + 2.0))
        pair = s6 * f6 / r2**3 + s8 * rr * f8 / r2**4
    return -0.5 * jnp.sum(jnp.where(mask, c6 * pair, 0.0))


def three_body_energy(model: D3Model, coords, params, c6=None) -> jax.Array:
    """E3, the Axilrod-Teller-Muto term with zero damping (Hartree), scaled by ``params["s9"]``.

    O(natm^3) time, O(natm^2) memory: one (natm, natm) slab of triples (i, j, k) per atom i
    (``lax.map``), each checkpointed, so that the backward pass recomputes it instead of keeping
    natm^3 intermediates (16x faster than the dense triple tensor at 200 atoms, CPU)."""
    if c6 is None:
        c6 = c6_coefficients(model, coords)
    r2, mask = _pairs(model, coords, model.cutoff_disp3)
    expo = (params.get("alp", ALP) + 2.0) / 3.0
    # (R0_ij R0_ik R0_jk / (r_ij r_ik r_jk))^expo as exp(expo * sum of log(R0 / r) over the pairs)
    log_ratio = jnp.log(RS9 * model.rvdw) - 0.5 * jnp.log(r2)
    sq = jnp.sqrt(jnp.where(mask, c6, 1.0))

    @jax.checkpoint
    def slab(row):
        """Sum over the triples (i, j, k) of one i: ij on axis 0, ik on axis 1, jk both."""
        r2_i, mask_i, log_i, sq_i = row
        ij, ik, jk = r2_i[:, None], r2_i[None, :], r2
        r1 = jnp.sqrt(ij * ik * jk)
        fdmp = 1.0 / (1.0 + 6.0 * jnp.exp(expo * (log_i[:, None] + log_i[None, :] + log_ratio)))
        ang = 0.375 * (ij + jk - ik) * (ij - jk + ik) * (-ij + jk + ik) / r1**5 + 1.0 / r1**3
        c9 = sq_i[:, None] * sq_i[None, :] * sq
        triple = mask_i[:, None] & mask_i[None, :] & mask
        return jnp.sum(jnp.where(triple, c9 * ang * fdmp, 0.0))

    # every unordered triple appears 6 times among the ordered ones
    return params["s9"] / 6.0 * jnp.sum(jax.lax.map(slab, (r2, mask, log_ratio, sq)))


def energy(model, coords, params) -> jax.Array:
    """DFT-D3 dispersion energy (Hartree) at ``coords`` (natm, 3) Bohr.

    ``model``: a :class:`D3Model` (:func:`setup`) or the atomic numbers (then set up here, which
    needs them concrete). ``params``: see :func:`d3_params`; the three-body term is included when
    it has an ``s9`` entry."""
    _check_params(params)
    if not isinstance(model, D3Model):
        model = setup(model)
    c6 = c6_coefficients(model, coords)
    e = two_body_energy(model, coords, params, c6)
    if "s9" in params:
        e = e + three_body_energy(model, coords, params, c6)
    return e
