"""What a request may ask for, without services: recos enabled by configuration, worker profiles
and clusters from the operator, budgets, realtime priority, task counts from the strategies'
estimates; and that nothing stored on a scan chooses the image a launcher runs."""

from __future__ import annotations

import pytest

from skydriver_api.auth import Principal
from skydriver_api.launchers.base import LaunchSpec, Resources, ScanCredentials, WorkerCluster
from skydriver_api.launchers.kubernetes import KubernetesSettings
from skydriver_api.launchers.kubernetes.manifests import ScanManifests
from skydriver_api.reconciler.context import Context
from skydriver_api.services.errors import Forbidden, Invalid
from skydriver_api.services.policy import SubmissionPolicy, known_clusters
from skydriver_api.settings import ApiSettings
from skyscan.physics.recos.enabled import TEST_RECOS, enabled_recos
from skyscan.physics.recos.registry import UnknownReco
from skyscan.records.spec import ScanSpec, ScanSpecError, TaskLimits
from skyscan.sky import pixels as px
from worker.settings import WorkerSettings

SUBMITTER = Principal("alice", "submitter")
ADMIN = Principal("root", "admin")


@pytest.fixture(autouse=True)
def _production_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SKYDRIVER_TEST_RECOS", "SKYDRIVER_ENABLED_RECOS", "SKYDRIVER_WORKER_PROFILES"):
        monkeypatch.delenv(name, raising=False)


def policy(**settings: object) -> SubmissionPolicy:
    s = ApiSettings(**settings)  # type: ignore[arg-type]
    return SubmissionPolicy(s, known_clusters(s, None))


# -- recos -------------------------------------------------------------------------------------------
def test_test_recos_are_off_unless_enabled() -> None:
    assert sorted(TEST_RECOS) == ["crash-dummy", "dummy"]
    for settings in (ApiSettings(), WorkerSettings()):
        assert settings.recos() == {"pandel-spe", "pandel-mpe", "pandel-layered", "table-mpe", "table-spe"}
        assert not settings.reco_enabled("crash-dummy")
    assert ApiSettings(test_recos=True).recos() >= TEST_RECOS
    assert ApiSettings(enabled_recos=["dummy"], alert_reco="dummy").recos() == {"dummy"}  # just those
    with pytest.raises(Invalid, match="'crash-dummy' is not enabled on this service"):
        policy().check_reco("crash-dummy")
    with pytest.raises(Invalid, match="'millipede' is an unknown reco"):
        policy().check_reco("millipede")


def test_misconfigured_recos_fail_at_start_up() -> None:
    with pytest.raises(UnknownReco, match="unknown recos"):
        enabled_recos(["pandel-mpee"])
    with pytest.raises(ValueError, match="unknown recos"):
        ApiSettings(enabled_recos=["pandel-mpee"])
    with pytest.raises(ValueError, match="SKYDRIVER_ALERT_RECO 'dummy' is not an enabled reco"):
        ApiSettings(alert_reco="dummy")
    with pytest.raises(ValueError, match="SKYDRIVER_ALERT_WORKERS 4 is over the 2 a scan may have"):
        ApiSettings(max_total_workers=2)
    with pytest.raises(ValueError, match="SKYDRIVER_ALERT_NSIDES '256:0'.*tasks per step"):
        ApiSettings(alert_nsides="256:0")
    with pytest.raises(ValueError, match="alert_strategy"):
        ApiSettings(alert_strategy="spiral")
    contour_too_fine = r"SKYDRIVER_ALERT_NSIDES '8,2048' \(SKYDRIVER_ALERT_STRATEGY contour\)"
    with pytest.raises(ValueError, match=contour_too_fine):
        ApiSettings(alert_strategy="contour", alert_nsides="8,2048", max_nside=1024)
    assert ApiSettings(alert_strategy="contour", alert_nsides="8,64,512").alert_strategy == "contour"


# -- profiles, clusters, images ----------------------------------------------------------------------
def test_profiles_and_clusters_come_from_the_operator() -> None:
    p = policy(worker_profiles={"default": {}, "large": {"cpus": 8, "memory_mb": 16384}})
    assert p.resources("large")["cpus"] == 8.0
    with pytest.raises(Invalid, match="no worker profile 'gpu' is configured; known: default, large"):
        p.resources("gpu")
    assert p.clusters == ("default",)
    with pytest.raises(Invalid, match="'osg' not configured; known: default"):
        p.check_clusters(["default", "osg"])
    s = ApiSettings(worker_clusters=["osg"])
    assert known_clusters(s, ("osg", "chtc")) == ("osg",)
    assert known_clusters(ApiSettings(), ("osg", "chtc")) == ("osg", "chtc")  # HTCondor's cluster map
    with pytest.raises(ValueError, match="does not reach"):
        known_clusters(ApiSettings(worker_clusters=["k8s"]), ("osg",))
    with pytest.raises(ValueError, match="worker profile name"):
        ApiSettings(worker_profiles={"Big Ones": {}})


def test_a_stored_image_never_reaches_a_job() -> None:
    """Scans stored before the image left the request may still carry one: it is ignored."""
    legacy = {"cpus": 2.0, "memory_mb": 4096, "image": "attacker.example.org/evil:1"}
    assert Resources.from_doc(legacy) == Resources(cpus=2.0, memory_mb=4096)
    credentials = ScanCredentials(
        server_broker_url="amqp://s:sp@rabbit:5672/%2F",
        worker_broker_url="amqp://w:wp@rabbit:5672/%2F",
        scan_key="00ff" * 16,
    )
    spec = LaunchSpec(
        "s1",
        "token",
        (WorkerCluster("default", 1),),
        credentials=credentials,
        resources=Resources.from_doc(legacy),
        api_url="",
    )
    manifests = ScanManifests(KubernetesSettings(image="registry.example.org/skydriver@sha256:" + "0" * 64))
    for job in (manifests.server_job_manifest(spec), manifests.worker_job_manifest(spec, spec.clusters[0])):
        (container,) = job["spec"]["template"]["spec"]["containers"]
        assert container["image"] == "registry.example.org/skydriver@sha256:" + "0" * 64
    ctx = Context(ApiSettings(), db=None, launcher=None, wake=lambda: None)  # type: ignore[arg-type]
    built = ctx.launch_spec({"_id": "s1", "clusters": [], "resources": legacy}, "token")
    assert built.resources == Resources(cpus=2.0, memory_mb=4096)


# -- budgets and priority ------------------------------------------------------------------------------
def test_worker_budgets_count_every_cluster_and_what_was_asked_before() -> None:
    p = policy(max_total_workers=16, max_workers_per_scan=10)
    assert p.settings.workers_per_scan == 10
    p.check_workers(10)
    with pytest.raises(Invalid, match="a scan may have at most 10 workers"):
        p.check_workers(11)
    with pytest.raises(Invalid, match="3 more on top of 8"):
        p.check_workers(3, already=8)
    assert ApiSettings(max_total_workers=2, alert_workers=1).workers_per_scan == 2  # within the budget


def test_realtime_priority_is_reserved() -> None:
    p = policy()
    with pytest.raises(Forbidden, match="reserved for realtime alerts and admins"):
        p.check_priority(100, SUBMITTER)
    p.check_priority(99, SUBMITTER)
    p.check_priority(100, ADMIN)
    p.check_priority(100, SUBMITTER, realtime=True)  # the alert route


# -- task counts -------------------------------------------------------------------------------------
def test_strategies_estimate_their_tasks() -> None:
    progression = ScanSpec(reco="dummy", nsides="8:0,64:12,512:24").build_strategy()
    assert progression.estimated_pixels() == [(8, 768), (64, 13 * 64), (512, 25 * 64)]
    assert ScanSpec(reco="dummy", nsides="256:0").build_strategy().estimated_pixels() == [(256, 786_432)]
    huge_disc = ScanSpec(reco="dummy", nsides="1:0,2:1000").build_strategy()
    assert huge_disc.estimated_pixels() == [(1, 12), (2, px.npix(2))]  # at most the whole sky
    contour = ScanSpec(
        reco="dummy", strategy="contour", nsides="8,16,32", strategy_options={"max_pixels_per_step": 1000}
    ).build_strategy()
    assert contour.estimated_pixels() == [(8, 768), (16, 1000), (32, 1000)]


def test_a_scan_over_the_task_limits_is_refused() -> None:
    limits = TaskLimits(per_step=100_000, per_scan=250_000)
    with pytest.raises(ScanSpecError, match="786,432 tasks .* limit of 100,000 tasks per step"):
        ScanSpec(reco="dummy", nsides="256:0").checked(limits=limits)
    with pytest.raises(ScanSpecError, match="limit of 2,000 tasks per scan"):
        ScanSpec(reco="dummy", nsides="8:0,64:12,512:24").checked(limits=TaskLimits(5000, 2000))
    ScanSpec(reco="dummy").checked(limits=limits)  # the default progression fits
    mpe = ScanSpec(reco="pandel-mpe", nsides="64:0")
    assert mpe.n_variations() >= 1
    with pytest.raises(ScanSpecError, match="variations"):
        mpe.checked(limits=TaskLimits(per_step=49_151 * mpe.n_variations(), per_scan=10**9))
