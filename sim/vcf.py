"""Volume correction factor (VCF) to the 20 °C standard volume (标准体积).

    VCF(T) = exp(−α·ΔT·(1 + 0.8·α·ΔT)),  ΔT = T − 20 °C,  α = (K0 + K1·ρ)/ρ²

with ρ the density at 20 °C (kg/m³) and K0/K1 from the API MPMS 11.1 product bands
(domain.md §3): petrol below 788 kg/m³, the 788–839 band, and heavier (diesel/fuel oil).
The API "transition zone" between petrol and jet fuel is not modelled; no grade falls in it.
A standard volume is gross volume × VCF.

`DENSITY_20C` is each grade's *nominal* density: what the tank gauge and the platform assume
(they only know the grade). Real product varies batch to batch inside the grade's band
(`DENSITY_BAND`, GB 17930 / GB 19147); the tank physics uses the real density of its mix
through `vcf_alpha` (docs/noise-budget.md).
"""

from __future__ import annotations

import math

DENSITY_20C: dict[str, float] = {"92": 725.0, "95": 737.0, "0": 835.0}  # kg/m³, nominal
# Density at 20 °C allowed by the product standard (kg/m³): GB 17930 车用汽油 720–775,
# GB 19147 车用柴油 (5#, 0#, −10#) 810–850.
DENSITY_BAND: dict[str, tuple[float, float]] = {"92": (720.0, 775.0), "95": (720.0, 775.0),
                                                 "0": (810.0, 850.0)}

# (upper density bound exclusive, K0, K1)
_K_BANDS: tuple[tuple[float, float, float], ...] = (
    (788.0, 346.4228, 0.4388),   # petrol (汽油)
    (839.0, 594.5418, 0.0),      # jet/kerosene band; light diesel
    (math.inf, 186.9696, 0.4862),  # fuel oils (heavier diesel)
)


def alpha_for_density(density_kg_m3: float) -> float:
    """Thermal expansion coefficient α (1/°C) at 20 °C for a product of this density."""
    if not (math.isfinite(density_kg_m3) and density_kg_m3 > 0):
        raise ValueError(f"alpha_for_density: density must be > 0 kg/m³, got {density_kg_m3!r}")
    for upper, k0, k1 in _K_BANDS:
        if density_kg_m3 < upper:
            return (k0 + k1 * density_kg_m3) / (density_kg_m3 * density_kg_m3)
    raise AssertionError("unreachable: last band is unbounded")


_ALPHA: dict[str, float] = {g: alpha_for_density(rho) for g, rho in DENSITY_20C.items()}


def alpha(grade: str) -> float:
    """α (1/°C) of a grade ("92", "95" petrol, "0" diesel)."""
    try:
        return _ALPHA[grade]
    except KeyError:
        raise ValueError(f"unknown fuel grade {grade!r}; expected one of {sorted(_ALPHA)}") from None


def vcf(grade: str, temp_c: float) -> float:
    """Factor turning gross litres at `temp_c` into litres at 20 °C with the grade's nominal
    density; exactly 1.0 at 20 °C."""
    a = alpha(grade)
    dt = temp_c - 20.0
    return math.exp(-a * dt * (1.0 + 0.8 * a * dt))


def vcf_alpha(a: float, temp_c: float) -> float:
    """`vcf` for a product of expansion coefficient `a` (1/°C), e.g. a real batch's."""
    dt = temp_c - 20.0
    return math.exp(-a * dt * (1.0 + 0.8 * a * dt))
