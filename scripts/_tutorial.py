"""What the tutorial scripts share: their command-line options ``--out`` and ``--fast``, where
pictures go, 2-D drawings of a molecule in its best plane (atoms, arrows' view), matplotlib
without a display, and saving a figure."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from dftad.constants import BOHR_ANGSTROM

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "images" / "tutorials"
"""Default folder of the pictures (``--out``)."""

COLORS = {"H": "0.85", "C": "0.3", "N": "tab:blue", "O": "tab:red", "F": "tab:green"}
"""Atom colours of the 2-D drawings."""


def parser(doc: str, fast: str) -> argparse.ArgumentParser:
    """The tutorial's options (described by ``doc``'s first paragraph): ``--out``, the folder
    for the pictures, and ``--fast`` (``fast`` says what it runs); the script adds its own."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--out", default=str(OUT), help="folder for the pictures "
                   "(default: docs/images/tutorials)")
    p.add_argument("--fast", action="store_true", help=fast)
    return p


def plane_axes(coords):
    """Two orthonormal vectors spanning the plane that fits the atoms best (principal axes)."""
    _, _, vt = np.linalg.svd(coords - coords.mean(axis=0))
    return vt[:2]


def in_plane(coords):
    """(axes (2, 3), xy (natm, 2)): :func:`plane_axes` and the centred atoms in that plane, in
    Angstrom (``coords`` in Bohr)."""
    axes = plane_axes(coords)
    return axes, (coords - coords.mean(axis=0)) @ axes.T * BOHR_ANGSTROM


def draw_atoms(ax, xy, symbols, labels=None, size=900, offset=16, fontsize=9):
    """The atoms as coloured discs (hydrogen half the area ``size``), with ``labels`` above."""
    for i, ((x, y), s) in enumerate(zip(xy, symbols)):
        ax.scatter(x, y, s=size if s != "H" else size / 2, color=COLORS.get(s, "tab:purple"),
                   edgecolor="black", zorder=2)
        if labels is not None:
            ax.annotate(labels[i], (x, y), xytext=(0, offset), textcoords="offset points",
                        ha="center", fontsize=fontsize, zorder=3)


def fit_view(ax, *points):
    """Axis limits around all ``points`` (arrays (n, 2)) with a 0.5 margin, equal aspect."""
    ends = np.concatenate(points)
    ax.set_xlim(ends[:, 0].min() - 0.5, ends[:, 0].max() + 0.5)
    ax.set_ylim(ends[:, 1].min() - 0.5, ends[:, 1].max() + 0.5)
    ax.set_aspect("equal")


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
