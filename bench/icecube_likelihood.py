#!/usr/bin/env python3
"""Our Pandel SPE likelihood against IceCube's own, on the real events of the shared data folder.

For each real event and IceCube Pandel SPE fit it carries (HESE_SPEFit2 of the HESE filter,
OnlineL2's SPEFit2 of the alerts), ``pandel-spe`` with that fit's settings
(``ICECUBE_SPE_OPTIONS``) is evaluated at IceCube's fitted direction (vertex fitted, as in a scan
pixel) and compared with IceCube's -lnL there: ``logl`` of the frame's I3LogLikelihoodFitParams,
or ``llh`` of the JSON's reco block. Also printed: our DOMs against IceCube's ndof + 5.

    python bench/icecube_likelihood.py            # the table in docs/physics.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from skyscan.physics.geometry import load_geometry_csv, shared_data_dir  # noqa: E402
from skyscan.physics.recos.evaluate import detector_direction, fit_direction  # noqa: E402
from skyscan.physics.recos.pandel import ICECUBE_SPE_OPTIONS  # noqa: E402
from skyscan.physics.recos.registry import get_reco  # noqa: E402
from skyscan.readers.realtime import read_realtime_event  # noqa: E402

EVENT_FILES = (
    "hese_event_00.json",
    "hese_event_01.json",
    "hese_event_02.json",
    "hese_event_03.json",
    "event_HESE_2017-11-28.json",
    "run00136766-evt000007637140-GOLD.pkl",
    "run00136662-evt000035405932-BRONZE.pkl",
    "138632_31747601.json",
)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=shared_data_dir(), help="shared data folder")
    args = parser.parse_args()
    if args.data is None or not (args.data / "realtime_events").is_dir():
        print("shared data folder not found (pass --data)", file=sys.stderr)
        return 2
    geometry = load_geometry_csv(args.data / "icecube" / "ic86_geometry.csv")
    print(
        "| event | IceCube fit | options | DOMs (ours / IceCube's ndof + 5) | -lnL ours | "
        "-lnL IceCube | difference |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in EVENT_FILES:
        event = read_realtime_event(args.data / "realtime_events" / name, geometry)
        for fit_name, options in ICECUBE_SPE_OPTIONS.items():
            if fit_name not in event.reference_fits:
                continue
            fit = event.reference_fits[fit_name].model_dump()
            icecube = fit.get("logl", fit.get("llh"))
            reco = get_reco("pandel-spe", dict(options))
            prepared = reco.prepare(event)
            direction = detector_direction(fit["zenith"], fit["azimuth"], event.mjd)
            ours = fit_direction(reco, prepared, direction).llh
            ndof = fit.get("ndof")
            doms = (
                f"{len(prepared.times)} / {ndof + 5:.0f}"
                if ndof is not None
                else f"{len(prepared.times)} / ?"
            )
            diff = f"{ours - icecube:+.3f}" if icecube is not None else "(no value)"
            print(
                f"| {Path(name).stem} | {fit_name} | {options} | {doms} | {ours:.3f} | "
                f"{'' if icecube is None else f'{icecube:.3f}'} | {diff} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
