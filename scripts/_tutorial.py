"""What the tutorial scripts share: where pictures go, atom colours, the plane of a molecule
for 2-D drawings, matplotlib without a display, and saving a figure."""

from __future__ import annotations

from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "images" / "tutorials"
"""Default folder of the pictures (``--out``)."""

COLORS = {"H": "0.85", "C": "0.3", "N": "tab:blue", "O": "tab:red", "F": "tab:green"}
"""Atom colours of the 2-D drawings."""


def plane_axes(coords):
    """Two orthonormal vectors spanning the plane that fits the atoms best (principal axes)."""
    _, _, vt = np.linalg.svd(coords - coords.mean(axis=0))
    return vt[:2]


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (files only, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path) -> None:
    """Lay out, write (120 dpi) and close ``fig``."""
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    pyplot().close(fig)
