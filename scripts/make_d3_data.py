"""Build dftad's DFT-D3 reference data (``dftad/data/d3/``) from the published sources.

Reads Grimme's D3 data as the simple-dftd3 project distributes it (LGPL-3.0-or-later) and the
covalent radii of mctc-lib (Apache-2.0), both straight from their git repositories, and writes

    dftad/data/d3/reference.npz     C6 reference table, reference coordination numbers, r4/r2
                                    expectation values, covalent and van der Waals radii (Bohr)
    dftad/data/d3/parameters.json   damping parameters per functional (D3(BJ) and D3(0)) and the
                                    functional names simple-dftd3 accepts for each entry

Usage (the paths are git directories or work trees; ``--rev`` picks a commit, default HEAD):

    python scripts/make_d3_data.py --simple-dftd3 PATH --mctc-lib PATH [--out dftad/data/d3]

Sources read, and what is taken from each:

    simple-dftd3  src/dftd3/reference.f90   number_of_references, reference_cn, the C6 table
                  src/dftd3/data/r4r2.f90   r4_over_r2 (<r^4>/<r^2>, PBE0 atomic values)
                  src/dftd3/data/vdwrad.f90 pairwise cutoff radii R0 (Angstrom) for zero damping
                  src/dftd3/param.f90       damping parameters per functional, as the library
                                            behind the ``dftd3`` package loads them, and the
                                            functional names it accepts (get_method_id)
                  assets/parameters.toml    DOIs of the parameters (values cross-checked)
    mctc-lib      src/mctc/data/covrad.f90  Pyykko-Atsumi covalent radii (Angstrom)
                  src/mctc/io/codata2018.f90 the constants that define Angstrom -> Bohr there

Derived quantities are computed here exactly as the sources define them, so that dftad and the
``dftd3`` package see the same numbers to the last bit: covalent radii scaled by 4/3 (D3's
choice) and converted to Bohr, r4r2 -> sqrt(0.5 * r4/r2 * sqrt(Z)), van der Waals radii in Bohr.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import tomllib
from pathlib import Path

import numpy as np

MAX_REF = 7
_NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eEdD][-+]?\d+)?(?=_wp\b)")


def _reader(path: str, rev: str):
    """``read(relpath) -> text`` for a git directory (bare or not) or a plain work tree."""
    root = Path(path)
    if (root / "src").is_dir():
        return lambda rel: (root / rel).read_text()

    def read(rel: str) -> str:
        return subprocess.run(["git", "-C", str(root), "show", f"{rev}:{rel}"], check=True,
                              capture_output=True, text=True).stdout

    return read


def _commit(path: str, rev: str) -> str:
    try:
        return subprocess.run(["git", "-C", path, "rev-parse", rev], check=True,
                              capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git directory)"


def _strip_comments(text: str) -> str:
    return "\n".join(line.split("!", 1)[0] for line in text.splitlines())


def _array_literal(text: str, start: str) -> str:
    """The text between the ``[`` that follows ``start`` and its matching ``]``."""
    i = text.index(start)
    i = text.index("[", i) + 1
    j = text.index("]", i)
    return text[i:j]


def _reals(body: str) -> list[float]:
    return [float(x.replace("d", "e").replace("D", "e")) for x in _NUMBER.findall(body)]


def parse_reference(text: str):
    """Reference counts (Z=1..max_elem), reference CNs (max_elem, 7) and the C6 table, shaped
    (npair, 7, 7): ``c6[pair, a, b]`` is C6 between reference a of the lighter and reference b
    of the heavier element of the pair (Fortran's column-major ``reference_c6(b, a, pair)``,
    which ``get_c6`` reads that way), pair = Zlight + Zheavy (Zheavy - 1) / 2 - 1 (0-based)."""
    text = _strip_comments(text)
    max_elem = int(re.search(r"max_elem\s*=\s*(\d+)", text).group(1))
    assert int(re.search(r"max_ref\s*=\s*(\d+)", text).group(1)) == MAX_REF
    nref = [int(x) for x in re.findall(r"\d+", _array_literal(text, "number_of_references("))]
    cnref = _reals(_array_literal(text, "reference_cn(max_ref, max_elem)"))
    assert len(nref) == max_elem and len(cnref) == MAX_REF * max_elem
    npair = max_elem * (max_elem + 1) // 2
    flat = np.zeros(MAX_REF * MAX_REF * npair)
    filled = 0
    for m in re.finditer(r"c6ab_view\((\d+):(\d+)\)\s*=\s*\[(.*?)\]", text, re.S):
        lo, hi = int(m.group(1)), int(m.group(2))
        values = _reals(m.group(3))
        assert lo == filled + 1 and len(values) == hi - lo + 1, (lo, hi, len(values))
        flat[lo - 1:hi] = values
        filled = hi
    assert filled == flat.size, (filled, flat.size)
    return (np.array(nref, dtype=np.int64), np.array(cnref).reshape(max_elem, MAX_REF),
            flat.reshape(npair, MAX_REF, MAX_REF))


def aatoau(codata: str) -> float:
    """Angstrom -> Bohr as mctc-lib defines it (CODATA 2018, Bohr radius = hbar / (me c alpha))."""
    def value(name):
        m = re.search(rf"\b{name}\s*=\s*([-+0-9.eE]+)_wp", codata, re.I)
        return float(m.group(1))

    hbar = value("Planck_constant") / (2.0 * math.pi)
    bohr = hbar / (value("electron_mass") * value("speed_of_light_in_vacuum")
                   * value("fine_structure_constant"))
    return 1.0 / (bohr * 1e10)


# the defaults of ``type :: d3_param`` in param.f90, which every entry there starts from
_D3_PARAM_DEFAULTS = {"s6": 1.0, "s8": 1.0, "rs6": 1.0, "rs8": 1.0, "a1": 0.4, "a2": 5.0}
_KEYS = {"bj": ("s6", "s8", "a1", "a2"), "zero": ("s6", "s8", "rs6", "rs8")}
_SUBROUTINE = {"bj": "get_rational_damping", "zero": "get_zero_damping"}


def method_aliases(param_f90: str) -> dict[str, str]:
    """Every name simple-dftd3's ``get_method_id`` accepts (lower case, dashes removed, as it
    compares them), mapped to the name of its entry (``p_<entry>_df``)."""
    aliases = {}
    for m in re.finditer(r'case\(("[^)]*")\);\s*id\s*=\s*p_(\w+)_df', param_f90):
        for name in re.findall(r'"([^"]+)"', m.group(1)):
            aliases[name] = m.group(2)
    return dict(sorted(aliases.items()))


def damping_parameters(param_f90: str, toml_text: str) -> dict:
    """``{"bj": {entry: {s6, s8, a1, a2}}, "zero": {entry: {s6, s8, rs6, rs8}}}`` as the
    library behind the ``dftd3`` package loads them (param.f90's get_rational_damping and
    get_zero_damping; s9 and alp are not set there and are left to dftad.dispersion.d3_params),
    with the DOI from parameters.toml where it gives one. Differences between param.f90 and
    parameters.toml are printed."""
    text = re.sub(r"&[ \t]*\n[ \t]*&?", " ", _strip_comments(param_f90))
    toml = tomllib.loads(toml_text)
    out = {}
    for damping, sub in _SUBROUTINE.items():
        body = re.search(rf"^subroutine {sub}\(.*?^end subroutine", text, re.S | re.M).group(0)
        table = {}
        for m in re.finditer(r"case\(([^)]*)\)\s*param\s*=\s*d3_param\(([^)]*)\)", body):
            given = {k: float(v) for k, v in re.findall(r"(\w+)\s*=\s*([-+0-9.eEdD]+)_wp",
                                                        m.group(2))}
            assert set(given) <= set(_KEYS[damping]), (damping, m.group(0))
            record = {k: given.get(k, _D3_PARAM_DEFAULTS[k]) for k in _KEYS[damping]}
            for entry in re.findall(r"p_(\w+)_df", m.group(1)):
                table[entry] = dict(record)
                published = toml["parameter"].get(entry, {}).get("d3", {}).get(damping, {})
                if "doi" in published:
                    table[entry]["doi"] = published["doi"]
                differ = {k for k in _KEYS[damping] if k in published
                          and float(published[k]) != record[k]}
                if differ or (published == {} and entry in toml["parameter"]):
                    print(f"note: {damping} {entry}: param.f90 {record} "
                          f"parameters.toml {published or 'no entry'}")
        out[damping] = dict(sorted(table.items()))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--simple-dftd3", required=True, help="git directory or work tree")
    ap.add_argument("--mctc-lib", required=True, help="git directory or work tree")
    ap.add_argument("--rev", default="HEAD", help="commit to read in both repositories")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "dftad/data/d3"))
    args = ap.parse_args(argv)
    d3 = _reader(args.simple_dftd3, args.rev)
    mctc = _reader(args.mctc_lib, args.rev)

    nref, cnref, c6 = parse_reference(d3("src/dftd3/reference.f90"))
    to_bohr = aatoau(mctc("src/mctc/io/codata2018.f90"))

    r4_over_r2 = np.array(_reals(_array_literal(_strip_comments(d3("src/dftd3/data/r4r2.f90")),
                                                "r4_over_r2(max_elem)")))
    z = np.arange(1, r4_over_r2.size + 1, dtype=np.float64)
    r4r2 = np.sqrt(0.5 * (r4_over_r2 * np.sqrt(z)))

    covrad = np.array(_reals(_array_literal(_strip_comments(mctc("src/mctc/data/covrad.f90")),
                                            "covalent_rad_2009(max_elem)")))
    rcov = 4.0 / 3.0 * (to_bohr * covrad)

    vdw = np.array(_reals(_array_literal(_strip_comments(d3("src/dftd3/data/vdwrad.f90")),
                                         "vdwrad(max_elem*(1+max_elem)/2)")))
    rvdw = to_bohr * vdw
    assert rvdw.size == c6.shape[0], (rvdw.size, c6.shape)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sources = {
        "simple-dftd3": _commit(args.simple_dftd3, args.rev),
        "mctc-lib": _commit(args.mctc_lib, args.rev),
    }
    np.savez_compressed(
        out / "reference.npz", nref=nref, cnref=cnref, c6=c6, r4r2=r4r2, rcov=rcov, rvdw=rvdw,
        sources=np.array(json.dumps(sources)))

    param_f90 = d3("src/dftd3/param.f90")
    params = damping_parameters(param_f90, d3("assets/parameters.toml"))
    params = {"source": f"simple-dftd3 {sources['simple-dftd3']} src/dftd3/param.f90",
              "aliases": method_aliases(param_f90), **params}
    (out / "parameters.json").write_text(json.dumps(params, indent=1, sort_keys=True) + "\n")
    print(f"max_elem {nref.size}, pairs {c6.shape[0]}, functionals bj {len(params['bj'])} "
          f"zero {len(params['zero'])}, aliases {len(params['aliases'])} -> {out}")


if __name__ == "__main__":
    main()
