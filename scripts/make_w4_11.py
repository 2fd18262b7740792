"""Write ``molecules/w4-11/``: the small H/C/N/O/F molecules of the W4-11 atomization energies.

How to run (from the repository root; nothing is downloaded, the data are read with ``git show``
from a local clone, bare or not, of https://github.com/grimme-lab/GMTKN55 that holds ``COMMIT``)::

    python scripts/make_w4_11.py --source PATH/TO/GMTKN55           # (re)write molecules/w4-11/
    python scripts/make_w4_11.py --source PATH/TO/GMTKN55 --check   # exit 1 if a file differs

Source: the W4-11 subset of the GMTKN55 database (L. Goerigk, A. Hansen, C. Bauer, S. Ehrlich,
A. Najibi, S. Grimme, Phys. Chem. Chem. Phys. 19, 32184 (2017), doi:10.1039/C7CP04913G),
licensed CC-BY-4.0, folder ``W4-11/`` at ``COMMIT``. W4-11 itself: A. Karton, S. Daon,
J. M. L. Martin, Chem. Phys. Lett. 510, 165 (2011), doi:10.1016/j.cplett.2011.05.007. Its 140
reference values are nonrelativistic, clamped-nucleus total atomization energies without zero-point
energy at the W4 level (kcal/mol).

Selection: every reaction (atomization energy) of ``W4-11/.res`` whose molecule contains only H,
C, N, O, F and at most ``MAX_HEAVY`` non-hydrogen atoms, plus every species those reactions need
(the free atoms).

Written files (all of ``molecules/w4-11/``):

* ``species/<name>.xyz``: one per species, the geometry of GMTKN55's ``coord`` file (Turbomole
  format, Bohr) converted to Angstrom with ``dftad.constants.BOHR_ANGSTROM`` (so ``dftad.load``
  gives back the source's Bohr coordinates up to the 1e-10 Angstrom rounding), ``DECIMALS``
  decimals; comment line ``charge=Q spin=S W4-11 <name> (GMTKN55)`` with Q from ``.CHRG`` and
  spin = 2S = number of unpaired electrons from ``.UHF`` (0 where the file is absent).
* ``reactions.res``: the selected lines of ``W4-11/.res``, verbatim, after ``#`` header lines.
* ``split.txt``: a fixed train/validation/test split of the reactions (see :func:`split`).
* ``README.md`` and ``LICENSE`` (CC-BY-4.0 attribution).

The output is deterministic; ``--check`` compares instead of writing (and reports stray files in
``species/``).
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from dftad.constants import BOHR_ANGSTROM, ELEMENTS  # noqa: E402 (needs ROOT on sys.path)

OUTDIR = ROOT / "molecules" / "w4-11"
REPO_URL = "https://github.com/grimme-lab/GMTKN55"
COMMIT = "ab515efb12867df2253d53b08fde3f551d5ecd9d"  # main, 2025-06-11
SUBSET = "W4-11"

ALLOWED = ("H", "C", "N", "O", "F")
MAX_HEAVY = 4
DECIMALS = 10

SEED = 20250611
FRACTIONS = (("train", 0.6), ("validation", 0.2), ("test", 0.2))

CITE_GMTKN55 = (
    "L. Goerigk, A. Hansen, C. Bauer, S. Ehrlich, A. Najibi, S. Grimme, \"A look at the density "
    "functional theory zoo with the advanced GMTKN55 database for general main group "
    "thermochemistry, kinetics and noncovalent interactions\", Phys. Chem. Chem. Phys. 19, "
    "32184-32215 (2017), doi:10.1039/C7CP04913G"
)
CITE_W411 = (
    "A. Karton, S. Daon, J. M. L. Martin, \"W4-11: A high-confidence benchmark dataset for "
    "computational thermochemistry derived from first-principles W4 data\", Chem. Phys. Lett. "
    "510, 165-178 (2011), doi:10.1016/j.cplett.2011.05.007"
)


# ---------------------------------------------------------------------- reading the source
class Source:
    """Files of ``SUBSET`` at ``COMMIT`` in a local GMTKN55 git repository."""

    def __init__(self, path: Path):
        self.path = str(path)
        try:
            self._git("cat-file", "-e", f"{COMMIT}^{{commit}}")
        except subprocess.CalledProcessError:
            raise SystemExit(f"{path}: not a git repository holding commit {COMMIT}") from None

    def _git(self, *args: str) -> str:
        return subprocess.run(["git", "-C", self.path, *args], capture_output=True, text=True,
                              check=True).stdout

    def listdir(self, folder: str) -> list[str]:
        out = self._git("ls-tree", "--name-only", f"{COMMIT}:{SUBSET}/{folder}".rstrip("/"))
        return out.split()

    def read(self, path: str) -> str:
        return self._git("show", f"{COMMIT}:{SUBSET}/{path}")


def parse_reaction(line: str) -> tuple[list[str], list[int], float]:
    """Species, coefficients and reference value (kcal/mol) of one ``$tmer`` line of a .res file.

    The syntax is ``$tmer {a,b,c}/$f  x c_a c_b c_c $w REF``; species may also be given one per
    token (``a/$f b/$f``).
    """
    tokens = line.split()
    if tokens[0] != "$tmer" or "x" not in tokens or "$w" not in tokens:
        raise SystemExit(f"unexpected .res line: {line!r}")
    ix, iw = tokens.index("x"), tokens.index("$w")
    names = []
    for token in tokens[1:ix]:
        m = re.fullmatch(r"\{([^{}]+)\}/\$f", token) or re.fullmatch(r"([^{}/$]+)/\$f", token)
        if not m:
            raise SystemExit(f"unexpected species token {token!r} in {line!r}")
        names += m.group(1).split(",")
    coeffs = [int(t) for t in tokens[ix + 1:iw]]
    if len(coeffs) != len(names) or len(tokens) != iw + 2:
        raise SystemExit(f"malformed .res line: {line!r}")
    return names, coeffs, float(tokens[iw + 1])


def parse_coord(text: str, name: str) -> tuple[list[str], list[list[float]], int | None]:
    """Symbols, Bohr coordinates and the ``$eht unpaired=`` count (if any) of a coord file."""
    symbols, coords, unpaired, block = [], [], None, None
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        if fields[0].startswith("$"):
            block = fields[0]
            if block == "$coord" and len(fields) > 1:
                raise SystemExit(f"{name}: coord block with options {line!r} (expected Bohr)")
            if block == "$eht":
                m = re.search(r"unpaired=(\d+)", line)
                unpaired = int(m.group(1)) if m else None
            continue
        if block != "$coord":
            continue
        if len(fields) != 4:
            raise SystemExit(f"{name}: malformed coord line {line!r}")
        symbol = fields[3].capitalize()
        if symbol not in ELEMENTS[1:]:
            raise SystemExit(f"{name}: unknown element {fields[3]!r}")
        symbols.append(symbol)
        coords.append([float(x) for x in fields[:3]])
    if not symbols:
        raise SystemExit(f"{name}: no atoms in coord file")
    return symbols, coords, unpaired


def read_species(src: Source, name: str) -> dict:
    files = src.listdir(name)
    if "coord" not in files:
        raise SystemExit(f"{SUBSET}/{name}: no coord file")
    symbols, coords, unpaired = parse_coord(src.read(f"{name}/coord"), name)
    charge = int(src.read(f"{name}/.CHRG")) if ".CHRG" in files else 0
    spin = int(src.read(f"{name}/.UHF")) if ".UHF" in files else 0
    if unpaired is not None and unpaired != spin:
        raise SystemExit(f"{name}: .UHF says {spin} unpaired electrons, coord says {unpaired}")
    nelec = sum(ELEMENTS.index(s) for s in symbols) - charge
    if nelec <= 0 or spin > nelec or (nelec - spin) % 2:
        raise SystemExit(f"{name}: impossible charge={charge} spin={spin} for {symbols}")
    return {"name": name, "symbols": symbols, "coords": coords, "charge": charge, "spin": spin}


def counts(symbols) -> dict[str, int]:
    out = {}
    for s in symbols:
        out[s] = out.get(s, 0) + 1
    return out


def select(src: Source):
    """The selected reactions (with their .res line) and the species they need."""
    lines = [ln.rstrip() for ln in src.read(".res").splitlines() if ln.startswith("$tmer")]
    cache = {}

    def species(name):
        if name not in cache:
            cache[name] = read_species(src, name)
        return cache[name]

    reactions = []
    for line in lines:
        names, coeffs, ref = parse_reaction(line)
        mol = species(names[0])
        elements = counts(mol["symbols"])
        heavy = sum(n for s, n in elements.items() if s != "H")
        if not set(elements) <= set(ALLOWED) or heavy > MAX_HEAVY:
            continue
        # an atomization energy: -1 molecule + sum_k n_k atom_k, n_k = number of atoms k in it
        atoms = {}
        for name, c in zip(names[1:], coeffs[1:]):
            sym = species(name)["symbols"]
            if len(sym) != 1 or sym[0] in atoms:
                raise SystemExit(f"{line!r}: {name} is not a distinct free atom")
            atoms[sym[0]] = c
        if coeffs[0] != -1 or atoms != elements:
            raise SystemExit(f"{line!r}: not the atomization of {names[0]} ({elements})")
        reactions.append({"line": line, "names": names, "ref": ref, "mol": mol, "heavy": heavy})
    if len({r["names"][0] for r in reactions}) != len(reactions):
        raise SystemExit("a molecule appears in two reactions")
    needed = sorted({n for r in reactions for n in r["names"]})
    return reactions, [cache[n] for n in needed], len(lines)


# ---------------------------------------------------------------------- writing
def _fmt(x: float) -> str:
    v = round(x * BOHR_ANGSTROM, DECIMALS)
    if v == 0.0:  # no "-0.0000000000"
        v = 0.0
    return f"{v:16.{DECIMALS}f}"


def xyz_text(sp: dict) -> str:
    lines = [str(len(sp["symbols"])),
             f"charge={sp['charge']} spin={sp['spin']} {SUBSET} {sp['name']} (GMTKN55)"]
    for s, p in zip(sp["symbols"], sp["coords"]):
        lines.append(f"{s:<2s}" + "".join(_fmt(c) for c in p))
    return "\n".join(lines) + "\n"


def formula(symbols) -> str:
    """Hill formula (C, H first, then alphabetical)."""
    n = counts(symbols)
    first = [s for s in ("C", "H") if s in n] if "C" in n else []
    order = first + sorted(s for s in n if s not in first)
    return "".join(f"{s}{n[s] if n[s] > 1 else ''}" for s in order)


def split(names: list[str]) -> dict[str, str]:
    """A fixed split: names ordered by SHA-256 of ``"<SEED>:<name>"``, the first 60% train, the
    next 20% validation, the rest test (counts rounded). Depends on nothing but the names."""
    order = sorted(names, key=lambda n: hashlib.sha256(f"{SEED}:{n}".encode()).hexdigest())
    out, start = {}, 0
    for i, (label, frac) in enumerate(FRACTIONS):
        stop = len(order) if i == len(FRACTIONS) - 1 else start + round(frac * len(order))
        out.update(dict.fromkeys(order[start:stop], label))
        start = stop
    return out


def wrap(text: str, prefix: str) -> str:
    """``text`` wrapped to 96 columns, the first line after ``prefix``, the others aligned with it
    (a ``#`` of ``prefix`` is repeated, a ``-`` is not)."""
    indent = prefix.replace("-", " ")
    indent = indent if indent.strip() else " " * len(prefix)
    return textwrap.fill(text, 96, initial_indent=prefix, subsequent_indent=indent)


def res_text(reactions, ntotal: int) -> str:
    head = f"""\
# W4-11 total atomization energies (kcal/mol): the {len(reactions)} of {ntotal} reactions whose
# molecule contains only {", ".join(ALLOWED)} and at most {MAX_HEAVY} non-hydrogen atoms.
# Reference values: W4, nonrelativistic, clamped nuclei, without zero-point energy.
#
# The reaction lines below are copied verbatim from {SUBSET}/.res of GMTKN55
# ({REPO_URL}),
# commit {COMMIT}. One reaction per line:
#   $tmer {{mol,atom1,atom2,...}}/$f  x c_mol c_atom1 c_atom2 ... $w REF
# {{mol,atom1,...}}/$f  the species (shell brace expansion; $f is the method folder in GMTKN55),
#                     each one file species/<name>.xyz in this folder
# x                   separator between species and coefficients
# c_mol c_atom1 ...   integer stoichiometric coefficients, same order as the species
#                     (-1 for the molecule, +n for an atom occurring n times in it)
# $w                  placeholder for the energy-format argument of GMTKN55's evaluation script
# REF                 reference value of sum_i c_i E_i in kcal/mol, here
#                     E(atoms) - E(molecule) = the total atomization energy (> 0)
# Tokens are separated by white space. Fixed split: split.txt. Details: README.md.
#
# Licence: CC-BY-4.0 (see LICENSE). Please cite:
{wrap(CITE_GMTKN55, "#   ")}
{wrap(CITE_W411, "#   ")}
# Written by scripts/make_w4_11.py (do not edit by hand).
"""
    return head + "\n".join(r["line"] for r in reactions) + "\n"


def split_text(reactions, labels: dict[str, str]) -> str:
    n = {lab: sum(v == lab for v in labels.values()) for lab, _ in FRACTIONS}
    pct = [round(100 * frac) for _, frac in FRACTIONS]
    head = f"""\
# Fixed train/validation/test split of the {len(reactions)} reactions of reactions.res, one line per
# reaction, same order: <molecule name> <train|validation|test>.
# Made by scripts/make_w4_11.py: the molecule names ordered by the SHA-256 hex digest of
# "{SEED}:<name>", the first {pct[0]}% train, the next {pct[1]}% validation, the rest test
# (counts rounded): {n["train"]} train, {n["validation"]} validation, {n["test"]} test.
"""
    return head + "".join(f"{r['names'][0]} {labels[r['names'][0]]}\n" for r in reactions)


def readme_text(reactions, species, labels, ntotal: int) -> str:
    n = {lab: sum(v == lab for v in labels.values()) for lab, _ in FRACTIONS}
    open_shell = [sp for sp in species if sp["spin"]]
    atoms = [sp["name"] for sp in species if len(sp["symbols"]) == 1]
    rows = [
        "| # | molecule | formula | heavy atoms | spin (2S) | TAE (kcal/mol) | split |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(reactions, 1):
        mol = r["mol"]
        rows.append(f"| {i} | `{mol['name']}` | {formula(mol['symbols'])} | {r['heavy']} | "
                    f"{mol['spin']} | {r['ref']:.3f} | {labels[mol['name']]} |")
    shells = ", ".join(f"`{sp['name']}` ({sp['spin']})" for sp in open_shell)
    charged = [f"`{sp['name']}` ({sp['charge']:+d})" for sp in species if sp["charge"]]
    selection = wrap(
        f"From the {ntotal} reactions of GMTKN55's `{SUBSET}/.res`: every reaction whose molecule "
        f"contains only {', '.join(ALLOWED)} and at most {MAX_HEAVY} non-hydrogen atoms, plus "
        f"every species those reactions need (the free atoms "
        f"{', '.join(f'`{a}`' for a in atoms)}). That gives **{len(reactions)} reactions** and "
        f"**{len(species)} species** ({len(species) - len(atoms)} molecules, {len(atoms)} "
        f"atoms). " + (f"Charged species: {', '.join(charged)}. " if charged else
                       "All species are neutral. ")
        + "Open-shell species (2S = number of unpaired electrons, from GMTKN55's `.UHF` "
        f"files): {shells}; all others are closed-shell singlets.", "")
    source = wrap(
        f"Source: {REPO_URL}, commit `{COMMIT}` (2025-06-11), folder `{SUBSET}/` (`.res`, and "
        "`coord`, `.CHRG`, `.UHF` of each species). The W4-11 reaction lines and geometries "
        "there are unchanged since the repository's first commit (2021) apart from a "
        "reformatting of the coord files (2025-04-29; coordinates changed by less than "
        "1e-13 Bohr).", "- ")
    return f"""\
# W4-11 atomization energies, small H/C/N/O/F molecules (from GMTKN55)

Total atomization energies (TAE) of {len(reactions)} small molecules from the W4-11 set of
Karton, Daon and Martin, as distributed in the GMTKN55 database: **nonrelativistic,
clamped-nucleus total atomization energies without zero-point vibrational energy, at the W4
level** (kcal/mol), i.e. electronic energies, directly comparable to E(atoms) - E(molecule)
from an electronic-structure calculation at the given geometries (those of GMTKN55's W4-11
folder).

## Selection

{selection}

## Files

- `species/<name>.xyz`: one geometry per species, in Angstrom, `<name>` being GMTKN55's folder
  name. Line 1 the atom count, line 2 `charge=Q spin=S W4-11 <name> (GMTKN55)` with
  spin = 2S = N_alpha - N_beta (PySCF's convention, read by `dftad.load`), then
  `Symbol x y z` lines with {DECIMALS} decimals. Converted from GMTKN55's Turbomole `coord`
  files (Bohr) with dftad's own Bohr radius, `dftad.constants.BOHR_ANGSTROM` =
  {BOHR_ANGSTROM} Angstrom (CODATA 2010, as PySCF), so `dftad.load` returns the source's Bohr
  coordinates to within the 1e-10 Angstrom rounding. (GMTKN55's own `struc.xyz` files use
  CODATA 2018, 0.529177210903 Angstrom; the two factors differ by 1.7e-11 Angstrom per Bohr, so
  some coordinates here differ from `struc.xyz` in the last decimal, by about 1e-10 Angstrom.)
- `reactions.res`: the {len(reactions)} selected reaction lines copied verbatim from GMTKN55's
  `{SUBSET}/.res`, one per line, after `#` comment lines explaining the syntax:
  `$tmer {{mol,atom1,...}}/$f  x -1 n1 ... $w REF`, i.e. species, the `x` separator, the
  stoichiometric coefficients in the same order (-1 for the molecule, +n for each atom), the
  `$w` placeholder and the reference value REF = sum_i c_i E_i (kcal/mol) = the TAE.
- `split.txt`: a fixed split, one line `<molecule name> <train|validation|test>` per reaction
  (same order as `reactions.res`): names ordered by the SHA-256 digest of `"{SEED}:<name>"`,
  the first 60% train, the next 20% validation, the rest test: **{n["train"]} train,
  {n["validation"]} validation, {n["test"]} test**.
- `LICENSE`: the licence (CC-BY-4.0) and attribution.

Example:

```python
import dftad
mol = dftad.load("molecules/w4-11/species/ch4.xyz")   # Molecule(H4C, charge=0, spin=0)
```

## Source, licence, citation

{source}
- Licence: **CC-BY-4.0** (https://creativecommons.org/licenses/by/4.0/), the licence of the
  GMTKN55 data as stated in the `LICENSE` file of the GMTKN55 repository (added in September
  2025, after the commit used here; GMTKN55 issue #6). Changes made here: subset selection,
  Bohr to Angstrom conversion, xyz format, train/validation/test split. See `LICENSE`.
- Please cite both:
{wrap(CITE_GMTKN55 + ".", "  - ")}
{wrap(CITE_W411 + ".", "  - ")}

## Regenerating

All files in this folder are written by `scripts/make_w4_11.py`; do not edit them by hand.
It downloads nothing: it reads commit `{COMMIT[:12]}` of a local clone of GMTKN55.

```bash
git clone {REPO_URL} /tmp/GMTKN55
python scripts/make_w4_11.py --source /tmp/GMTKN55           # (re)write molecules/w4-11/
python scripts/make_w4_11.py --source /tmp/GMTKN55 --check   # exit 1 if a file differs
```

## Reactions

{chr(10).join(rows)}
"""


def license_text() -> str:
    return f"""\
The files in this folder (molecules/w4-11/) are an adapted subset of the GMTKN55 database,
(c) 2017 Lars Goerigk, Andreas Hansen, Christoph Bauer, Stephan Ehrlich, Asim Najibi,
Stefan Grimme, and co-authors, licensed under the Creative Commons Attribution 4.0
International License (CC-BY-4.0), and are distributed under the same licence:
https://creativecommons.org/licenses/by/4.0/ (legal code:
https://creativecommons.org/licenses/by/4.0/legalcode).

Source: {REPO_URL}, folder {SUBSET}/,
commit {COMMIT}.

Changes made: selection of the reactions of W4-11 whose molecule contains only H, C, N, O, F
and at most {MAX_HEAVY} non-hydrogen atoms and of the species they need; geometries converted
from Turbomole coord files (Bohr) to xyz files (Angstrom); reaction lines copied with added
comment lines; a train/validation/test split and a README added.

Attribution (please cite):
{wrap(CITE_GMTKN55 + ".", "  ")}
The W4-11 reference data:
{wrap(CITE_W411 + ".", "  ")}
"""


def build(src: Source) -> dict[str, str]:
    reactions, species, ntotal = select(src)
    labels = split([r["names"][0] for r in reactions])
    files = {f"species/{sp['name']}.xyz": xyz_text(sp) for sp in species}
    files["reactions.res"] = res_text(reactions, ntotal)
    files["split.txt"] = split_text(reactions, labels)
    files["README.md"] = readme_text(reactions, species, labels, ntotal)
    files["LICENSE"] = license_text()
    return files


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source", type=Path, required=True,
                    help="local git clone (bare or not) of grimme-lab/GMTKN55 holding COMMIT")
    ap.add_argument("--check", action="store_true", help="compare instead of writing")
    ap.add_argument("--outdir", type=Path, default=OUTDIR)
    args = ap.parse_args(argv)

    files = build(Source(args.source))
    bad = 0
    if args.check:
        for fname, text in files.items():
            path = args.outdir / fname
            if not path.exists() or path.read_text() != text:
                print(f"differs: {path}")
                bad += 1
        for path in sorted((args.outdir / "species").glob("*")):
            if f"species/{path.name}" not in files:
                print(f"not written by this script: {path}")
                bad += 1
    else:
        (args.outdir / "species").mkdir(parents=True, exist_ok=True)
        for fname, text in files.items():
            (args.outdir / fname).write_text(text)
    print(f"{len(files)} files {'checked' if args.check else 'written'}, {bad} differ")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
