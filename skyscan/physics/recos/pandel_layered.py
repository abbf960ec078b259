"""``pandel-layered``: the convolved-Pandel SPE likelihood with depth-dependent ice.

The Pandel shape parameter is d_eff / lambda; here lambda is each DOM's own effective scattering
length, averaged (in coefficient) along the straight path from the direct photon's emission point
on the track to the DOM through SPICE-Mie's layers at 400 nm (the layers ship with the packaged
photon table, so no shared data is needed). Implemented as a scaled effective distance,
``d' = d_eff * lambda_ref / lambda_path`` with lambda_ref the detector-median length, so a DOM in
median ice is unchanged. The absorption time scale stays the bulk value (H2).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from skyscan.physics.pandel_model import SIN_CHERENKOV
from skyscan.physics.recos.pandel import PandelPrepared, PandelTrackReco
from skyscan.physics.tables.photon_table import packaged_path_ice


class PandelLayeredSPE(PandelTrackReco):
    name: ClassVar[str] = "pandel-layered"
    description: ClassVar[str] = (
        "Convolved-Pandel SPE1st track likelihood with per-DOM effective scattering lengths from layered ice."
    )
    use_charge: ClassVar[bool] = False

    def _distance_scale(
        self, prep: PandelPrepared, rho: np.ndarray, cos_eta: np.ndarray
    ) -> np.ndarray | float:
        z_dom = prep.positions[:, 2][None, :]
        z_emit = z_dom - (rho / SIN_CHERENKOV) * cos_eta
        scat_scale, _ = packaged_path_ice().scales(z_dom, z_emit)
        return 1.0 / scat_scale
