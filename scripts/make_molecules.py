"""Regenerate the molecules shipped in ``molecules/`` (every .xyz file and ``molecules/README.md``).

How to run (from the repository root; ase and rdkit are NOT dftad dependencies, so use a
throw-away virtual environment)::

    python -m venv /tmp/molgen
    /tmp/molgen/bin/pip install ase==3.29.0 rdkit==2026.9.1 numpy==2.4.6
    /tmp/molgen/bin/python scripts/make_molecules.py           # (re)write molecules/
    /tmp/molgen/bin/python scripts/make_molecules.py --check   # exit 1 if a shipped file differs

Versions used for the shipped files: Python 3.11.7, ase 3.29.0, rdkit 2026.9.1, numpy 2.4.6.

Sources:

* G2 molecules: the geometries of the G2-1/G2-2 sets as bundled with ASE (``ase.data.g2_1`` and
  ``ase.data.g2_2``), MP2(full)/6-31G(d) optimised (Curtiss, Raghavachari, Redfern, Pople,
  J. Chem. Phys. 106, 1063 (1997)). Their spin is checked against ASE's magnetic moments.
* Molecules not in G2 (urea, amino acids, drugs, small ions): RDKit from a SMILES string,
  ``ETKDGv3`` embedding of ``NCONF`` conformers with a fixed random seed, each optimised with
  MMFF94, the lowest MMFF94 energy kept and centred on its centroid. The charge is RDKit's
  formal charge.

Every xyz file is in Angstrom, its comment line is ``charge=Q spin=S <source>`` with spin = 2S =
N_alpha - N_beta (PySCF's convention), coordinates are written with 6 decimals. The output is
deterministic: running the script twice gives byte-identical files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTDIR = ROOT / "molecules"

# (file name, G2 key in ASE, charge, spin, common name)
G2 = [
    ("hydrogen", "H2", 0, 0, "hydrogen molecule"),
    ("lithium_hydride", "LiH", 0, 0, "lithium hydride"),
    ("water", "H2O", 0, 0, "water"),
    ("ammonia", "NH3", 0, 0, "ammonia"),
    ("methane", "CH4", 0, 0, "methane"),
    ("hydrogen_fluoride", "HF", 0, 0, "hydrogen fluoride"),
    ("nitrogen", "N2", 0, 0, "dinitrogen"),
    ("carbon_monoxide", "CO", 0, 0, "carbon monoxide"),
    ("formaldehyde", "H2CO", 0, 0, "formaldehyde"),
    ("ethylene", "C2H4", 0, 0, "ethylene"),
    ("acetylene", "C2H2", 0, 0, "acetylene"),
    ("methanol", "CH3OH", 0, 0, "methanol"),
    ("ethanol", "CH3CH2OH", 0, 0, "ethanol"),
    ("formic_acid", "HCOOH", 0, 0, "formic acid"),
    ("acetone", "CH3COCH3", 0, 0, "acetone"),
    ("benzene", "C6H6", 0, 0, "benzene"),
    ("pyridine", "C5H5N", 0, 0, "pyridine"),
    ("hydrogen_sulfide", "SH2", 0, 0, "hydrogen sulfide"),
    ("hydrogen_chloride", "HCl", 0, 0, "hydrogen chloride"),
    ("phosphine", "PH3", 0, 0, "phosphine"),
    ("silane", "SiH4", 0, 0, "silane"),
    ("chloromethane", "CH3Cl", 0, 0, "chloromethane"),
    ("methyl_radical", "CH3", 0, 1, "methyl radical (doublet)"),
    ("hydroxyl_radical", "OH", 0, 1, "hydroxyl radical (doublet)"),
    ("nitric_oxide", "NO", 0, 1, "nitric oxide (doublet)"),
    ("oxygen", "O2", 0, 2, "dioxygen (triplet ground state)"),
]

# (file name, SMILES, spin, common name); charge comes from the SMILES
RDKIT = [
    ("urea", "NC(N)=O", 0, "urea"),
    ("glycine", "NCC(=O)O", 0, "glycine (neutral form)"),
    ("alanine", "C[C@@H](C(=O)O)N", 0, "L-alanine (neutral form)"),
    ("aspirin", "CC(=O)Oc1ccccc1C(=O)O", 0, "aspirin (acetylsalicylic acid)"),
    ("caffeine", "Cn1cnc2c1c(=O)n(C)c(=O)n2C", 0, "caffeine"),
    ("hydroxide", "[OH-]", 0, "hydroxide anion"),
    ("ammonium", "[NH4+]", 0, "ammonium cation"),
    ("hydronium", "[OH3+]", 0, "hydronium cation (H3O+)"),
    # ~1000 AOs in def2-SVP (1049): the large density-fitting benchmark (benchmarks/large.py)
    ("erythromycin", "CC[C@@H]1[C@@]([C@@H]([C@H](C(=O)[C@@H](C[C@@]([C@@H]([C@H]([C@@H]"
     "([C@H](C(=O)O1)C)O[C@H]2C[C@@]([C@H]([C@@H](O2)C)O)(C)OC)C)O[C@H]3[C@@H]([C@H](C[C@H]"
     "(O3)C)N(C)C)O)(C)O)C)C)O)(C)O", 0, "erythromycin A"),
]

SEED = 20240601
NCONF = 10
DECIMALS = 6

ELECTRONS = {"H": 1, "Li": 3, "C": 6, "N": 7, "O": 8, "F": 9, "Si": 14, "P": 15, "S": 16, "Cl": 17}


def _fmt(x: float) -> str:
    v = round(float(x), DECIMALS)
    if v == 0.0:  # no "-0.000000"
        v = 0.0
    return f"{v:14.{DECIMALS}f}"


def xyz_text(symbols, positions, charge, spin, source) -> str:
    nelec = sum(ELECTRONS[s] for s in symbols) - charge
    if nelec <= 0 or spin < 0 or spin > nelec or (nelec - spin) % 2:
        raise SystemExit(f"impossible charge={charge} spin={spin} for {symbols}")
    lines = [str(len(symbols)), f"charge={charge} spin={spin} {source}"]
    for s, p in zip(symbols, positions):
        lines.append(f"{s:<2s}" + "".join(_fmt(c) for c in p))
    return "\n".join(lines) + "\n"


def formula(symbols) -> str:
    """Hill formula (C, H first, then alphabetical)."""
    counts = {}
    for s in symbols:
        counts[s] = counts.get(s, 0) + 1
    first = [s for s in ("C", "H") if s in counts] if "C" in counts else []
    order = first + sorted(s for s in counts if s not in first)
    return "".join(f"{s}{counts[s] if counts[s] > 1 else ''}" for s in order)


def g2_molecules():
    from ase.data import g2_1, g2_2
    from ase.symbols import string2symbols

    out = []
    for name, key, charge, spin, title in G2:
        entry = g2_1.data.get(key) or g2_2.data[key]
        symbols = string2symbols(entry["symbols"])
        positions = entry["positions"]
        magmom = round(sum(entry["magmoms"] or [0.0]))
        if magmom != spin:
            raise SystemExit(f"{name}: ASE says 2S = {magmom}, table says {spin}")
        if any(round(c, DECIMALS) != c for p in positions for c in p):
            raise SystemExit(f"{name}: G2 coordinates have more than {DECIMALS} decimals")
        source = (
            f"{title}; {entry['database']} set, MP2(full)/6-31G(d) geometry "
            f"(Curtiss et al., J. Chem. Phys. 106, 1063 (1997)), "
            f"from ASE ase.collections.g2['{key}']"
        )
        out.append((name, symbols, positions, charge, spin, source, title))
    return out


def rdkit_molecules():
    import numpy as np
    from rdkit import Chem
    from rdkit.Chem import AllChem

    out = []
    for name, smiles, spin, title in RDKIT:
        mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
        params = AllChem.ETKDGv3()
        params.randomSeed = SEED
        params.numThreads = 1
        cids = list(AllChem.EmbedMultipleConfs(mol, numConfs=NCONF, params=params))
        if not cids:
            raise SystemExit(f"{name}: RDKit could not embed {smiles}")
        if not AllChem.MMFFHasAllMoleculeParams(mol):
            raise SystemExit(f"{name}: MMFF94 lacks parameters for {smiles}")
        results = AllChem.MMFFOptimizeMoleculeConfs(
            mol, numThreads=1, maxIters=20000, mmffVariant="MMFF94"
        )
        converged = [(e, cid) for cid, (status, e) in zip(cids, results) if status == 0]
        if not converged:
            raise SystemExit(f"{name}: no MMFF94 optimisation converged")
        _, best = min(converged, key=lambda t: (round(t[0], 6), t[1]))
        pos = np.array(mol.GetConformer(best).GetPositions(), dtype=np.float64)
        pos -= pos.mean(axis=0)
        symbols = [a.GetSymbol() for a in mol.GetAtoms()]
        charge = Chem.GetFormalCharge(mol)
        source = (
            f"{title}; RDKit ETKDGv3 + MMFF94 from SMILES {smiles} "
            f"(seed {SEED}, lowest of {NCONF} conformers)"
        )
        out.append((name, symbols, pos.tolist(), charge, spin, source, title))
    return out


def readme_text(molecules) -> str:
    rows = [
        "| file | molecule | formula (Hill) | atoms | charge | spin (2S) | source |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, symbols, _, charge, spin, source, title in molecules:
        src = "G2 (MP2(full)/6-31G(d)), ASE" if "G2" in source else "RDKit ETKDGv3 + MMFF94"
        rows.append(
            f"| `{name}.xyz` | {title} | {formula(symbols)} | {len(symbols)} | {charge} | "
            f"{spin} | {src} |"
        )
    return (
        "# Shipped molecules\n\n"
        "Geometries in Angstrom, one molecule per `.xyz` file. The comment line (second line) is\n"
        "`charge=Q spin=S <source>`, where spin is 2S = N_alpha - N_beta as in PySCF;\n"
        "`dftad.load` reads charge and spin from it. Load one by name: `dftad.load(\"water\")`.\n\n"
        "All files (and this README) are written by `scripts/make_molecules.py`; do not edit\n"
        "them by hand. Run it with `--check` to verify that the shipped files are reproduced\n"
        "exactly.\n\n"
        "Sources:\n\n"
        "- **G2**: MP2(full)/6-31G(d) optimised geometries of the G2-1/G2-2 sets (Curtiss,\n"
        "  Raghavachari, Redfern, Pople, J. Chem. Phys. 106, 1063 (1997)), as bundled with ASE\n"
        "  (`ase.data.g2_1`, `ase.data.g2_2`).\n"
        f"- **RDKit**: 3D structure from the SMILES string in the file's comment line: ETKDGv3\n"
        f"  embedding of {NCONF} conformers (random seed {SEED}), each optimised with MMFF94, the\n"
        "  lowest-energy one kept and centred on its centroid. These are force-field geometries,\n"
        "  good test inputs but not equilibrium structures of any DFT method.\n\n"
        + "\n".join(rows)
        + "\n"
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="compare instead of writing")
    ap.add_argument("--outdir", type=Path, default=OUTDIR)
    args = ap.parse_args(argv)

    molecules = g2_molecules() + rdkit_molecules()
    files = {
        f"{name}.xyz": xyz_text(symbols, pos, charge, spin, source)
        for name, symbols, pos, charge, spin, source, _ in molecules
    }
    files["README.md"] = readme_text(molecules)

    bad = 0
    args.outdir.mkdir(parents=True, exist_ok=True)
    for fname, text in files.items():
        path = args.outdir / fname
        if args.check:
            if not path.exists() or path.read_text() != text:
                print(f"differs: {path}")
                bad += 1
        else:
            path.write_text(text)
    print(f"{len(files)} files {'checked' if args.check else 'written'}, {bad} differ")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
