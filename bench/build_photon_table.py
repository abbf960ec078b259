#!/usr/bin/env python3
"""Build the packaged photon table of an infinite bare muon from the photon simulator.

Reads SPICE-Mie from the shared data folder, simulates ``--tracers`` photons in the reference
ice, smooths, and writes ``skyscan/physics/tables/data/bare_muon_spice_mie.npz`` (or ``--out``).
Prints the CPU time (the figure quoted in docs/physics.md).

    nice -n 10 python bench/build_photon_table.py --tracers 1000000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from skyscan.physics.photonsim.ice import spice_mie  # noqa: E402
from skyscan.physics.tables.photon_table import PACKAGED_TABLE, build_table  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tracers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=PACKAGED_TABLE)
    args = parser.parse_args()
    started = time.process_time()
    table = build_table(spice_mie(), n_tracers=args.tracers, seed=args.seed)
    table.to_npz(args.out)
    print(
        f"{args.out}: {args.out.stat().st_size / 1024:.0f} kB, {args.tracers} tracers, "
        f"reference ice: effective scattering {table.ref_eff_scattering_m:.1f} m, "
        f"absorption {table.ref_absorption_m:.1f} m; CPU {time.process_time() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
