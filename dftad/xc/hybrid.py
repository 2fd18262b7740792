"""Named functionals and PySCF-style functional strings.

``parse_xc`` turns a PySCF ``xc`` string into a :class:`~dftad.xc.functional.Functional`:

* a name of a complete functional: ``"b3lyp"``, ``"pbe0"``, ``"camb3lyp"``, ``"wb97x"``, ...
  (see :data:`NAMED`), with PySCF's meaning (e.g. ``"b3lyp"`` is libxc's HYB_GGA_XC_B3LYP, whose
  LDA correlation is VWN-RPA; ``"svwn"`` is Slater + VWN5);
* ``"X, C"`` with each part a sum of ``[coefficient*]NAME`` terms, NAME an exchange (in X) or a
  correlation (in C) name of :data:`X_ALIASES` / :data:`C_ALIASES`, ``HF`` (exact exchange), or
  ``RSH(omega, alpha, beta)`` (range-separated exact exchange in PySCF's convention), e.g.
  ``".2*HF + .08*LDA + .72*B88, .81*LYP + .19*VWN"``;
* a list of ``(component, weight)`` pairs with dftad component names (``"hf"`` for exact
  exchange), e.g. ``[("hf", 0.25), ("gga_x_pbe", 0.75), ("gga_c_pbe", 1.0)]``.
"""

from __future__ import annotations

import re

from .functional import COMPONENTS, Functional

# name -> (semilocal terms, alpha, beta, omega); exact exchange in PySCF's rsh_coeff convention
NAMED: dict[str, tuple] = {
    "hf": ((), 1.0, 0.0, 0.0),
    "lda": ((("lda_x", 1.0),), 0.0, 0.0, 0.0),
    "slater": ((("lda_x", 1.0),), 0.0, 0.0, 0.0),
    "svwn": ((("lda_x", 1.0), ("lda_c_vwn", 1.0)), 0.0, 0.0, 0.0),
    "blyp": ((("gga_x_b88", 1.0), ("gga_c_lyp", 1.0)), 0.0, 0.0, 0.0),
    "pbe": ((("gga_x_pbe", 1.0), ("gga_c_pbe", 1.0)), 0.0, 0.0, 0.0),
    "pw91": ((("gga_x_pw91", 1.0), ("gga_c_pw91", 1.0)), 0.0, 0.0, 0.0),
    "tpss": ((("mgga_x_tpss", 1.0), ("mgga_c_tpss", 1.0)), 0.0, 0.0, 0.0),
    "scan": ((("mgga_x_scan", 1.0), ("mgga_c_scan", 1.0)), 0.0, 0.0, 0.0),
    "r2scan": ((("mgga_x_r2scan", 1.0), ("mgga_c_r2scan", 1.0)), 0.0, 0.0, 0.0),
    # libxc HYB_GGA_XC_B3LYP (402): 0.08 Slater + 0.72 B88 + 0.19 VWN_RPA + 0.81 LYP + 0.2 HF
    "b3lyp": ((("lda_x", 0.08), ("gga_x_b88", 0.72), ("lda_c_vwn_rpa", 0.19),
               ("gga_c_lyp", 0.81)), 0.2, 0.0, 0.0),
    # libxc HYB_GGA_XC_B3LYP5 (475): the same with VWN5
    "b3lyp5": ((("lda_x", 0.08), ("gga_x_b88", 0.72), ("lda_c_vwn", 0.19),
                ("gga_c_lyp", 0.81)), 0.2, 0.0, 0.0),
    # libxc HYB_GGA_XC_PBEH (406)
    "pbe0": ((("gga_x_pbe", 0.75), ("gga_c_pbe", 1.0)), 0.25, 0.0, 0.0),
    "b97": ((("gga_xc_b97", 1.0),), 0.1943, 0.0, 0.0),
    "b97-1": ((("gga_xc_b97_1", 1.0),), 0.21, 0.0, 0.0),
    "b97-2": ((("gga_xc_b97_2", 1.0),), 0.21, 0.0, 0.0),
    # libxc HYB_GGA_XC_CAM_B3LYP (433): 0.35 B88 + 0.46 SR-B88(ITYH) + 0.19 VWN5 + 0.81 LYP
    "camb3lyp": ((("gga_x_b88", 0.35), ("gga_x_ityh", 0.46), ("lda_c_vwn", 0.19),
                  ("gga_c_lyp", 0.81)), 0.65, -0.46, 0.33),
    # libxc HYB_GGA_XC_WB97X (464)
    "wb97x": ((("gga_xc_wb97x", 1.0),), 1.0, -(1.0 - 0.157706), 0.3),
    # libxc HYB_GGA_XC_LC_WPBE (478): short-range wPBEh exchange + PBE correlation
    "lc_wpbe": ((("gga_x_wpbeh", 1.0), ("gga_c_pbe", 1.0)), 1.0, -1.0, 0.4),
}

_NAME_ALIASES = {
    "pbeh": "pbe0", "pbe1pbe": "pbe0", "lda,vwn": "svwn", "lda,vwn5": "svwn", "b88,lyp": "blyp",
    "b3lypg": "b3lyp", "b971": "b97-1", "b97_1": "b97-1", "b972": "b97-2", "b97_2": "b97-2",
    "cam-b3lyp": "camb3lyp", "cam_b3lyp": "camb3lyp", "wb97-x": "wb97x", "wb97_x": "wb97x",
    "lc-wpbe": "lc_wpbe", "lcwpbe": "lc_wpbe", "pbe,pbe": "pbe", "slater,": "lda", "lda,": "lda",
}

X_ALIASES = {
    "lda": "lda_x", "slater": "lda_x", "b88": "gga_x_b88", "pbe": "gga_x_pbe",
    "pw91": "gga_x_pw91", "ityh": "gga_x_ityh", "wpbeh": "gga_x_wpbeh", "tpss": "mgga_x_tpss",
    "scan": "mgga_x_scan", "r2scan": "mgga_x_r2scan",
}
"""Exchange names accepted in the X part of a functional string (besides the component names of
:data:`~dftad.xc.functional.COMPONENTS`, accepted in either part)."""

C_ALIASES = {
    "vwn": "lda_c_vwn", "vwn5": "lda_c_vwn", "vwn3": "lda_c_vwn_rpa", "vwnrpa": "lda_c_vwn_rpa",
    "vwn_rpa": "lda_c_vwn_rpa", "pw": "lda_c_pw", "pw92": "lda_c_pw", "pw_mod": "lda_c_pw_mod",
    "pwmod": "lda_c_pw_mod", "pbe": "gga_c_pbe", "pw91": "gga_c_pw91", "lyp": "gga_c_lyp",
    "tpss": "mgga_c_tpss", "scan": "mgga_c_scan", "r2scan": "mgga_c_r2scan",
}
"""Correlation names accepted in the C part of a functional string (besides the component
names)."""

_TERM = re.compile(r"^(?:([0-9.eE+-]+)\*)?(.+)$")
_RSH = re.compile(r"^rsh\(([^,]+),([^,]+),([^)]+)\)$")


def _normalise(s: str) -> str:
    s = s.strip().lower().replace(" ", "")
    return s[3:] if s.startswith("xc_") else s


def _split_terms(part: str):
    """'.2*hf+.08*lda-0.5*b88' -> [(0.2, 'hf'), (0.08, 'lda'), (-0.5, 'b88')]."""
    terms, buf, depth = [], "", 0
    for ch in part:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        # a sign starts a new term unless it belongs to an exponent (1e-3) or is leading
        exponent = buf[-1:] in ("e", "E") and buf[:-1].replace(".", "").isdigit()
        if ch in "+-" and depth == 0 and buf and not exponent:
            terms.append(buf)
            buf = "-" if ch == "-" else ""
            continue
        buf += ch
    if buf:
        terms.append(buf)
    out = []
    for t in terms:
        sign = -1.0 if t.startswith("-") else 1.0
        t = t.lstrip("+-")
        m = _TERM.match(t)
        coef = float(m.group(1)) if m.group(1) else 1.0
        out.append((sign * coef, m.group(2)))
    return out


def _parse_part(part: str, aliases: dict, terms: list, exx: dict):
    for coef, name in _split_terms(part):
        m = _RSH.match(name)
        if m:
            exx["omega"], exx["alpha"], exx["beta"] = (float(g) for g in m.groups())
            exx["rsh"] = True
        elif name == "hf":
            exx["hf"] += coef
        elif name in aliases:
            terms.append((aliases[name], coef))
        elif name in COMPONENTS:
            terms.append((name, coef))
        else:
            raise KeyError(f"unknown functional term {name!r} in {part!r}")


def _default_omega(terms) -> float:
    """The largest default omega of the short-range components among ``terms`` (0 if none)."""
    return max((COMPONENTS[c].omega for c, _ in terms
                if c in COMPONENTS and COMPONENTS[c].uses_omega), default=0.0)


def parse_xc(xc) -> Functional:
    """Functional from a PySCF ``xc`` string or a list of ``(component, weight)`` pairs.

    Exact exchange: ``hf`` terms give a global fraction (alpha = sum of HF coefficients, beta = 0);
    ``RSH(omega, alpha, beta)`` sets PySCF's range-separated coefficients; without RSH a
    short-range semilocal component sets omega to its default (``Component.omega``).
    """
    if isinstance(xc, Functional):
        return xc
    if not isinstance(xc, str):
        terms, hf = [], 0.0
        for comp, w in xc:
            if str(comp).lower() == "hf":
                hf += float(w)
            else:
                terms.append((comp, float(w)))
        omega = _default_omega(terms)
        return Functional.from_components(terms, alpha=hf, omega=omega)
    key = _normalise(xc)
    key = _NAME_ALIASES.get(key, key)
    if key in NAMED:
        terms, alpha, beta, omega = NAMED[key]
        return Functional.from_components(terms, alpha, beta, omega, name=key)
    depth, split = 0, -1
    for i, ch in enumerate(key):  # the X, C separator is the first comma outside parentheses
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            split = i
            break
    if split >= 0:
        xpart, cpart = key[:split], key[split + 1:]
        named = _NAME_ALIASES.get(xpart, xpart)
        if not cpart and xpart not in X_ALIASES and named in NAMED:  # "b3lyp," as in PySCF
            terms, alpha, beta, omega = NAMED[named]
            return Functional.from_components(terms, alpha, beta, omega, name=named)
    elif key in X_ALIASES or key in COMPONENTS:
        xpart, cpart = key, ""
    else:
        raise KeyError(f"unknown functional {xc!r}; named: {sorted(NAMED)}")
    terms: list = []
    exx = {"hf": 0.0, "rsh": False}
    if xpart:
        _parse_part(xpart, X_ALIASES, terms, exx)
    if cpart:
        _parse_part(cpart, C_ALIASES, terms, exx)
    if exx["rsh"]:
        alpha, beta, omega = exx["alpha"], exx["beta"], exx["omega"]
    else:
        alpha, beta = exx["hf"], 0.0
        omega = _default_omega(terms)
    return Functional.from_components(terms, alpha, beta, omega, name=xc.strip())
