"""``table-spe``: the photon-table likelihood of the first photon per DOM (SPE1st).

``table-mpe`` with N = 1 on every DOM: per hit DOM, the arrival-time PDF of the first pulse from
the photon table (layered ice per DOM, :mod:`skyscan.physics.recos.table_mpe`), convolved with the
Gaussian jitter, plus the noise floor; no photon count and no charge. On the photon simulator it is
the most precise of our recos (``docs/physics.md``): the count N sharpens the first-of-N density
around the direct light, and the light of stochastic losses and late pulses make the bright DOMs'
first photons earlier or later than a bare muon's, so trusting N costs more than it gives. Only the
first photon's density is tabulated, so a worker builds it in 1.3 s of CPU (table-mpe's 16 photon
counts take 4.4 s).
"""

from __future__ import annotations

from typing import ClassVar

from skyscan.physics.recos.table_mpe import TableMPE

_MPE_ONLY = ("max_photons", "bright_factor", "bright_photons", "saturation_pe", "charge_weight")


class TableSPE(TableMPE):
    name: ClassVar[str] = "table-spe"
    description: ClassVar[str] = (
        "Photon-table SPE1st track likelihood (layered ice per DOM, jittered first-photon timing)."
    )
    use_charge: ClassVar[bool] = False
    photon_nodes: ClassVar[tuple[int, ...]] = (1,)

    def __init__(self, jitter_ns: float = 3.0, noise_floor: float = 1e-6, **options: object) -> None:
        unused = set(_MPE_ONLY) & set(options)
        if unused:
            raise ValueError(f"table-spe has no {', '.join(sorted(unused))} (it reads the first photon only)")
        super().__init__(jitter_ns=jitter_ns, noise_floor=noise_floor, max_photons=1, **options)  # type: ignore[arg-type]
