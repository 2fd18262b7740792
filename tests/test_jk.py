"""Coulomb and exchange builds (dftad.jk) against PySCF's, on PySCF's own integrals."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from pyscf import df, gto, scf

from dftad import jk

ATOL = 1e-11


@pytest.fixture(scope="module")
def water():
    return gto.M(atom="O 0 0 0.1; H 0 0.76 -0.5; H 0 -0.76 -0.5", basis="6-31g*", verbose=0)


def random_dms(nao, lead, seed=0):
    x = np.random.default_rng(seed).standard_normal(lead + (nao, nao))
    return x + np.swapaxes(x, -1, -2)


@pytest.mark.parametrize("lead", [(), (2,), (2, 3)], ids=["one", "spin", "batch"])
def test_incore_matches_pyscf(water, lead):
    eri = water.intor("int2e")
    dms = random_dms(water.nao, lead)
    vj, vk = jax.jit(jk.get_jk_incore)(jnp.asarray(eri), jnp.asarray(dms))
    rj, rk = scf.hf.dot_eri_dm(eri, dms.reshape(-1, water.nao, water.nao), hermi=1)
    assert vj.shape == vk.shape == dms.shape
    assert np.abs(np.asarray(vj).reshape(rj.shape) - rj).max() < ATOL
    assert np.abs(np.asarray(vk).reshape(rk.shape) - rk).max() < ATOL


def test_incore_single_terms(water):
    eri = jnp.asarray(water.intor("int2e"))
    dm = jnp.asarray(random_dms(water.nao, ()))
    _vj, vk = jk.get_jk_incore(eri, dm)
    assert jk.get_jk_incore(eri, dm, with_k=False)[1] is None
    assert np.abs(np.asarray(jk.get_jk_incore(eri, dm, with_j=False)[1] - vk)).max() == 0


def test_density_fitting_matches_pyscf(water):
    auxmol = df.addons.make_auxmol(water, "def2-universal-jkfit")
    int3c = df.incore.aux_e2(water, auxmol, "int3c2e")
    int2c = auxmol.intor("int2c2e")
    dm = random_dms(water.nao, (2,))
    b = jk.cderi(jnp.asarray(int3c), jnp.asarray(int2c))
    vj, vk = jk.get_jk_df(b, jnp.asarray(dm))
    mf = scf.RHF(water).density_fit(auxbasis="def2-universal-jkfit")
    rj, rk = mf.get_jk(water, dm, hermi=1)
    assert np.abs(np.asarray(vj) - rj).max() < 1e-9
    assert np.abs(np.asarray(vk) - rk).max() < 1e-9


def test_density_fitting_exchange_in_aux_blocks(water, monkeypatch):
    """K summed over blocks of auxiliary functions (here 7 per block and a remainder, as for
    large molecules) equals PySCF's, and its reverse-mode derivative equals the one-block K's."""
    auxmol = df.addons.make_auxmol(water, "def2-universal-jkfit")
    b = jk.cderi(jnp.asarray(df.incore.aux_e2(water, auxmol, "int3c2e")),
                 jnp.asarray(auxmol.intor("int2c2e")))
    dm = jnp.asarray(random_dms(water.nao, (2,)))
    w = jnp.asarray(random_dms(water.nao, (2,)))

    def loss(b):
        return jnp.sum(w * jk.get_jk_df(b, dm, with_j=False)[1])

    g_one = jax.grad(loss)(b)
    monkeypatch.setattr(jk, "K_BLOCK_BYTES", 7 * 8 * 2 * water.nao**2)
    assert b.shape[0] % 7  # a remainder block too
    vk = jk.get_jk_df(b, dm, with_j=False)[1]
    rk = scf.RHF(water).density_fit(auxbasis="def2-universal-jkfit").get_jk(water, np.asarray(dm),
                                                                             hermi=1)[1]
    assert np.abs(np.asarray(vk) - rk).max() < 1e-9
    assert np.abs(np.asarray(jax.grad(loss)(b) - g_one)).max() < 1e-12


def test_density_fitting_singular_metric_matches_pyscf(water):
    """The erf-attenuated metric (range-separated hybrids, omega = 0.33) is numerically singular
    (eigenvalues down to -1e-14): its Cholesky factorisation fails and ``cderi`` drops the
    eigenvalues below 1e-7, as PySCF does; before, B was NaN and the SCF never converged."""
    omega = 0.33
    auxmol = df.addons.make_auxmol(water, "def2-universal-jkfit")
    with water.with_range_coulomb(omega), auxmol.with_range_coulomb(omega):
        int3c = df.incore.aux_e2(water, auxmol, "int3c2e")
        int2c = auxmol.intor("int2c2e")
    assert np.linalg.eigvalsh(int2c)[0] < jk.LINEAR_DEP_THR  # the case this test is for
    dm = random_dms(water.nao, (2,))
    b = jax.jit(jk.cderi)(jnp.asarray(int3c), jnp.asarray(int2c))
    assert bool(jnp.isfinite(b).all())
    vj, vk = jk.get_jk_df(b, jnp.asarray(dm))
    mf = scf.RHF(water).density_fit(auxbasis="def2-universal-jkfit")
    rj, rk = mf.get_jk(water, dm, hermi=1, omega=omega)
    assert np.abs(np.asarray(vj) - rj).max() < 1e-9
    assert np.abs(np.asarray(vk) - rk).max() < 1e-9


def test_cderi_gradient_is_finite_under_vmap(water):
    """Under vmap ``lax.cond`` evaluates both branches (a select); the failed Cholesky branch of
    the singular metric (all NaN) must not reach the reverse-mode derivative."""
    auxmol = df.addons.make_auxmol(water, "def2-universal-jkfit")
    with water.with_range_coulomb(0.33), auxmol.with_range_coulomb(0.33):
        int3c = jnp.asarray(df.incore.aux_e2(water, auxmol, "int3c2e"))
        singular = jnp.asarray(auxmol.intor("int2c2e"))
    regular = jnp.asarray(auxmol.intor("int2c2e"))
    dm = jnp.asarray(random_dms(water.nao, ()))

    def e_coul(metric):
        vj, _ = jk.get_jk_df(jk.cderi(int3c, metric), dm, with_k=False)
        return jnp.sum(vj * dm)

    metrics = jnp.stack([singular, regular])
    outer = jax.vmap(jax.grad(e_coul))(metrics)  # cond transposed, then batched
    inner = jax.grad(lambda m: jnp.sum(jax.vmap(e_coul)(m)))(metrics)  # select, then transposed
    assert bool(jnp.isfinite(outer).all()) and bool(jnp.isfinite(inner).all())
    np.testing.assert_allclose(outer[1], jax.grad(e_coul)(regular), atol=1e-10)
    np.testing.assert_allclose(inner, outer, atol=1e-10)


@pytest.mark.parametrize("lead", [(), (2,)], ids=["restricted", "unrestricted"])
def test_exchange_through_occupied_orbitals(water, lead, monkeypatch):
    """K built from the orbital factor X of D = X X^T (O(naux nao^2 nocc), what the SCF uses
    with density fitting) equals PySCF's RI-K of D, and its forward and reverse derivatives in
    B and X equal those of the O(naux nao^3) form of D = X X^T, also over blocks of auxiliary
    functions with a remainder."""
    auxmol = df.addons.make_auxmol(water, "def2-universal-jkfit")
    b = jk.cderi(jnp.asarray(df.incore.aux_e2(water, auxmol, "int3c2e")),
                 jnp.asarray(auxmol.intor("int2c2e")))
    rng = np.random.default_rng(1)
    nao, nocc = water.nao, 5
    c = rng.standard_normal(lead + (nao, nao))
    mo_occ = np.zeros(lead + (nao,))
    mo_occ[..., :nocc] = 2.0 if not lead else 1.0
    if lead:
        mo_occ[1, nocc - 1] = 0.0  # fewer beta electrons: a zero column in X
    orbs = jk.orbitals_of(jnp.asarray(c), jnp.asarray(mo_occ), nocc)
    dm = jnp.einsum("...mi,...i,...ni->...mn", c, mo_occ, c)
    rk = scf.RHF(water).density_fit(auxbasis="def2-universal-jkfit").get_jk(
        water, np.asarray(dm).reshape((-1, nao, nao)), hermi=1)[1]
    d = rng.standard_normal(b.shape)
    db = jnp.asarray(d + np.swapaxes(d, -1, -2))  # B^P is symmetric, and so its tangent
    dx = jnp.asarray(rng.standard_normal(orbs.shape))
    w = jnp.asarray(random_dms(nao, lead, seed=3))

    def full(b, x):
        return jk.exchange_df(b, jnp.einsum("...mi,...ni->...mn", x, x))

    def check():
        vk = jax.jit(jk.exchange_df_occ)(b, orbs)
        assert np.abs(np.asarray(vk).reshape(rk.shape) - rk).max() < 1e-9
        _, t_occ = jax.jvp(jk.exchange_df_occ, (b, orbs), (db, dx))
        _, t_full = jax.jvp(full, (b, orbs), (db, dx))
        assert np.abs(np.asarray(t_occ - t_full)).max() < 1e-10 * np.abs(np.asarray(t_full)).max()
        g_occ = jax.grad(lambda b, x: jnp.sum(w * jk.exchange_df_occ(b, x)), (0, 1))(b, orbs)
        g_full = jax.grad(lambda b, x: jnp.sum(w * full(b, x)), (0, 1))(b, orbs)
        # B^P is symmetric for every geometry: only the symmetric part of its cotangent reaches
        # the nuclei (the two forms read B^P_sn and B^P_ns, whose cotangents differ by a swap)
        g_occ, g_full = ([g[0] + jnp.swapaxes(g[0], 1, 2), g[1]] for g in (g_occ, g_full))
        for x, y in zip(g_occ, g_full):
            assert np.abs(np.asarray(x - y)).max() < 1e-10 * np.abs(np.asarray(y)).max()

    check()
    monkeypatch.setattr(jk, "K_BLOCK_BYTES", 7 * 8 * 2 * nao * nocc)
    assert b.shape[0] % 7  # a remainder block too
    check()


@pytest.mark.parametrize("omega", [None, 0.33], ids=["cholesky", "singular-metric"])
@pytest.mark.parametrize("lead", [(), (2,)], ids=["restricted", "unrestricted"])
def test_fitted_energy_equals_the_energy_of_the_factors(water, lead, omega):
    """:func:`dftad.jk.fitted_energy` (what the density-fitted forces differentiate: no B) equals
    E_J + E_K from B = W (mn|P) and J, K built from it, with its derivatives in (mn|P) and in
    the metric, for the regular (Cholesky) and the numerically singular (eigenvalue) metric."""
    auxmol = df.addons.make_auxmol(water, "def2-universal-jkfit")
    with water.with_range_coulomb(omega or 0.0), auxmol.with_range_coulomb(omega or 0.0):
        int3c = jnp.asarray(df.incore.aux_e2(water, auxmol, "int3c2e"))
        int2c = jnp.asarray(auxmol.intor("int2c2e"))
    rng = np.random.default_rng(2)
    nao, nocc = water.nao, 5
    c = rng.standard_normal(lead + (nao, nao)) / 3
    mo_occ = np.zeros(lead + (nao,))
    mo_occ[..., :nocc] = 2.0 if not lead else 1.0
    if lead:
        mo_occ[1, nocc - 1] = 0.0
    orbs = jk.orbitals_of(jnp.asarray(c), jnp.asarray(mo_occ), nocc)
    dm = jnp.einsum("...mi,...i,...ni->...mn", c, mo_occ, c)
    dm_tot = dm if not lead else dm[0] + dm[1]
    kf, c_coul, c_exch = (0.5 if not lead else 1.0), 0.7, 0.4

    def via_factors(int3c, int2c):
        b = jk.cderi(int3c, int2c)
        vj, vk = jk.get_jk_df(b, dm_tot, with_k=False)[0], jk.get_jk_df(b, dm, with_j=False)[1]
        e_coul, e_exx = jk.energy_terms(dm, dm_tot, vj, vk, kf)
        return c_coul * e_coul + c_exch * e_exx

    def fitted(int3c, int2c):
        return jk.fitted_energy(int3c, int2c, dm_tot, orbs, c_coul, 0.5 * c_exch * kf)

    grad_ref = jax.jit(jax.value_and_grad(via_factors, (0, 1)))
    e_ref, g_ref = grad_ref(int3c, int2c)
    e, g = jax.jit(jax.value_and_grad(fitted, (0, 1)))(int3c, int2c)
    assert abs(float(e - e_ref)) < 1e-10 * abs(float(e_ref))
    # How far the reference's own derivatives move when (mn|P) moves by rounding (1e-15
    # relative): the singular metric's inverse square root is ill-conditioned near its
    # eigenvalue cutoff (~1e-9 relative), the Cholesky route is not (~1e-13).
    g_moved = grad_ref(int3c * (1 + 1e-15), int2c)[1]

    def sym(a):  # (mn|P) is symmetric in mn: only this part of its cotangent reaches the nuclei
        return np.asarray(a[0] + jnp.swapaxes(a[0], 0, 1)), np.asarray(a[1])

    for x, y, z in zip(sym(g), sym(g_ref), sym(g_moved)):
        scale = np.abs(y).max()
        floor = np.abs(z - y).max() / scale
        assert np.abs(x - y).max() / scale < max(1e-10, 20 * floor), floor
