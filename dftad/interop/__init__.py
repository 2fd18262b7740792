"""Bridges to other codes: :mod:`dftad.interop.pyscf` (molecules and SCF results both ways)."""
