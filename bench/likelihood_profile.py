#!/usr/bin/env python3
"""How a reco's likelihood falls off around the true direction: the tool of the tails study.

For each simulated event (``--events``, JSON Lines as written by ``bench/physics.py --events``) and
reco, prints -lnL at the true direction fitted from the reco's own anchor and from the simulator's
true vertex (if they differ, the per-pixel vertex fit is what fails), then the lowest
-lnL(direction) - -lnL(truth) over ``--angles`` position angles at each of the ``--offsets`` (deg).
A likelihood that rises by tens within a coarse pixel's size cannot be scanned from that nside
(``docs/physics.md``, *Tails*).

    python bench/likelihood_profile.py --events ev.jsonl --ids 2,6,22 --recos table-mpe,table-spe,pandel-spe
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from skyscan.physics.event import parse_event  # noqa: E402
from skyscan.physics.pandel_model import transverse_basis, travel_direction  # noqa: E402
from skyscan.physics.recos.evaluate import fit_direction  # noqa: E402
from skyscan.physics.recos.registry import get_reco  # noqa: E402
from skyscan.refinement.drive import truth_vertex  # noqa: E402
from skyscan.wire import Direction  # noqa: E402


def detector_direction(zenith: float, azimuth: float) -> Direction:
    return Direction.model_construct(ra=0.0, dec=0.0, zenith=zenith, azimuth=azimuth % (2 * math.pi))


def offset_directions(zenith: float, azimuth: float, offset_deg: float, n_angles: int) -> list[Direction]:
    """Directions ``offset_deg`` from (zenith, azimuth), evenly spread in position angle."""
    source = -travel_direction(zenith, azimuth)  # where the muon comes from
    a, b = transverse_basis(source)
    out = []
    for phi in np.linspace(0.0, 2 * math.pi, n_angles, endpoint=False):
        off = math.radians(offset_deg)
        w = math.cos(off) * source + math.sin(off) * (math.cos(phi) * a + math.sin(phi) * b)
        out.append(detector_direction(math.acos(float(np.clip(w[2], -1, 1))), math.atan2(w[1], w[0])))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=Path, required=True)
    parser.add_argument("--ids", required=True, help="event ids, comma-separated")
    parser.add_argument("--recos", default="table-mpe,table-spe,pandel-spe")
    parser.add_argument("--offsets", default="0.5,1,2,4,8", help="degrees")
    parser.add_argument("--angles", type=int, default=6)
    args = parser.parse_args()
    if not args.events.is_file():
        parser.error(f"no events file {args.events}")
    wanted = {int(i) for i in args.ids.split(",") if i}
    events = [parse_event(json.loads(line)) for line in args.events.read_text().splitlines() if line]
    events = [ev for ev in events if ev.event_id in wanted and ev.truth is not None]
    if not events:
        parser.error(f"none of the events {sorted(wanted)} with a truth in {args.events}")
    offsets = [float(x) for x in args.offsets.split(",")]
    header = " | ".join(f"{o:g}°" for o in offsets)
    print(f"| event | TeV | reco | -lnL at truth: anchor / true vertex | {header} |")
    print("|---|---|---|---|" + "---|" * len(offsets))
    for event in events:
        truth = event.truth
        assert truth is not None
        at_truth = detector_direction(truth.zenith, truth.azimuth)
        for name in (r for r in args.recos.split(",") if r):
            reco = get_reco(name)
            prepared = reco.prepare(event)
            from_anchor = fit_direction(reco, prepared, at_truth).llh
            vertex = truth_vertex(event)
            from_vertex = fit_direction(reco, prepared, at_truth, vertex).llh if vertex else math.nan
            best = min(from_anchor, from_vertex) if math.isfinite(from_vertex) else from_anchor
            rises = [
                min(
                    fit_direction(reco, prepared, d).llh
                    for d in offset_directions(truth.zenith, truth.azimuth, o, args.angles)
                )
                - best
                for o in offsets
            ]
            cells = " | ".join(f"{r:+.0f}" for r in rises)
            fits = f"{from_anchor:.1f} / {from_vertex:.1f}"
            print(f"| {event.event_id} | {truth.energy / 1e3:.1f} | {name} | {fits} | {cells} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
