"""A worker's state as its HTCondor job ad shows it: a pure mapping of ``JobStatus`` and reasons."""

from __future__ import annotations

from typing import Any

# JobStatus codes of the job ad -> the launcher's worker states
_STATES = {1: "pending", 2: "running", 3: "removed", 4: "succeeded", 5: "held", 6: "running", 7: "suspended"}


def job_state(ad: Any) -> tuple[str, str | None]:
    """A worker's state from its job ad and, when held or failed, why."""
    code = int(ad.get("JobStatus", 0))
    state = _STATES.get(code, "unknown")
    if state == "held":
        reason = str(ad.get("HoldReason", "held"))
        sub = ad.get("HoldReasonCode")
        return state, f"held: {reason}" + (f" (code {sub})" if sub is not None else "")
    if state == "succeeded" and int(ad.get("ExitCode", 0)) != 0:
        return "failed", f"exit code {ad.get('ExitCode')}"
    if state == "removed":
        return state, f"removed: {ad.get('RemoveReason', '')}".rstrip(": ")
    return state, None
