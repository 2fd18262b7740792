"""Gaussian basis sets: shells with PySCF's AO order and normalisation.

A contracted shell of angular momentum l on atom A is

    phi_{l,m}(r) = Y_lm(r - A) * R(|r - A|),   R(r) = sum_p c_p N_l(a_p) exp(-a_p r^2)

with ``N_l(a) = 1/sqrt(int_0^inf r^(2l+2) exp(-2 a r^2) dr)`` (PySCF's ``gto_norm``) and the
contraction renormalised so that ``int_0^inf R(r)^2 r^2 dr = 1``. Angular parts follow libcint:
spherical functions are the combinations ``cart2sph(l)`` of the bare cartesian monomials
``x^i y^j z^k`` (PySCF's matrices, which carry the ``Y_lm`` normalisation); cartesian AOs are the
bare monomials times 1/sqrt(4 pi) (s), sqrt(3/(4 pi)) (p) or 1 (l >= 2).

Data are split as DESIGN.md asks:

* :class:`BasisLayout` (static, hashable): l, atom and primitive count of every shell, spherical
  or cartesian. Everything with a shape derives from it.
* :class:`Basis` (a pytree): the layout as static auxiliary data plus the arrays ``exponents`` and
  ``coefficients`` (one entry per primitive), which may be traced and differentiated.

So ``jax.jit(f)(basis, coords)`` compiles once per layout and re-runs for any geometry, exponents
or coefficients. Basis data come from PySCF's bundled library, read once at setup.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from .molecule import Molecule

L_MAX = 6
"""Highest angular momentum supported (i functions; g is needed by cc-pVQZ / def2-TZVP aux)."""


def ncart(l: int) -> int:
    return (l + 1) * (l + 2) // 2


def nsph(l: int) -> int:
    return 2 * l + 1


@functools.cache
def cart_powers(l: int) -> np.ndarray:
    """Cartesian exponents (lx, ly, lz) of shell l in PySCF order (xx, xy, xz, yy, yz, zz)."""
    return np.array(
        [(lx, ly, l - lx - ly) for lx in range(l, -1, -1) for ly in range(l - lx, -1, -1)],
        dtype=np.int64,
    )


@functools.cache
def cart2sph(l: int) -> np.ndarray:
    """(ncart, nsph) matrix from bare monomials to PySCF's real spherical AOs (m = -l..l;
    x, y, z for p). Kept on disk beside the basis data (:func:`element_shells`)."""
    from . import pieces

    path = pieces.data_path("cart2sph", repr((_pyscf_version(), l)))
    kept = pieces.load_array(path)
    if kept is not None and kept.shape == (ncart(l), nsph(l)):
        return kept
    from pyscf import gto

    c2s = np.asarray(gto.cart2sph(l), dtype=np.float64)
    pieces.save_array(path, c2s)
    return c2s


def cart_factor(l: int) -> float:
    """libcint's common factor of cartesian s and p AOs (1 for l >= 2)."""
    return {0: 1.0 / math.sqrt(4 * math.pi), 1: math.sqrt(3.0 / (4 * math.pi))}.get(l, 1.0)


@functools.cache
def ao_transform(l: int, cart: bool) -> np.ndarray:
    """(ncart, nao_l) matrix taking bare cartesian monomials to the AOs of one shell."""
    if cart:
        return np.eye(ncart(l)) * cart_factor(l)
    return cart2sph(l)


@dataclasses.dataclass(frozen=True)
class BasisLayout:
    """Static description of a basis on a molecule: per shell its l, atom and primitive count."""

    shell_l: tuple[int, ...]
    shell_atom: tuple[int, ...]
    shell_nprim: tuple[int, ...]
    cart: bool = False
    name: str = ""

    @property
    def nbas(self) -> int:
        return len(self.shell_l)

    @functools.cached_property
    def ao_loc(self) -> np.ndarray:
        """Offsets of each shell's first AO (length nbas + 1), as PySCF's ``mol.ao_loc``."""
        size = ncart if self.cart else nsph
        return np.concatenate([[0], np.cumsum([size(l) for l in self.shell_l])]).astype(int)

    @functools.cached_property
    def ao_atom(self) -> np.ndarray:
        """The atom of each AO (length nao)."""
        return np.repeat(np.asarray(self.shell_atom), np.diff(self.ao_loc))

    @functools.cached_property
    def prim_loc(self) -> np.ndarray:
        """Offsets of each shell's first primitive in the flat exponent array."""
        return np.concatenate([[0], np.cumsum(self.shell_nprim)]).astype(int)

    @property
    def nao(self) -> int:
        return int(self.ao_loc[-1])

    @property
    def lmax(self) -> int:
        return max(self.shell_l)

    def nao_shell(self, l: int) -> int:
        return ncart(l) if self.cart else nsph(l)


@jax.tree_util.register_pytree_node_class
@dataclasses.dataclass(frozen=True, eq=False)
class Basis:
    """A basis on a molecule: static :class:`BasisLayout` plus primitive exponents and
    contraction coefficients (for normalised primitives, as printed in basis-set files)."""

    layout: BasisLayout
    exponents: jax.Array  # (nprim_total,)
    coefficients: jax.Array  # (nprim_total,)

    def tree_flatten(self):
        return (self.exponents, self.coefficients), self.layout

    @classmethod
    def tree_unflatten(cls, layout, children):
        return cls(layout, *children)

    @property
    def nao(self) -> int:
        return self.layout.nao

    @property
    def nbas(self) -> int:
        return self.layout.nbas

    def on_atom(self, atom: int) -> Basis:
        """The shells of ``atom`` alone, as the basis of a one-atom molecule (atom 0), in the
        molecule's AO order."""
        lay = self.layout
        shells = [i for i, a in enumerate(lay.shell_atom) if a == atom]
        prims = np.concatenate([np.arange(lay.prim_loc[i], lay.prim_loc[i + 1]) for i in shells])
        sub = BasisLayout(tuple(lay.shell_l[i] for i in shells), (0,) * len(shells),
                          tuple(lay.shell_nprim[i] for i in shells), lay.cart, lay.name)
        return Basis(sub, jax.device_put(np.asarray(self.exponents)[prims]),
                     jax.device_put(np.asarray(self.coefficients)[prims]))

    @classmethod
    def build(cls, mol: Molecule, basis="def2-svp", cart: bool = False) -> Basis:
        """Load ``basis`` (a name in PySCF's library, or a mapping element -> name) for ``mol``.

        General contractions are split into one shell per contraction, which keeps PySCF's AO
        order (atoms in order, each atom's shells as in the basis file). Raises ``ValueError``
        naming the element when the basis does not cover it.
        """
        shells = element_shells(mol, basis, cart)
        shell_l, shell_atom, shell_nprim, exps, coefs = [], [], [], [], []
        for atom, symbol in enumerate(mol.symbols):
            for l, e, c in shells[symbol]:
                shell_l.append(l)
                shell_atom.append(atom)
                shell_nprim.append(len(e))
                exps.append(e)
                coefs.append(c)
        name = basis if isinstance(basis, str) else repr(sorted(dict(basis).items()))
        layout = BasisLayout(tuple(shell_l), tuple(shell_atom), tuple(shell_nprim), cart, name)
        return cls(layout, jax.device_put(np.concatenate(exps)),
                   jax.device_put(np.concatenate(coefs)))


Shells = list  # [(l, exponents (nprim,), coefficients (nprim,)), ...] of one element


def element_shells(mol: Molecule, basis="def2-svp", cart: bool = False) -> dict[str, Shells]:
    """Each element's shells in ``basis`` (one per contraction), from PySCF's library.

    With the on-disk cache on (:func:`dftad.enable_compilation_cache`), a named basis is kept
    per element beside the compiled pieces (:func:`dftad.pieces.data_path`, keyed by PySCF's
    version too), so a later process needs no PySCF (its import is a tenth of a cached run)."""
    from . import pieces

    symbols = sorted(set(mol.symbols))
    paths = dict.fromkeys(symbols)
    if isinstance(basis, str):
        paths = {s: pieces.data_path("basis", repr((_pyscf_version(), basis, s, cart)))
                 for s in symbols}
        kept = {s: _decode_shells(pieces.load_array(paths[s])) for s in symbols}
        if all(v is not None for v in kept.values()):
            return kept
    shells = _pyscf_shells(mol, basis, cart)
    for s in symbols:
        pieces.save_array(paths[s], _encode_shells(shells[s]))
    return shells


def _pyscf_shells(mol: Molecule, basis, cart: bool) -> dict[str, Shells]:
    from .interop.pyscf import to_pyscf_mole

    pmol = to_pyscf_mole(mol, basis, cart)
    shells: dict[str, Shells] = {}
    for ib in range(pmol.nbas):
        l = int(pmol.bas_angular(ib))
        if l > L_MAX:
            raise ValueError(f"basis {basis!r}: angular momentum l={l} > {L_MAX} unsupported")
        atom = int(pmol.bas_atom(ib))
        symbol = mol.symbols[atom]
        if mol.symbols.index(symbol) != atom:
            continue  # an element's shells are read from its first atom
        e = np.asarray(pmol.bas_exp(ib), dtype=np.float64)
        c = np.asarray(pmol.bas_ctr_coeff(ib), dtype=np.float64)
        shells.setdefault(symbol, []).extend((l, e, c[:, k]) for k in range(c.shape[1]))
    return shells


def _pyscf_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("pyscf")
    except metadata.PackageNotFoundError:  # pragma: no cover - a source checkout of PySCF
        return "unknown"


def _encode_shells(shells: Shells) -> np.ndarray:
    """One flat array: nshell, then per shell l, nprim, exponents, coefficients."""
    parts = [np.array([len(shells)], dtype=np.float64)]
    for l, e, c in shells:
        parts += [np.array([l, len(e)], dtype=np.float64), e, c]
    return np.concatenate(parts)


def _decode_shells(a) -> Shells | None:
    """:func:`_encode_shells` read back; None for a missing or malformed array."""
    if a is None or a.ndim != 1 or a.dtype != np.float64 or a.size < 1:
        return None
    try:
        shells, pos = [], 1
        for _ in range(int(a[0])):
            l, n = int(a[pos]), int(a[pos + 1])
            e, c = a[pos + 2:pos + 2 + n], a[pos + 2 + n:pos + 2 + 2 * n]
            if len(c) != n or not 0 <= l <= L_MAX:
                return None
            shells.append((l, e.copy(), c.copy()))
            pos += 2 + 2 * n
        return shells if pos == a.size and shells else None
    except (IndexError, ValueError):
        return None


# ---------------------------------------------------------------------- normalisation (JAX)
def gto_norm(l, a):
    """Radial normalisation of r^l exp(-a r^2): 1/sqrt(int_0^inf r^(2l+2) exp(-2 a r^2) dr)."""
    # int_0^inf r^(2n) exp(-b r^2) dr = Gamma(n + 1/2) / (2 b^(n + 1/2)), n = l + 1, b = 2a
    n = l + 1
    return jnp.sqrt(2.0 * (2.0 * a) ** (n + 0.5) / math.gamma(n + 0.5))


def normalized_coefficients(basis: Basis, xp=jnp) -> jax.Array:
    """Coefficients c'_p with R(r) = sum_p c'_p exp(-a_p r^2) normalised (JAX, per primitive;
    NumPy with ``xp=numpy``).

    c'_p = c_p N_l(a_p) / sqrt(sum_pq c_p c_q N_l(a_p) N_l(a_q) I_l(a_p + a_q)) with
    I_l(b) = Gamma(l + 3/2) / (2 b^(l + 3/2)).
    """
    lay = basis.layout
    shell_l = np.repeat(np.asarray(lay.shell_l), lay.shell_nprim)
    shell_id = np.repeat(np.arange(lay.nbas), lay.shell_nprim)
    a, c = basis.exponents, basis.coefficients
    if xp is np:  # setup-side NumPy (no op-by-op compiles of eager JAX)
        a, c = np.asarray(a), np.asarray(c)
    cn = c * _gto_norm_vec(shell_l, a, xp)
    # self-overlap of the contraction, shell by shell (pairs of primitives of the same shell)
    same = shell_id[:, None] == shell_id[None, :]
    pi, pj = np.nonzero(same)
    lpair = shell_l[pi]
    b = a[pi] + a[pj]
    gam = np.array([math.gamma(l + 1.5) for l in lpair])
    ovlp = cn[pi] * cn[pj] * gam / (2.0 * b ** (lpair + 1.5))
    if xp is np:
        norm2 = np.bincount(shell_id[pi], weights=ovlp, minlength=lay.nbas)
    else:
        norm2 = jax.ops.segment_sum(ovlp, shell_id[pi], num_segments=lay.nbas)
    return cn / xp.sqrt(norm2)[shell_id]


def _gto_norm_vec(l: np.ndarray, a, xp=jnp):
    n = l + 1
    gam = np.array([math.gamma(k + 0.5) for k in n])
    return xp.sqrt(2.0 * (2.0 * a) ** (n + 0.5) / gam)
