"""Volume correction to the 20 °C standard volume (标准体积), the platform's own implementation.

    VCF = exp(−α·ΔT·(1 + 0.8·α·ΔT)),  ΔT = T − 20 °C,  α = (K0 + K1·ρ) / ρ²

ρ is the product density at 20 °C (kg/m³); K0/K1 by density band (API MPMS 11.1 as cited
in the domain brief §3): below 788 kg/m³ (petrol) 346.4228/0.4388, 788–839 kg/m³
594.5418/0, above 839 kg/m³ 186.9696/0.4862. Densities are typical values per grade
and can be overridden (`--densities`), since a platform only knows the grade.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

DEFAULT_DENSITY_20C: dict[str, float] = {
    "89": 725.0, "92": 725.0, "95": 737.0, "98": 745.0,  # petrol (汽油)
    "0": 835.0, "-10": 830.0, "-20": 825.0, "-35": 815.0,  # diesel (柴油)
}

_BANDS = ((788.0, 346.4228, 0.4388), (839.0, 594.5418, 0.0), (math.inf, 186.9696, 0.4862))


def expansion_coefficient(density_20c: float) -> float:
    """α (1/°C) for a product of this density at 20 °C."""
    if not (math.isfinite(density_20c) and 500.0 <= density_20c <= 1100.0):
        raise ValueError(f"density {density_20c!r} kg/m³ is not a liquid fuel density "
                         "(expected 500..1100)")
    k0, k1 = next((k0, k1) for upper, k0, k1 in _BANDS if density_20c < upper)
    return (k0 + k1 * density_20c) / (density_20c * density_20c)


def vcf(density_20c: float, temperature_c: float) -> float:
    a = expansion_coefficient(density_20c)
    dt = temperature_c - 20.0
    return math.exp(-a * dt * (1.0 + 0.8 * a * dt))


class Vcf:
    """VCF by grade; densities per grade overridable."""

    def __init__(self, densities: Mapping[str, float] | None = None) -> None:
        self.densities = dict(DEFAULT_DENSITY_20C)
        self.densities.update(densities or {})
        for grade, rho in self.densities.items():
            expansion_coefficient(rho)  # validate early, naming the value
            if not grade:
                raise ValueError("empty grade in densities")

    def factor(self, grade: str, temperature_c: float) -> float:
        try:
            rho = self.densities[grade]
        except KeyError:
            raise ValueError(f"no density for grade {grade!r}; known: "
                             f"{sorted(self.densities)}") from None
        return vcf(rho, temperature_c)

    def to_20c_ml(self, grade: str, volume_ml: float, temperature_mc: float) -> float:
        return volume_ml * self.factor(grade, temperature_mc / 1000.0)


def parse_densities(text: str) -> dict[str, float]:
    """`92=725,95=737,0=835` → {"92": 725.0, …} (for the CLI)."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        grade, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"--densities {part!r}: expected grade=kg_per_m3, e.g. 92=725")
        try:
            out[grade.strip()] = float(value)
        except ValueError:
            raise ValueError(f"--densities {part!r}: density must be a number") from None
        expansion_coefficient(out[grade.strip()])
    return out
