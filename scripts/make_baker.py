"""Write ``molecules/baker/``: the 30 starting geometries of Baker's optimization test set.

    python scripts/make_baker.py PATH/TO/hauser-group/datasets [--check]

Source: J. Baker, "Techniques for geometry optimization: a comparison of cartesian and natural
internal coordinates", J. Comput. Chem. 14, 1085-1100 (1993), as transcribed in the
hauser-group/datasets repository (``baker_optimization_set/NN.xyz``, commit 2c862b0, 2021), read
from a git clone of it (``git show``). That repository has no licence file; the geometries are
the published starting structures of the set. Each file's second line keeps the source's name
and the RHF/STO-3G energy the source lists for the molecule (its minimum, Hartree), after
``charge=0 spin=0`` (all 30 are neutral singlets).
"""

from __future__ import annotations

import argparse
import pathlib
import re
import subprocess
import sys

COMMIT = "2c862b0a62ec89236d4ae3ad9b3d49d586216e66"
OUT = pathlib.Path(__file__).resolve().parents[1] / "molecules" / "baker"

README = """# Baker's geometry optimization test set

The 30 starting geometries (Angstrom) of J. Baker, "Techniques for geometry optimization: a
comparison of cartesian and natural internal coordinates", J. Comput. Chem. 14, 1085-1100
(1993), as transcribed in https://github.com/hauser-group/datasets
(`baker_optimization_set/`, commit {commit}). That repository carries no licence file; the
geometries are the published starting structures of the set. The comment line of each file
keeps the source's name and the RHF/STO-3G energy it lists (Hartree). All molecules are
neutral singlets; the set is run at RHF/STO-3G (`python benchmarks/optimize.py --baker`).

Written by `scripts/make_baker.py`; do not edit by hand.

| file | molecule | atoms | E(RHF/STO-3G) listed by the source |
|---|---|---|---|
{rows}
"""


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def read(repo: str, number: int) -> str:
    path = f"{COMMIT}:baker_optimization_set/{number:02d}.xyz"
    return subprocess.run(["git", "-C", repo, "show", path], capture_output=True, text=True,
                          check=True).stdout


def convert(number: int, text: str) -> tuple[str, str]:
    lines = text.strip("\n").splitlines()
    natm = int(lines[0])
    *name_words, energy = lines[1].split()
    name = " ".join(name_words)
    float(energy)
    atoms = [line.split() for line in lines[2:2 + natm]]
    if len(atoms) != natm or any(len(a) != 4 for a in atoms):
        raise ValueError(f"malformed source file {number:02d}.xyz")
    body = "\n".join(f"{a[0]:<2s} {float(a[1]):15.9f} {float(a[2]):15.9f} {float(a[3]):15.9f}"
                     for a in atoms)
    comment = (f"charge=0 spin=0 {name}; Baker set no. {number} (J. Comput. Chem. 14, 1085 "
               f"(1993)), hauser-group/datasets baker_optimization_set/{number:02d}.xyz; "
               f"E(RHF/STO-3G) listed there {energy}")
    return f"{number:02d}_{slug(name)}.xyz", f"{natm}\n{comment}\n{body}\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("repo", help="a git clone of hauser-group/datasets")
    ap.add_argument("--check", action="store_true", help="compare instead of writing")
    args = ap.parse_args()
    files, rows = {}, []
    for number in range(1, 31):
        fname, content = convert(number, read(args.repo, number))
        files[fname] = content
        name = content.splitlines()[1].split(";")[0].removeprefix("charge=0 spin=0 ")
        energy = content.splitlines()[1].split()[-1]
        rows.append(f"| `{fname}` | {name} | {content.splitlines()[0]} | {energy} |")
    files["README.md"] = README.format(commit=COMMIT, rows="\n".join(rows))
    bad = 0
    OUT.mkdir(parents=True, exist_ok=True)
    for fname, content in files.items():
        path = OUT / fname
        if args.check:
            bad += not path.exists() or path.read_text() != content
        else:
            path.write_text(content)
    print(f"{len(files)} files {'checked' if args.check else 'written'}, {bad} differ")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
