"""Integrals from the compiled pieces every molecule shares (dftad.integrals.eri_pieces,
one_electron_pieces) against the whole-program evaluation (two_electron, one_electron), and
that two molecules share them."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dftad
from dftad import energy, forces, hamiltonian, pieces, scf_pieces
from dftad.integrals import (
    eri_pieces,
    eri_plan,
    one_electron,
    one_electron_pieces,
    two_electron,
)
from dftad.integrals.eri_kernel import class_integrals, hermite_pairs


def _setup(name, basis="6-31g", xc="hf"):
    mol = dftad.load(name)
    return dftad.build(mol, basis, xc), jnp.asarray(mol.coords)


def _densities(nao, seed=0):
    d = np.random.default_rng(seed).normal(size=(2, nao, nao))
    return jnp.asarray(d + d.transpose(0, 2, 1))


@pytest.mark.parametrize("omega, name, basis, quick", [
    (None, "formaldehyde", "6-31g", True), (0.33, "formaldehyde", "6-31g", True),
    (None, "formaldehyde", "6-31g", False),
    pytest.param(None, "water", "def2-tzvp", True, marks=pytest.mark.slow)])
def test_padded_pieces_equal_the_whole_program(omega, name, basis, quick, monkeypatch):
    """Chunks padded to the class's fixed size, accumulators and s8 packing padded to power-of-two
    buckets, the density padded to a bucketed nao, the pair pieces padded to d's (or f's)
    components: the same tensor and gradient to 1e-12 (with ``-m slow``: f functions). Both
    tiers of the class pieces (``quick``: the executables without LLVM's optimisations that
    molecules this small run, ``pieces.quick_for``; else the optimised ones), each used alone."""
    monkeypatch.setattr(pieces, "QUICK_ENABLED", quick)
    class_pieces = (eri_pieces._hermite_r, eri_pieces._quartets_to_s8, eri_pieces._quartets_grad)
    for p in class_pieces:
        monkeypatch.setattr(p, "_compiled", {})
    setup, coords = _setup(name, basis)
    plan, basis = setup.jk.plan, setup.basis
    ref = jax.jit(two_electron.eri)(plan, basis, coords, omega)
    got = eri_pieces.eri(plan, basis, coords, omega)
    assert got.shape == ref.shape
    assert float(jnp.abs(got - ref).max()) < 1e-12
    dm = _densities(setup.nao)
    dm_tot = dm[0] + dm[1]

    def e2(c):
        return two_electron.eri_energy(plan, basis, c, dm_tot, dm, 0.3, omega)

    g_ref = jax.jit(jax.grad(e2))(coords)
    g = eri_pieces.gradient(plan, basis, coords, [(omega, dm_tot, dm, 0.3)])
    assert float(jnp.abs(g - g_ref).max()) < 1e-12 * float(jnp.abs(g_ref).max())
    for p in class_pieces:
        assert p._compiled and all((key[-1] == "quick") == quick for key in p._compiled)
    if omega is not None:  # 1/r12 is omega = inf: the R pieces of erf(omega r12)/r12 serve it
        compiled = len(eri_pieces._hermite_r._compiled)
        eri_pieces.eri(plan, basis, coords)
        assert len(eri_pieces._hermite_r._compiled) == compiled


@pytest.mark.parametrize("omega, name, basis", [(None, "water", "def2-svp"),
                                                 (0.33, "formaldehyde", "6-31g")])
def test_eri_hessian_from_the_pieces_equals_the_whole_program(omega, name, basis):
    """The second derivatives of E2 at fixed densities (:func:`eri_pieces.hessian`: per quartet
    along its centres' local displacements, scattered to the atoms) equal forward over reverse
    mode through the whole-program integrals to 1e-11 relative; water's def2-SVP has d
    functions, formaldehyde's 6-31G runs erf-attenuated integrals; unrestricted exchange
    densities, random (nothing cancels by symmetry)."""
    setup, coords = _setup(name, basis)
    plan, basis = setup.jk.plan, setup.basis
    coords = coords + jnp.asarray(np.random.default_rng(1).normal(size=coords.shape)) * 0.05
    dm = _densities(setup.nao)
    dm_tot = dm[0] + dm[1]

    def e2(c):
        return two_electron.eri_energy(plan, basis, c, dm_tot, dm, 0.3, omega)

    ref = np.asarray(jax.jit(jax.jacfwd(jax.grad(e2)))(coords))  # (A, i, B, j)
    got = eri_pieces.hessian(plan, basis, coords, [(omega, dm_tot, dm, 0.3)])
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() < 1e-11 * np.abs(ref).max()


@pytest.mark.parametrize("omega, coulomb, name, basis", [(None, True, "water", "def2-svp"),
                                                          (0.33, False, "formaldehyde", "6-31g")])
def test_fock_tangents_from_the_pieces_equal_the_whole_program(omega, coulomb, name, basis):
    """dG[D]/dR at fixed D, G = dE2/dD (:func:`eri_pieces.fock_tangents`: the integrals'
    derivatives along their centres' local displacements contracted with D, no derivative
    tensors) equals forward mode over the whole program's dE2/dD to 1e-12 relative: with d
    functions and Coulomb, and erf-attenuated exchange alone; a random symmetric D."""
    setup, coords = _setup(name, basis)
    plan, basis = setup.jk.plan, setup.basis
    coords = coords + jnp.asarray(np.random.default_rng(2).normal(size=coords.shape)) * 0.05
    dm = _densities(setup.nao)[0]

    def g(c):
        return jax.grad(lambda d: two_electron.eri_energy(
            plan, basis, c, d if coulomb else None, d, 0.3, omega))(dm)

    ref = np.asarray(jax.jit(jax.jacfwd(g))(coords))  # (nao, nao, A, i)
    ref = 0.5 * (ref + ref.transpose(1, 0, 2, 3))
    got = eri_pieces.fock_tangents(plan, basis, coords, [(omega, dm if coulomb else None, dm,
                                                          0.3)])
    assert got.shape == ref.shape[2:] + ref.shape[:2]
    assert np.abs(got - ref.transpose(2, 3, 0, 1)).max() < 1e-12 * np.abs(ref).max()


def _diagonal_quartets(basis, coords, ps, idx, nq):
    """The whole-program class kernel on the quartets ``idx``, as one program (op by op ~30 s)."""
    lab = ps.la + ps.lb
    return jax.jit(lambda c: class_integrals(hermite_pairs(basis, c, ps, False),
                                             hermite_pairs(basis, c, ps, True),
                                             lab, lab, idx, nq))(coords)


def test_schwarz_bounds_from_the_pieces():
    """sqrt(max |(ab|ab)|) per shell pair (cartesian functions) equals the whole-program class
    kernel's diagonal quartets to 1e-12."""
    setup, coords = _setup("water", "def2-svp")
    basis = setup.basis
    bounds = eri_pieces.schwarz(basis, coords, setup.jk.plan.bra_sets)
    for ps, got in zip(setup.jk.plan.bra_sets, bounds):
        n = ps.cls.npair
        cls, idx, _ = eri_plan._make_class(0, 0, ps, ps, np.stack([np.arange(n)] * 2, axis=1))
        v = _diagonal_quartets(basis, coords, ps, idx, cls.nq)
        ref = np.sqrt(np.abs(np.diagonal(np.asarray(v), axis1=1, axis2=2)).max(axis=1))
        assert got.shape == ref.shape
        assert np.abs(got - ref).max() < 1e-12 * ref.max()


def _piece_counts():
    return tuple(f.cache_size() for f in (eri_pieces._quartets, eri_pieces._quartets_grad,
                                           eri_pieces._hermite, eri_pieces._hermite_grad,
                                           one_electron_pieces._chunk,
                                           one_electron_pieces._chunk_grad, scf_pieces._core,
                                           scf_pieces._jk, scf_pieces._head, scf_pieces._tail,
                                           scf_pieces._first, scf_pieces._atom_scf))


def test_two_molecules_share_the_compiled_pieces(monkeypatch):
    """Energies and forces of water, then of methanol (same elements and basis, twice the atoms,
    never seen): methanol compiles no new integral or SCF piece (both fit the smallest nao
    bucket); its energy equals the whole program's to 1e-10 Ha and its forces equal the
    whole-program gradient of the same SCF to 1e-10."""
    # atom densities solved here, not read from files other tests of the session wrote (water's
    # H and O read from disk would leave the atom SCF uncompiled until methanol's C)
    monkeypatch.setattr(pieces, "data_path", lambda kind, key: None)
    water, cw = _setup("water")
    res = energy.kernel_stepwise(water, cw)
    forces.gradient_stepwise(water, cw, res.scf)
    counts = _piece_counts()
    methanol, cm = _setup("methanol")
    res = energy.kernel_stepwise(methanol, cm)
    grad = forces.gradient_stepwise(methanol, cm, res.scf)
    assert _piece_counts() == counts
    assert abs(float(res.e_tot - jax.jit(energy.kernel)(methanol, cm).e_tot)) < 1e-10
    ref = jax.jit(forces.gradient_at)(methanol, cm, res.scf)
    assert float(jnp.abs(grad - ref).max()) < 1e-10


def test_a_new_molecule_compiles_nothing(monkeypatch):
    """B3LYP/def2-SVP energy and forces through dftad.run (the CLI's path): water, then
    methanol (same elements and basis, twice the atoms, never seen). Methanol compiles no XLA
    program at all (counted with JAX's monitoring hook: integrals, SCF, grid, XC and their
    gradients are pieces shared by the nao bucket, atom bucket and shell classes), and its
    energy and forces equal PySCF's (RKS, gradient with grid response, same grid) to 1e-8 Ha and
    2e-6 Ha/Bohr."""
    from pyscf import dft

    from dftad.interop.pyscf import to_pyscf_mole

    monkeypatch.setattr(pieces, "data_path", lambda kind, key: None)  # as in the test above
    compiles = []

    def count(event, duration, **_):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(duration)

    jax.monitoring.register_event_duration_secs_listener(count)
    try:
        dftad.run(dftad.load("water"), "def2-svp", "b3lyp", forces=True, grid_level=1)
        before = len(compiles)
        mol = dftad.load("methanol")
        res = dftad.run(mol, "def2-svp", "b3lyp", forces=True, grid_level=1)
        assert len(compiles) == before
    finally:
        jax.monitoring.unregister_event_duration_listener(count)
    mf = dft.RKS(to_pyscf_mole(mol, "def2-svp"))
    mf.xc, mf.grids.level, mf.small_rho_cutoff = "b3lyp", 1, 0
    mf.conv_tol, mf.conv_tol_grad = 1e-12, 1e-8
    mf.kernel()
    g = mf.nuc_grad_method()
    g.grid_response = True
    assert abs(float(res.e_tot) - mf.e_tot) < 1e-8
    assert np.abs(np.asarray(res.forces) + g.kernel()).max() < 2e-6


def test_compile_ahead_compiles_what_the_forces_run(monkeypatch):
    """UKS LDA/STO-3G forces of CH3 with every piece's executables set aside: the pass that
    :func:`dftad.forces.compile_ahead` runs beside the SCF (a zero density, one chunk per
    class, one grid block) compiles, in its thread, every program the forces then run: the
    forces compile none."""
    for p in pieces.REGISTRY:
        monkeypatch.setattr(p, "_compiled", {})
        monkeypatch.setattr(p, "_key_locks", {})
    monkeypatch.setattr(pieces, "cache_dir", lambda: None)  # compiled here, not loaded from files
    monkeypatch.setattr(forces, "_WARM", set())  # nor known to have run
    compiles = []

    def count(event, duration, **_):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(duration)

    setup, coords = _setup("methyl_radical", "sto-3g", "lda")
    jax.monitoring.register_event_duration_secs_listener(count)
    try:
        with forces.compile_ahead(setup, coords):
            res = energy.kernel_stepwise(setup, coords)
        ahead = len(compiles)
        forces.gradient_stepwise(setup, coords, res.scf)
        assert len(compiles) == ahead
    finally:
        jax.monitoring.unregister_event_duration_listener(count)
    assert ahead > 0


@pytest.mark.parametrize("basis", ["def2-svp", pytest.param("def2-tzvp", marks=pytest.mark.slow)])
def test_one_electron_pieces_equal_the_whole_program(basis):
    """S, T, V and the gradient of sum D (T + V) - sum W S (padded chunks, nuclei, nao, the
    s, p and d classes padded to d's components) equal dftad.integrals.one_electron to 1e-12
    (d and f functions included)."""
    setup, coords = _setup("water", basis)
    basis_, charges = setup.basis, setup.charges
    s1e, kin, v = one_electron_pieces.matrices(basis_, coords, charges)
    one = jax.jit(hamiltonian.one_electron_part)(setup, coords)
    for got, ref in ((s1e, one.s1e), (kin, one.kin), (v, one.v_per_nucleus.sum(axis=0))):
        assert got.shape == ref.shape
        assert float(jnp.abs(got - ref).max()) < 1e-12 * max(1.0, float(jnp.abs(ref).max()))
    dm, w = _densities(setup.nao)

    def lagr(c):
        return (jnp.sum(dm * (one_electron.kinetic(basis_, c)
                              + one_electron.nuclear(basis_, c, charges)))
                - jnp.sum(w * one_electron.overlap(basis_, c)))

    g_ref = jax.jit(jax.grad(lagr))(coords)
    g = one_electron_pieces.gradient(basis_, coords, charges, dm, w)
    assert float(jnp.abs(g - g_ref).max()) < 1e-12 * float(jnp.abs(g_ref).max())


def test_pieces_are_saved_and_loaded_without_compiling(tmp_path, monkeypatch):
    """An executable is written once (in its own file, not also in JAX's on-disk cache, on in
    the test session) and a fresh Piece (a new process) loads it without tracing or compiling;
    a damaged file is compiled again and saved again; another static argument is another
    file."""
    monkeypatch.setattr(pieces, "cache_dir", lambda: str(tmp_path))

    def f(x, n):
        return jnp.sin(x) * n

    x = jnp.arange(5.0)
    ref = np.sin(np.arange(5.0)) * 3
    assert np.allclose(pieces.Piece(f, (1,))(x, 3), ref, rtol=0, atol=1e-15)
    files = list(tmp_path.rglob("*.bin"))
    assert len(files) == 1
    name = files[0].name.split("-")[1].split(".")[0]  # the program's name holds its file's
    jax_cache = jax.config.jax_compilation_cache_dir
    assert jax_cache and not [p for p in os.listdir(jax_cache) if name in p]
    compiles = []

    def count(event, duration, **_):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(duration)

    def load():  # a fresh Piece, as in a new process: must neither trace nor compile
        loaded = pieces.Piece(f, (1,))
        jax.monitoring.register_event_duration_secs_listener(count)
        try:
            assert np.allclose(loaded(x, 3), ref, rtol=0, atol=1e-15)
        finally:
            jax.monitoring.unregister_event_duration_listener(count)
        assert loaded.cache_size() == 1 and compiles == []

    load()
    files[0].write_bytes(b"not an executable")
    assert np.allclose(pieces.Piece(f, (1,))(x, 3), ref, rtol=0, atol=1e-15)
    load()  # the damaged file was written again
    pieces.Piece(f, (1,))(x, 4)
    assert len(list(tmp_path.rglob("*.bin"))) == 2


def test_a_repeated_job_preloads_its_pieces(tmp_path, monkeypatch):
    """What a job (the CLI's command line) used is remembered; the next run of the job loads it
    in a thread before asking (``pieces.preload``), and then runs it without compiling and with
    the same numbers. A failed job remembers nothing; a record naming a missing file is only a
    file not preloaded."""
    monkeypatch.setattr(pieces, "cache_dir", lambda: str(tmp_path))

    def g(x, n):
        return jnp.cos(x) + n

    x = jnp.arange(4.0)
    assert pieces.preload("job") is None  # nothing recorded yet
    first = pieces.Piece(g, (1,))
    refs = [np.asarray(first(x, n)) for n in (1, 2)]
    pieces.remember("job")
    pieces.remember(None)  # a failed job writes nothing
    (record,) = tmp_path.rglob("manifest-*.txt")
    names = record.read_text().split()
    assert len(names) == 2 and all(n.startswith("g-") and n.endswith(".bin") for n in names)
    record.write_text("\n".join(names + ["g-missing.bin"]))
    monkeypatch.setattr(pieces, "_AHEAD", {})  # a new process
    thread = pieces.preload("job")
    thread.join()
    assert sorted(os.path.basename(p) for p in pieces._AHEAD) == sorted(names)
    compiles = []

    def count(event, duration, **_):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(duration)

    again = pieces.Piece(g, (1,))
    jax.monitoring.register_event_duration_secs_listener(count)
    try:
        for n, ref in zip((1, 2), refs):
            np.testing.assert_array_equal(np.asarray(again(x, n)), ref)
    finally:
        jax.monitoring.unregister_event_duration_listener(count)
    assert compiles == [] and pieces._AHEAD == {}
    pieces.remember("job", thread)


def test_repeated_jobs_take_the_optimised_class_pieces(monkeypatch):
    """Water is small enough for the quick class kernels (``pieces.quick_for``); inside
    ``pieces.repeated_job`` (geometry optimization, Hessians, training: many calls) the
    optimised ones run, also in the thread that ``forces.compile_ahead`` starts; the Schwarz
    bounds (remembered by value) take the quick ones by size alone."""
    monkeypatch.setattr(pieces, "QUICK_ENABLED", True)
    setup, coords = _setup("water")
    basis = setup.basis
    assert eri_pieces.is_quick(basis)
    seen = []
    monkeypatch.setattr(forces, "_pieces_gradient",
                        lambda *args, **kwargs: seen.append(eri_pieces.is_quick(basis)))
    monkeypatch.setattr(forces, "_WARM", set())
    with pieces.repeated_job():
        assert not eri_pieces.is_quick(basis) and pieces.in_repeated_job()
        with forces.compile_ahead(setup, coords):
            pass
        monkeypatch.setattr(eri_pieces._quartets, "_compiled", {})
        eri_pieces.schwarz(basis, coords, setup.jk.plan.bra_sets[:1])
        assert all(key[-1] == "quick" for key in eri_pieces._quartets._compiled)
    assert seen == [False]
    assert eri_pieces.is_quick(basis) and not pieces.in_repeated_job()


@pytest.mark.parametrize("distinct", [False, True])
def test_chunks_hold_contracted_items_without_primitives(distinct):
    """Contracted items with no primitive items (a shell pair whose primitive pairs were all
    screened out: caffeine/def2-TZVP's Schwarz pass failed on them) are laid out like the others:
    a chunk of b primitive items holds at most b contracted ones, and the chunks give back every
    primitive item with its contracted item and every contracted item's metadata once."""
    rng = np.random.default_rng(0)
    nq, b = 60, 4
    counts = rng.choice([0, 0, 0, 1, 2, 3], nq)
    qid = np.repeat(np.arange(nq), counts)
    ip = np.arange(len(qid))
    iq = ip + 1000
    meta = np.arange(nq)[None] + 7  # padding is 0
    got, metas = [], []
    for ch in eri_pieces.split(ip, iq, qid, meta, b, distinct=distinct):
        assert ch.ip.shape == (b,) and ch.meta.shape == (1, b)
        real = ch.ip >= 0
        got += [(int(i), int(j), int(q) - 7)
                for i, j, q in zip(ch.ip[real], ch.iq[real], ch.meta[0, ch.local[real]])]
        metas += [int(m) for m in ch.meta[0] if m]
    assert sorted(got) == sorted(zip(ip.tolist(), iq.tolist(), qid.tolist()))
    assert metas == list(meta[0])
