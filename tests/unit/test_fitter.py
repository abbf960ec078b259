"""The worker's fit process: warm before a warm worker says it is ready; fits once it has an event."""

from __future__ import annotations

import json
import subprocess
import sys

from skyscan.wire import Direction, PixelTask, TaskBatch, encode, task_id
from tests.conftest import make_event
from worker.fitter import Fitter


def test_a_fit_process_is_warm_before_its_first_event_and_then_fits_without_start_up() -> None:
    fitter = Fitter()
    try:
        assert fitter.wait_warm(120)  # imports loaded, no scan yet
        fitter.use_event(make_event())
        tasks = [
            PixelTask(
                task_id=task_id("s1", 8, pixel, 0),
                nside=8,
                pixel=pixel,
                variation=0,
                direction=Direction(ra=1.0, dec=0.1 * pixel, zenith=1.5, azimuth=0.2),
            )
            for pixel in range(3)
        ]
        body = encode(TaskBatch(scan_id="s1", reco="dummy", tasks=tasks))
        fits = list(fitter.fit_batch(body, 3, 30.0, lambda: None, lambda: False))
        assert [index for index, *_ in fits] == [0, 1, 2]
        assert all(fit is not None and fit.status == "ok" and error is None for _, fit, _, error in fits)
        assert len({fit.llh for _, fit, _, _ in fits}) == 3  # three directions, three likelihoods
        assert fitter.wait_warm(0)  # the same process, still warm
    finally:
        fitter.close()


def test_warm_up_imports_the_named_recos_and_only_those() -> None:
    """A warm worker names its service's recos, so a claim never waits for a reco's imports or its
    tables; a cold worker's fit process imports only its scan's reco, with the first batch."""
    code = (
        "import sys, json; from worker.fitter import warm_up; warm_up({names}); "
        "mods = ('skyscan.physics.recos.table_spe', 'skyscan.physics.recos.pandel', 'astropy'); "
        "loaded = [m for m in mods if m in sys.modules]; "
        "c = sys.modules.get('skyscan.sky.coordinates'); "
        "print(json.dumps([loaded, c is not None and c.astrometry_context.cache_info().currsize]))"
    )

    def after_warm_up(names: list[str]) -> list:  # type: ignore[type-arg]
        run = subprocess.run([sys.executable, "-c", code.format(names=names)], capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        return json.loads(run.stdout)  # type: ignore[no-any-return]

    assert after_warm_up([]) == [[], False]
    # table-spe builds on the pandel recos' shared implementation; the physics recos fit in detector
    # coordinates: no astropy, no astrometry tables
    assert after_warm_up(["table-spe"]) == [
        ["skyscan.physics.recos.table_spe", "skyscan.physics.recos.pandel"],
        False,
    ]
    assert after_warm_up(["dummy"]) == [["astropy"], 1]  # the dummy converts its truth to the sky
