"""Pictures of results (matplotlib, an optional dependency: ``pip install 'dftad[plot]'``)."""

from __future__ import annotations

import numpy as np


def require_matplotlib() -> None:
    """Raise ``ValueError`` with the install command when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ValueError("plotting needs matplotlib: pip install 'dftad[plot]'") from None


def ir_spectrum(freqs, intensities, path, fwhm=20.0, title=""):
    """Lorentzian-broadened IR spectrum (absorbance in km/mol per cm-1) with stick bands, from
    harmonic frequencies (cm-1; imaginary ones, negative, are left out) and intensities
    (km/mol), written to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    freqs, intensities = np.asarray(freqs), np.asarray(intensities)
    real = freqs > 0
    x = np.linspace(0.0, max(4000.0, freqs.max() + 200.0), 4000)
    g = fwhm / 2.0
    y = np.sum(intensities[real, None] * (g / np.pi)
               / ((x[None, :] - freqs[real, None]) ** 2 + g**2), axis=0)
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot(x, y, color="black", lw=1.2)
    ax.vlines(freqs[real], 0, intensities[real] / (np.pi * g), color="tab:red", lw=1,
              label="harmonic modes")
    ax.set_xlim(x.max(), x.min())  # wavenumbers decrease to the right, as chemists draw them
    ax.set_xlabel("wavenumber (cm$^{-1}$)")
    ax.set_ylabel("absorbance (km mol$^{-1}$ / cm$^{-1}$)")
    ax.set_title(f"IR spectrum {title}  (Lorentzian FWHM {fwhm:g} cm$^{{-1}}$)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)
