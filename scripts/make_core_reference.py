"""Reference numbers of the core before the module reshaping (issue 18), for the regression test
``tests/test_core_reference.py``: energies, forces, a nuclear Hessian and a polarizability, computed
by the code at the commit named in the output file, which the reshaped core must reproduce to
1e-12.

    python scripts/make_core_reference.py [OUT.json]

The committed file was written on commit bfcd9f7 (the core before the reshaping) by this
script's first version (``git show bfcd9f7:scripts/make_core_reference.py``) with the
convergence options ``TIGHT`` below added (the same cases
through the old names ``energy.build``, ``energy.energy_and_forces``, ``properties.hessian``).
Run on a later commit, it recomputes the same numbers with today's API, which is what the test
checks. The numbers are dftad's, not PySCF's (the other tests compare with PySCF at their own
tolerances).
"""

import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np

import dftad

# Converged far below the comparison's 1e-12 (|[F,D]| ~ 5e-14 in about 20 cycles): at the
# default conv_tol_grad=1e-7 the components and forces carry ~1e-8 of how the SCF got there,
# which differs between machines and compiled programs.
TIGHT = {"conv_tol": 1e-14, "conv_tol_grad": 1e-12}
CASES = {
    # name: (molecule, basis, xc, build options)
    "water_rks_b3lyp": ("water", "sto-3g", "b3lyp", {"grid_level": 1, **TIGHT}),
    "oh_uks_pbe": ("hydroxyl_radical", "sto-3g", "pbe", {"grid_level": 1, **TIGHT}),
    "water_rhf_df": ("water", "6-31g", "hf", {"density_fit": True, **TIGHT}),
}


# Saddle points of the energy (internally unstable): the file keeps their converged density as
# "dm0", where the Hessian and polarizability start and the test starts every program
# (from the guess, rounding decides which state an SCF ends in). oh_uks_pbe's dm0 in the
# committed file is bfcd9f7's energy_and_forces density, added afterwards.
SADDLES = {"oh_uks_pbe"}


def compute(mol_name, basis, xc, opts, saddle=False):
    mol = dftad.load(mol_name)
    setup = dftad.build(mol, basis, xc, **opts)
    coords = jnp.asarray(mol.coords)
    res = jax.jit(dftad.energy_and_forces)(setup, coords)
    dm0 = res.scf.dm if saddle else None
    hess = jax.jit(dftad.hessian)(setup, coords, dm0=dm0)
    alpha = jax.jit(dftad.polarizability)(setup, coords, dm0=dm0)
    extra = {"dm0": np.asarray(dm0).tolist()} if saddle else {}
    return extra | {
        "molecule": mol_name, "basis": basis, "xc": xc, "options": opts,
        "e_tot": float(res.e_tot),
        "components": {k: float(v) for k, v in res.components._asdict().items()},
        "forces": np.asarray(res.forces).tolist(),
        "hessian": np.asarray(hess).tolist(),
        "polarizability": np.asarray(alpha).tolist(),
    }


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/data/core_reference.json"
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    data = {"commit": commit.strip(), "cases": {}}
    for name, case in CASES.items():
        data["cases"][name] = compute(*case, saddle=name in SADDLES)
        print(name, data["cases"][name]["e_tot"], flush=True)
    with open(out, "w") as f:
        json.dump(data, f, indent=1)


if __name__ == "__main__":
    main()
