"""The schedd calls of the launcher, through the ``htcondor2`` bindings: locate, submit, query, remove.

Each takes the schedd object (from the launcher's ``schedd_factory``, a recording stand-in in the
tests) and raises one of :data:`CONDOR_ERRORS` when the schedd cannot be reached or refuses.
"""

from __future__ import annotations

from typing import Any

import classad2
import htcondor2

from skydriver_api.launchers.htcondor.submit import ATTR_CLUSTER, ATTR_SCAN_ID

# what the bindings raise when a schedd or collector cannot be reached or refuses (ValueError: a
# daemon the collector does not know)
CONDOR_ERRORS = (htcondor2.HTCondorException, RuntimeError, ValueError, OSError)
_PROJECTION = [
    "ClusterId",
    "ProcId",
    "JobStatus",
    "HoldReason",
    "HoldReasonCode",
    "HoldReasonSubCode",
    "ExitCode",
    "RemoveReason",
    ATTR_SCAN_ID,
    ATTR_CLUSTER,
]


def scan_constraint(scan_id: str) -> str:
    """Every job of the scan, found by the attribute its submit description sets."""
    return f"{ATTR_SCAN_ID} == {classad2.quote(scan_id)}"


def locate_schedd(collector: str | None, name: str | None) -> Any:
    """The local schedd (``name`` None), or the named one as the collector (pool) locates it."""
    if name is None:
        return htcondor2.Schedd()
    pool = htcondor2.Collector(collector) if collector else htcondor2.Collector()
    return htcondor2.Schedd(pool.locate(htcondor2.DaemonType.Schedd, name))


def submit_cluster(schedd: Any, submit: htcondor2.Submit, count: int, spool: bool) -> int:
    """Submit ``count`` jobs as one cluster (spooling the input files when asked); its ClusterId."""
    result = schedd.submit(submit, count=count, spool=spool)
    if spool:
        schedd.spool(result)
    return int(result.cluster())


def query_scan(schedd: Any, scan_id: str) -> list[Any]:
    """The job ads of the scan's workers on this schedd."""
    return list(schedd.query(constraint=scan_constraint(scan_id), projection=_PROJECTION))


def remove_scan(schedd: Any, scan_id: str) -> None:
    """``condor_rm`` every job of the scan on this schedd."""
    schedd.act(
        htcondor2.JobAction.Remove, scan_constraint(scan_id), reason=f"SkyDriver: scan {scan_id} stopped"
    )
