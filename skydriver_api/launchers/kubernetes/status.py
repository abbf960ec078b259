"""The workforce of a scan as its Jobs and Pods show it: pure functions of the listed objects."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from skydriver_api.launchers.base import ProcessState, WorkforceStatus, reason_lines
from skydriver_api.launchers.kubernetes.manifests import COMPONENT_SERVER, COMPONENT_WORKER, LABEL_CLUSTER

if TYPE_CHECKING:
    from kubernetes import client as k8s


def _condition(job: k8s.V1Job, kind: str) -> k8s.V1JobCondition | None:
    for cond in (job.status.conditions if job.status else None) or []:
        if cond.type == kind and cond.status == "True":
            return cond
    return None


def pod_state(pod: k8s.V1Pod) -> tuple[ProcessState, str | None]:
    """The pod's state and, when it is stuck or failed, why (ImagePullBackOff, Unschedulable, OOMKilled)."""
    st = pod.status
    phase = (st.phase if st else None) or "Pending"
    statuses = (st.container_statuses if st else None) or []
    if phase == "Pending":
        for cs in statuses:
            waiting = cs.state.waiting if cs.state else None
            if waiting and waiting.reason and waiting.reason not in ("ContainerCreating", "PodInitializing"):
                return "pending", waiting.reason + (f": {waiting.message}" if waiting.message else "")
        for cond in (st.conditions if st else None) or []:
            if cond.type == "PodScheduled" and cond.status == "False":
                why = cond.reason or "Unschedulable"
                return "pending", why + (f": {cond.message}" if cond.message else "")
        return "pending", None
    if phase == "Running":
        return "running", None
    if phase == "Succeeded":
        return "succeeded", None
    if phase == "Failed":
        for cs in statuses:
            term = cs.state.terminated if cs.state else None
            if term and term.exit_code != 0:
                why = term.reason or "Error"
                return "failed", f"{why} (exit code {term.exit_code})" + (
                    f": {term.message.strip()[:200]}" if term.message else ""
                )
        return "failed", (st.reason or "Failed") + (f": {st.message}" if st and st.message else "")
    return "unknown", phase


def _created(obj: Any) -> datetime:
    ts = obj.metadata.creation_timestamp
    return ts if isinstance(ts, datetime) else datetime.min.replace(tzinfo=UTC)


def _component(obj: Any) -> str | None:
    return (obj.metadata.labels or {}).get("app.kubernetes.io/component")


def _job_of(pod: k8s.V1Pod) -> str | None:
    labels = pod.metadata.labels or {}
    return labels.get("batch.kubernetes.io/job-name") or labels.get("job-name")


def derive_status(jobs: list[k8s.V1Job], pods: list[k8s.V1Pod], server_job: str | None) -> WorkforceStatus:
    """The scan's workforce as seen in its Jobs and Pods."""
    out = WorkforceStatus()
    reasons: dict[str, int] = {}

    def note(prefix: str, why: str | None) -> None:
        if why:
            key = f"{prefix}: {why}"
            reasons[key] = reasons.get(key, 0) + 1

    servers = sorted((j for j in jobs if _component(j) == COMPONENT_SERVER), key=_created)
    current = next((j for j in servers if j.metadata.name == server_job), None) if server_job else None
    if current is None and servers and not server_job:
        current = servers[-1]
    if current is None:
        out.server = "unknown"
        if server_job:
            out.server_reason = (
                f"Job {server_job} not found (deleted, or removed after ttlSecondsAfterFinished)"
            )
    else:
        server_pods = sorted((p for p in pods if _job_of(p) == current.metadata.name), key=_created)
        pod_states = [pod_state(p) for p in server_pods]
        failed = _condition(current, "Failed")
        if _condition(current, "Complete"):
            out.server = "succeeded"
        elif failed:
            out.server = "failed"
            pod_why = next((why for st, why in reversed(pod_states) if st == "failed" and why), None)
            out.server_reason = (
                f"{failed.reason or 'Failed'}"
                + (f": {failed.message}" if failed.message else "")
                + (f" ({pod_why})" if pod_why else "")
            )
        elif any(st == "running" for st, _ in pod_states):
            out.server = "running"
        else:  # no pod yet, or one being replaced (an evicted pod does not fail the Job)
            out.server = "pending"
            waiting = [why for st, why in pod_states if st == "pending" and why]
            failed = [f"previous pod: {why}" for st, why in pod_states if st == "failed" and why]
            out.server_reason = (waiting or failed[-1:] or [None])[0]

    counts: dict[str, int] = {}
    for pod in sorted(pods, key=lambda p: (_created(p), p.metadata.name)):
        if _component(pod) != COMPONENT_WORKER:
            continue
        state, why = pod_state(pod)
        counts[state] = counts.get(state, 0) + 1
        cluster = (pod.metadata.labels or {}).get(LABEL_CLUSTER, "?")
        note(f"worker[{cluster}]", why)
    for job in sorted(jobs, key=lambda j: (_created(j), j.metadata.name)):
        if _component(job) != COMPONENT_WORKER:
            continue
        failed = _condition(job, "Failed")
        if failed:
            cluster = (job.metadata.labels or {}).get(LABEL_CLUSTER, "?")
            note(
                f"worker Job {job.metadata.name} [{cluster}]",
                (failed.reason or "Failed") + (f": {failed.message}" if failed.message else ""),
            )
    out.workers = counts
    out.reasons = reason_lines(reasons)
    return out
