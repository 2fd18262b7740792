"""Coulomb and exchange matrices from a density matrix: one protocol, two implementations.

    J_mn = sum_ls (mn|ls) D_ls            K_mn = sum_ls (ml|ns) D_ls

``dm`` may carry leading axes (spin, or a batch); J and K keep them. Two back ends, each a
setup-time object (:class:`IncoreJK`, :class:`DFJK`) with the same methods:

    factors(basis, coords, omegas)   what the two-electron integrals are made of at ``coords``,
                                     one entry per operator (omega None: 1/r12; else
                                     erf(omega r12)/r12), differentiable in ``coords``
                                     (the operators' integrals traced once:
                                     :func:`~dftad.integrals.eri_kernel.per_operator`)
    factors_and_pullback(basis, coords, omegas)
                                     (factors, their reverse pass: cotangents -> dE/dR)
                                     (incore: the class kernels' reverse pass written out
                                     for small classes,
                                     :func:`~dftad.integrals.two_electron.eri_blocks_pullback`)
    tensors(basis, factors)          what the SCF contracts (the same or unpacked from them)
    get_j(tensors, dm), get_k(tensors, dm, op, orbs=None)
                                     (``orbs``: the X that dm = X X^T is made of, where the
                                     caller has it: density fitting then builds K through
                                     the occupied orbitals, O(naux nao^2 nocc))
    energy(basis, factors, dm, dm_tot, weights, kf, orbs=None)
                                     E_coul + E_exx straight from the factors (what the forces
                                     differentiate; density fitting with ``orbs``:
                                     :func:`fitted_energy`)
    eri_block(tensors, idx)          (ij|kl) over the AO indices ``idx`` (the SAD guess)

* incore: from the full ERI tensor (:func:`dftad.integrals.two_electron.eri`), while
  nao^4 doubles fit in memory;
* density fitting (RI-J/RI-K): (mn|ls) ~ sum_PQ (mn|P) [J^-1]_PQ (Q|ls) with the Coulomb metric
  J_PQ = (P|Q). With the Cholesky factor J = L L^T, B^P_mn = sum_Q [L^-1]_PQ (Q|mn) gives
  J_mn = sum_P B^P_mn (sum_ls B^P_ls D_ls) and K_mn = sum_P (B^P D B^P)_mn. Where the metric
  is numerically singular (the erf-attenuated one), B = J_+^-1/2 (Q|mn) over its eigenvalues
  above 1e-7, as in PySCF (:func:`cderi`).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from .basis import Basis
from .integrals import two_electron
from .integrals.eri_kernel import as_omega, per_operator
from .linalg import inv_sqrt_psd


def get_jk_incore(eri, dm, with_j: bool = True, with_k: bool = True):
    """(J, K) from the full (nao,)*4 ERI tensor; ``None`` for a term not asked for.

    Both are products that read the tensor once in its stored (i, j, k, l) order: J is one
    matrix-vector product over (kl), K a batch over i of vector-matrix products over the
    contiguous (jk) block. (Written as ``einsum("ijkl,jk->il")``, XLA transposes the whole tensor
    on every call: 15x slower at nao = 114.)"""
    n = eri.shape[0]
    lead = dm.shape[:-2]
    d = dm.reshape(-1, n * n)  # (nset, n^2)
    vj = vk = None
    if with_j:
        dt = jnp.swapaxes(dm, -1, -2).reshape(-1, n * n)  # D_lk, as in the formula
        vj = (eri.reshape(n * n, n * n) @ dt.T).T.reshape(lead + (n, n))
    if with_k:
        db = jnp.broadcast_to(d[None], (n,) + d.shape)  # (i, nset, jk): i is a batch dimension
        vk = jax.lax.dot_general(eri.reshape(n, n * n, n), db, (((1,), (2,)), ((0,), (0,))))
        vk = jnp.moveaxis(vk, 2, 0).reshape(lead + (n, n))  # (i, l, nset) -> (..., i, l)
    return vj, vk


LINEAR_DEP_THR = 1e-7
"""Eigenvalues of the fitting metric at or below this are dropped where its Cholesky
factorisation fails (PySCF's ``df.incore.LINEAR_DEP_THR``)."""


def fit(int2c, rhs, lindep: float = LINEAR_DEP_THR) -> jax.Array:
    """W rhs for the fitting factor W of the metric J_PQ = (P|Q) = ``int2c``, with W^T W = J^-1:
    W = L^-1 for the Cholesky factor J = L L^T; where J is numerically singular the
    factorisation fails (the metric of the erf-attenuated operator of range-separated hybrids
    has a smooth kernel and eigenvalues down to 1e-14 for any JK-fitting set), and then, as
    PySCF does, W = J_+^-1/2 over the eigenvalues above ``lindep``
    (:func:`dftad.linalg.inv_sqrt_psd`; the dropped directions give zero rows). ``rhs``: (naux,
    k)."""
    return apply_fit(fitting_factor(int2c, lindep), rhs)


def fitting_factor(int2c, lindep: float = LINEAR_DEP_THR):
    """(by_cholesky, M) for :func:`apply_fit`: M the Cholesky factor L of the metric, or
    J_+^-1/2 where it does not factorise (:func:`fit`): one factorisation for many
    right-hand sides."""
    factorises = jnp.all(jnp.isfinite(jnp.linalg.cholesky(jax.lax.stop_gradient(int2c))))
    m = jax.lax.cond(factorises, jnp.linalg.cholesky,
                     lambda j: inv_sqrt_psd(j, lindep), int2c)
    return factorises, m


def apply_fit(factor, rhs) -> jax.Array:
    """W rhs for a :func:`fitting_factor`: a triangular solve with L, or J_+^-1/2 rhs."""
    by_cholesky, m = factor
    return jax.lax.cond(by_cholesky,
                        lambda m, r: jax.scipy.linalg.solve_triangular(m, r, lower=True),
                        lambda m, r: m @ r, m, rhs)


def cderi(int3c, int2c, lindep: float = LINEAR_DEP_THR) -> jax.Array:
    """Factorised 3-centre integrals B = W (P|mn) (naux, nao, nao) from (mn|P) and the metric
    (:func:`fit`), with (mn|ls) ~ sum_P B^P_mn B^P_ls."""
    naux = int2c.shape[0]
    rhs = jnp.moveaxis(int3c, -1, 0).reshape(naux, -1)
    return fit(int2c, rhs, lindep).reshape(naux, *int3c.shape[:2])


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class PackedCderi:
    """B = W (P|mn) stored over the AO pairs the 3-centre plan keeps (about half of B and
    fewer for an extended molecule): ``b`` (naux, ncol), a column per AO pair ((m, n) and
    (n, m) share it, :func:`~dftad.integrals.two_electron.pair_columns`), the last column
    zero; ``cols`` (nao, nao) int32 the column of every AO pair (the pairs screened out: the
    zero column). B^P_mn = b[P, cols[m, n]]; J and K unpack one block of P at a time
    (:func:`get_jk_df`)."""

    b: jax.Array
    cols: jax.Array

    @property
    def shape(self):
        return (self.b.shape[0],) + self.cols.shape

    def rows(self, start, size: int) -> jax.Array:
        """B^P (size, nao, nao) for P in [start, start + size)."""
        return jax.lax.dynamic_slice_in_dim(self.b, start, size)[:, self.cols]


FIT_COLUMNS = 2048
"""Columns of (ij|P) fitted per step of :func:`packed_cderi`."""


def packed_cderi(int3c, int2c, cols, lindep: float = LINEAR_DEP_THR) -> PackedCderi:
    """:class:`PackedCderi` of packed 3-centre integrals ``int3c`` (naux, ncol) (the layout of
    :func:`~dftad.integrals.two_electron.int3c2e_packed`; ncol a multiple of
    :data:`FIT_COLUMNS` or smaller) and the metric: W (ij|P) a block of columns at a time
    written over the integrals (a loop carry, updated in place), so that the fit needs no
    second array of their size."""
    factor = fitting_factor(int2c, lindep)
    ncol = int3c.shape[1]
    step = min(FIT_COLUMNS, ncol)
    if ncol % step:
        raise ValueError(f"{ncol} columns are not a multiple of {step}")

    def body(i, a):
        block = jax.lax.dynamic_slice_in_dim(a, i * step, step, axis=1)
        return jax.lax.dynamic_update_slice_in_dim(a, apply_fit(factor, block), i * step, axis=1)

    return PackedCderi(jax.lax.fori_loop(0, ncol // step, body, int3c), cols)


def fitted_energy(int3c, int2c, dm_tot, orbs, c_coul, c_exch):
    """c_coul E_J + E_K of one operator by density fitting, from its 3-centre integrals
    A = (mn|P) (nao, nao, naux) and metric (:func:`fit`) without B = W A:

        E_J = 1/2 |W a|^2,                          a_P = sum_mn A^P_mn D_mn
        E_K = -c_exch sum_s sum_P |(W M_s)^P|_F^2,  M^P_s = X_s^T A^P X_s   (nocc x nocc)

    the energies of J and K from B (:func:`get_jk_df`; sum_mn D_s (B^P D_s B^P) =
    |X_s^T B^P X_s|^2 for D_s = X_s X_s^T), ``c_exch`` as :func:`eri_terms` gives it (the
    operator's weight times kf / 2). ``orbs``: the X_s (:func:`orbitals_of`), and
    D = sum_s X_s X_s^T (a_P = sum_s tr M^P_s; ``dm_tot`` not read); or None: Coulomb only, of
    D = ``dm_tot``. Reverse mode never forms B or its
    cotangent: only A's, sum_s X_s Mbar^P_s X_s^T in one product over A as it is stored (or
    abar_P D), what the forces contract with the integrals' derivatives (PySCF's ``df_grad``
    pattern), and the metric's."""
    nao, naux = int3c.shape[0], int2c.shape[0]
    if orbs is None:  # (a tensordot: einsum("mnp,mn->p") copied all of A)
        cols = jnp.tensordot(dm_tot, int3c, axes=((0, 1), (0, 1)))[:, None]
    else:
        x = orbs.reshape((-1,) + orbs.shape[-2:])  # (nset, nao, nocc)
        nset, nocc = x.shape[0], x.shape[2]
        # contracted over A's first index (A^P is symmetric): a product over A as it is
        # stored, and so is its transpose (over the middle index XLA transposed all of A)
        y = jnp.moveaxis(x, 0, 1).reshape(nao, -1).T @ int3c.reshape(nao, -1)
        y = y.reshape(nset, nocc, nao, naux)
        m = jnp.einsum("sinp,snj->psij", y, x)
        a = jnp.einsum("psii->p", m)
        cols = jnp.concatenate([a[:, None], m.reshape(naux, -1)], axis=1)
    w = fit(int2c, cols)
    e = 0.5 * c_coul * jnp.sum(w[:, 0] ** 2)
    return e if orbs is None else e - c_exch * jnp.sum(w[:, 1:] ** 2)


K_BLOCK_BYTES = 2**28
"""Size of the per-block intermediates of the density-fitted exchange (256 MiB)."""

MIN_BLOCKS = 4
"""Fewest blocks of a split auxiliary loop: XLA unrolls a loop of fewer trips, and each
unrolled block is then a copy of its rows of B (a 2-trip loop at caffeine/def2-TZVP held 1.3 GB
of copies beside 0.3 GB of intermediates)."""


def _over_aux_blocks(cderi_b, per_aux: int, k_block, init):
    """init + sum over blocks b of the auxiliary index of ``k_block(B[b], keep)``, each block at
    most :data:`K_BLOCK_BYTES` of intermediates (``per_aux`` doubles per auxiliary function;
    a :class:`PackedCderi` adds its unpacked rows): one call when it all fits (``keep``
    None), else a ``lax.fori_loop`` over at least :data:`MIN_BLOCKS` equal blocks, the last
    one ending at naux and ``keep`` (block,) 0/1 marking its rows not in the block before
    (``k_block`` weights its first intermediate's rows by it: each term is a sum over
    auxiliary functions of a quantity quadratic in B^P)."""
    naux, nao = cderi_b.shape[0], cderi_b.shape[1]
    packed = isinstance(cderi_b, PackedCderi)
    per_aux = per_aux + (nao * nao if packed else 0)
    block = max(1, K_BLOCK_BYTES // (8 * max(per_aux, 1)))
    if block >= naux:
        return init + k_block(cderi_b.rows(0, naux) if packed else cderi_b, None)
    nblock = max(-(-naux // block), MIN_BLOCKS)
    block = -(-naux // nblock)

    def step(i, acc):
        start = jnp.minimum(i * block, naux - block)
        keep = (start + jnp.arange(block) >= i * block).astype(jnp.float64)
        rows = (cderi_b.rows(start, block) if packed
                else jax.lax.dynamic_slice_in_dim(cderi_b, start, block))
        return acc + k_block(rows, keep)

    return jax.lax.fori_loop(0, nblock, step, init)


def _weighted(x, keep):
    """``x`` (..., P, ...) with its rows P (axis -3) weighted by ``keep`` (None: all)."""
    return x if keep is None else x * keep[:, None, None]


def get_jk_df(cderi_b, dm, with_j: bool = True, with_k: bool = True, orbs=None):
    """(J, K) by density fitting from B = L^-1 (P|mn) (:func:`cderi`, or packed over AO pairs:
    :class:`PackedCderi`).

    K runs over blocks of auxiliary functions (:func:`_over_aux_blocks`): formed at once, B D
    and its transpose are two more arrays the size of B (caffeine/def2-TZVP: 2.4 GB each, per
    exchange term in the SCF). ``orbs``: the X that D = X X^T is made of, per channel
    (:func:`orbitals_of`), for K through the occupied orbitals (:func:`exchange_df_occ`)."""
    vj = vk = None
    if with_j and isinstance(cderi_b, PackedCderi):
        # rho_P = sum_k b_Pk (sum of D over the AO pairs of column k), J_mn = (b^T rho)[cols]
        lead = dm.shape[:-2]
        d = jnp.zeros(lead + cderi_b.b.shape[1:], dm.dtype).at[..., cderi_b.cols].add(dm)
        rho_p = jnp.einsum("pk,...k->...p", cderi_b.b, d)
        vj = jnp.tensordot(rho_p, cderi_b.b, axes=(-1, 0))[..., cderi_b.cols]
    elif with_j:
        # (XLA transposes the whole of B for einsum("pmn,...p->...mn"): 2.4 GB at
        # caffeine/def2-TZVP; as a vector-matrix product over its leading axis, it does not)
        rho_p = jnp.einsum("pls,...ls->...p", cderi_b, dm)
        vj = jnp.tensordot(rho_p, cderi_b, axes=(-1, 0))
    if with_k:
        vk = exchange_df(cderi_b, dm) if orbs is None else exchange_df_occ(cderi_b, orbs)
    return vj, vk


def exchange_df(cderi_b, dm):
    """K_mn = sum_P (B^P D B^P)_mn of any (symmetric) ``dm``: O(naux nao^3)."""
    nao = cderi_b.shape[1]
    nset = dm.size // (nao * nao)  # spin / batch density matrices

    def k_block(b, keep):
        return jnp.einsum("...pms,psn->...mn",
                          _weighted(jnp.einsum("pml,...ls->...pms", b, dm), keep), b)

    return _over_aux_blocks(cderi_b, nset * nao * nao, k_block,
                            jnp.zeros(dm.shape, dm.dtype))


def orbitals_of(mo_coeff, mo_occ, nocc: int):
    """X (..., nao, nocc) with D = sum_i n_i C_i C_i^T = X X^T per channel: the first ``nocc``
    orbitals (occupied first, as the SCF orders them) times sqrt(n_i); ``nocc`` (static) at
    least the largest number of occupied orbitals of a channel (columns past a channel's
    occupied ones are zero)."""
    return mo_coeff[..., :nocc] * jnp.sqrt(mo_occ[..., None, :nocc])


def exchange_df_occ(cderi_b, orbs):
    """:func:`exchange_df` of D = X X^T through its orbital factor X = ``orbs`` (..., nao,
    nocc): K_mn = sum_P sum_i (B^P X)_mi (B^P X)_ni, O(naux nao^2 nocc) instead of
    O(naux nao^3) (PySCF's RI-K through the occupied orbitals). A plain function of B and X:
    its derivatives (any order) are those of K[X X^T] through X, so a caller passes the X its
    density is made of (the SCF's orbitals), or a constant X where the density is constant
    (the forces). Where a density perturbation is not a perturbation of X (the implicit SCF
    derivative, the response), K is :func:`exchange_df` of the density matrix."""
    nao, nocc = orbs.shape[-2:]
    nset = orbs.size // (nao * nocc)

    def k_block(b, keep):
        # (B^P X)_mi in B's own order (P, m, i): stored (m, P, i), XLA transposed all of B
        y = jnp.einsum("pml,...li->...pmi", b, orbs)
        return jnp.einsum("...pmi,...pni->...mn", _weighted(y, keep), y)

    return _over_aux_blocks(cderi_b, nset * nao * nocc, k_block,
                            jnp.zeros(orbs.shape[:-1] + (nao,), orbs.dtype))


def coulomb_exchange(jk, tensors, dm, dm_tot, weights, orbs=None):
    """(J[D_tot], K_tot) with K_tot = sum_i weights[i] K_i[dm] over the operators (zero when
    ``weights`` is empty: no exact exchange). ``jk``: a back end, or its class (``get_j`` and
    ``get_k`` use only the tensors); ``orbs``: None, or the X that dm = X X^T is made of
    (:func:`orbitals_of`; see :func:`exchange_df_occ`), which a back end may use for a
    cheaper K."""
    vj = jk.get_j(tensors, dm_tot)
    vk = jnp.zeros_like(dm)
    for op, w in enumerate(weights):
        vk = vk + w * jk.get_k(tensors, dm, op, orbs)
    return vj, vk


def eri_terms(nops: int, dm, dm_tot, weights, kf) -> tuple:
    """(dm_coul, dm_exch, c_exch) per two-electron operator, such that E_coul + E_exx =
    sum over operators of :func:`~dftad.integrals.two_electron.eri_energy` with them: Coulomb
    from the first operator (1/r12) only, exchange from each operator with a weight."""
    return tuple((dm_tot if op == 0 else None, dm if op < len(weights) else None,
                  0.5 * kf * weights[op] if op < len(weights) else 0.0) for op in range(nops))


def energy_terms(dm, dm_tot, vj, vk, kf):
    """(E_coul, E_exx) = (1/2 sum D_tot J, -kf/2 sum D K_tot); ``kf`` is the exchange weight per
    spin channel (1/2 restricted, 1 unrestricted)."""
    return 0.5 * jnp.sum(dm_tot * vj), -0.5 * kf * jnp.sum(dm * vk)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class IncoreJK:
    """Full 4-centre ERIs from the screened shell-quartet ``plan``: the factors are the
    quartet-class blocks (:func:`~dftad.integrals.two_electron.eri_blocks`), the tensors the
    (nao,)*4 arrays unpacked from them."""

    plan: two_electron.EriPlan
    density_fitting = False

    def describe(self) -> str:
        return "incore ERIs"

    def factors(self, basis: Basis, coords, omegas):
        return per_operator(lambda w: two_electron.eri_blocks(self.plan, basis, coords, w), omegas)

    def factors_and_pullback(self, basis: Basis, coords, omegas):
        def one(w, blocks_bar):
            return two_electron.eri_blocks_pullback(self.plan, basis, coords, blocks_bar, w)

        def pullback(factors_bar):
            if len(omegas) == 1:
                return one(omegas[0], factors_bar[0])
            # all operators through one traced reverse pass, as per_operator
            w = jnp.stack([as_omega(x) for x in omegas])
            bars = jax.tree.map(lambda *b: jnp.stack(b), *factors_bar)
            return jnp.sum(jax.vmap(one)(w, bars), axis=0)

        return self.factors(basis, coords, omegas), pullback

    def tensors(self, basis: Basis, factors):
        return tuple(two_electron.unpack_s8(two_electron.pack_s8(self.plan, basis, b), basis.nao)
                     for b in factors)

    @staticmethod
    def get_j(tensors, dm):
        return get_jk_incore(tensors[0], dm, with_k=False)[0]

    @staticmethod
    def get_k(tensors, dm, op: int = 0, orbs=None):
        return get_jk_incore(tensors[op], dm, with_j=False)[1]

    def energy(self, basis: Basis, factors, dm, dm_tot, weights, kf, orbs=None):
        """E_coul + E_exx contracted with each quartet block and its number of images
        (:func:`~dftad.integrals.two_electron.blocks_energy`): no (nao,)*4 array, in the
        forward or the reverse pass (``orbs`` is not used)."""
        e = 0.0
        for blocks, term in zip(factors, eri_terms(len(factors), dm, dm_tot, weights, kf)):
            e = e + two_electron.blocks_energy(self.plan, basis, blocks, *term)
        return e

    def eri_block(self, tensors, idx):
        return tensors[0][jnp.ix_(idx, idx, idx, idx)]


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class DFJK:
    """Density fitting with the auxiliary basis ``aux``: the factors are the integrals
    ((mn|P), (P|Q)) of each operator, the tensors B = W (P|mn) (:func:`cderi`)."""

    aux: Basis
    plan3c: two_electron.EriPlan
    plan2c: two_electron.EriPlan
    auxbasis_name: str = dataclasses.field(metadata={"static": True})
    density_fitting = True

    def describe(self) -> str:
        return f"density fitting ({self.auxbasis_name})"

    def integrals(self, basis: Basis, coords, omega=None):
        """(mn|P) (nao, nao, naux) and (P|Q) of one operator (omega: as :func:`per_operator`)."""
        return (two_electron.int3c2e(self.plan3c, basis, self.aux, coords, omega),
                two_electron.int2c2e(self.plan2c, self.aux, coords, omega))

    def factors(self, basis: Basis, coords, omegas):
        # the integrals of all operators in one traced kernel
        return per_operator(lambda w: self.integrals(basis, coords, w), omegas)

    def factors_and_pullback(self, basis: Basis, coords, omegas):
        factors, pullback = jax.vjp(lambda c: self.factors(basis, c, omegas), coords)
        return factors, lambda factors_bar: pullback(factors_bar)[0]

    def tensors(self, basis: Basis, factors):
        # the factorisation per operator (vmapped, its cond between Cholesky and eigh would
        # run both)
        return tuple(cderi(int3c, int2c) for int3c, int2c in factors)

    @staticmethod
    def get_j(tensors, dm):
        return get_jk_df(tensors[0], dm, with_k=False)[0]

    @staticmethod
    def get_k(tensors, dm, op: int = 0, orbs=None):
        return get_jk_df(tensors[op], dm, with_j=False, orbs=orbs)[1]

    def energy(self, basis: Basis, factors, dm, dm_tot, weights, kf, orbs=None):
        """With ``orbs`` (X, dm = X X^T): :func:`fitted_energy` per operator, so that derivatives
        form neither B nor its cotangent (the forces); else J and K from B."""
        if orbs is None:
            vj, vk = coulomb_exchange(self, self.tensors(basis, factors), dm, dm_tot, weights)
            e_coul, e_exx = energy_terms(dm, dm_tot, vj, vk, kf)
            return e_coul + e_exx
        e = 0.0
        for (int3c, int2c), (dm_coul, dm_exch, c_exch) in zip(
                factors, eri_terms(len(factors), dm, dm_tot, weights, kf)):
            e = e + fitted_energy(int3c, int2c, dm_tot, None if dm_exch is None else orbs,
                                  float(dm_coul is not None), c_exch)
        return e

    def eri_block(self, tensors, idx):
        b = tensors[0][:, idx[:, None], idx[None, :]]
        return jnp.einsum("pij,pkl->ijkl", b, b)
