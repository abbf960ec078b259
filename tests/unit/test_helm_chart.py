"""The Helm chart, rendered and linted by Helm's own Go SDK (helm-python-sdk, no helm binary), every
manifest validated against the Kubernetes schemas (kubernetes-validate, strict, newest version), and
the chart checked against what the launchers and the docs expect."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from skydriver_api.launchers.htcondor import HTCondorSettings
from skydriver_api.launchers.kubernetes import KubernetesSettings
from skydriver_api.launchers.kubernetes.client import RBAC_RULES

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "skydriver"
CI_VALUES = sorted((CHART / "ci").glob("*.yaml"))
K8S_VERSION = kubernetes_validate.latest_version()
NAMESPACE = "science"
RELEASE = "sky"

VALUE_SETS: dict[str, dict[str, Any] | None] = {"default": None}
VALUE_SETS.update({p.name: yaml.safe_load(p.read_text()) for p in CI_VALUES})


@pytest.fixture(scope="module")
def chart() -> Any:
    with helm.Chart.load(CHART) as loaded:
        yield loaded


def render(chart: Any, values: dict[str, Any] | None) -> tuple[list[dict[str, Any]], str]:
    """All rendered objects, and NOTES.txt."""
    out = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    objects: list[dict[str, Any]] = []
    notes = ""
    for path, text in out.items():
        if path.endswith("NOTES.txt"):
            notes = text
            continue
        objects += [doc for doc in yaml.safe_load_all(text) if doc]
    return objects, notes


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in by_kind(objects, kind) if name is None or o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {[o['metadata']['name'] for o in found]}"
    return found[0]


def api_config(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """The API's ConfigMap (the bundled RabbitMQ has one of its own)."""
    (config,) = [
        c
        for c in by_kind(objects, "ConfigMap")
        if c["metadata"]["labels"].get("app.kubernetes.io/component") != "rabbitmq"
    ]
    return config


def secret_data(objects: list[dict[str, Any]]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in one(objects, "Secret")["data"].items()}


def test_chart_metadata_and_ci_values_exist(chart: Any) -> None:
    assert chart.metadata["name"] == "skydriver"
    assert chart.metadata["apiVersion"] == "v2"
    assert chart.schema is not None and chart.schema["type"] == "object"
    assert CI_VALUES, "helm/skydriver/ci/ must hold at least one values file"


@pytest.mark.parametrize("values_name", list(VALUE_SETS))
def test_lint_is_clean(values_name: str) -> None:
    report = helm.lint(
        CHART, VALUE_SETS[values_name], strict=True, namespace=NAMESPACE, kube_version=f"v{K8S_VERSION}"
    )
    assert report["total_charts_linted"] == 1
    assert report["errors"] == []
    assert report["messages"] == [], report["messages"]


@pytest.mark.parametrize("values_name", list(VALUE_SETS))
def test_every_manifest_validates_against_kubernetes(chart: Any, values_name: str) -> None:
    values = VALUE_SETS[values_name]
    chart.validate_schema(values)
    objects, notes = render(chart, values)
    assert objects
    for obj in objects:
        # strict: unknown fields (typos) fail too
        assert kubernetes_validate.validate(obj, K8S_VERSION, strict=True) == K8S_VERSION.rsplit(".", 1)[0]
        assert obj["metadata"].get("namespace") == NAMESPACE, obj["metadata"]["name"]
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "skydriver"
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
    assert "admin-token" in notes and RELEASE in notes


def test_validator_is_not_vacuous() -> None:
    bad = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "x"},
        "spec": {"ports": [{"port": "eighty"}], "tpye": "ClusterIP"},
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)


def test_default_render_has_the_whole_deployment(chart: Any) -> None:
    objects, _ = render(chart, None)
    kinds = sorted({o["kind"] for o in objects})
    assert kinds == [
        "ConfigMap",
        "Deployment",
        "Role",
        "RoleBinding",
        "Secret",
        "Service",
        "ServiceAccount",
        "StatefulSet",
    ]
    assert by_kind(objects, "Ingress") == []
    assert {s["metadata"]["name"] for s in by_kind(objects, "StatefulSet")} == {
        f"{RELEASE}-skydriver-rabbitmq",
        f"{RELEASE}-skydriver-mongodb",
    }
    for sts in by_kind(objects, "StatefulSet"):
        claims = sts["spec"]["volumeClaimTemplates"]
        assert claims[0]["spec"]["accessModes"] == ["ReadWriteOnce"]
        mounts = sts["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
        assert claims[0]["metadata"]["name"] in {m["name"] for m in mounts}
        assert sts["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
        headless = one(objects, "Service", sts["spec"]["serviceName"])
        assert headless["spec"]["clusterIP"] == "None"


def _api_container(objects: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    deploy = one(objects, "Deployment")
    pod = deploy["spec"]["template"]["spec"]
    return pod, pod["containers"][0]


@pytest.mark.parametrize("values_name", list(VALUE_SETS))
def test_api_deployment_probes_security_and_secrets(chart: Any, values_name: str) -> None:
    objects, _ = render(chart, VALUE_SETS[values_name])
    deploy = one(objects, "Deployment")
    assert deploy["spec"]["replicas"] == 1 and deploy["spec"]["strategy"] == {"type": "Recreate"}
    pod, api = _api_container(objects)
    assert api["args"] == ["api"]
    assert api["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert api["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert api["resources"]["requests"] and api["resources"]["limits"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0
    assert api["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert pod["serviceAccountName"] == one(objects, "RoleBinding")["subjects"][0]["name"]
    # credentials come from the Secret, never as literal values
    secret_name = one(objects, "Secret")["metadata"]["name"]
    env = {e["name"]: e for e in api["env"]}
    for name in (
        "SKYDRIVER_RABBITMQ_URL",
        "SKYDRIVER_MONGODB_URI",
        "SKYDRIVER_ADMIN_TOKEN",
        "SKYDRIVER_SCAN_SECRET",
    ):
        assert "value" not in env[name]
        assert env[name]["valueFrom"]["secretKeyRef"]["name"] == secret_name
    assert env["SKYDRIVER_SCAN_SECRET"]["valueFrom"]["secretKeyRef"]["key"] == "scan-secret"
    secrets = secret_data(objects)
    assert len(secrets["scan-secret"]) >= 32
    assert "condor-broker-url" not in secrets  # grid workers get their scan's own identity
    configmap = api_config(objects)["data"]
    for value in secrets.values():
        assert all(value not in v for v in configmap.values())
        assert all(value not in e.get("value", "") for e in api["env"])
    # the ConfigMap is loaded into scan pods: nothing of the API's broker or scan secrets in it
    assert not {"SKYDRIVER_SCAN_SECRET", "SKYDRIVER_RABBITMQ_URL"} & set(configmap)
    assert "SKYDRIVER_CONDOR_BROKER_URL" not in env
    assert api["envFrom"] == [{"configMapRef": {"name": api_config(objects)["metadata"]["name"]}}]


def test_role_grants_exactly_what_the_kubernetes_launcher_uses(chart: Any) -> None:
    objects, _ = render(chart, None)
    role = one(objects, "Role")
    granted = {
        (g, r, v)
        for rule in role["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }
    needed = {(g, r, v) for g, r, verbs in RBAC_RULES for v in verbs}
    assert granted == needed
    binding = one(objects, "RoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"][0]["namespace"] == NAMESPACE


def test_configmap_configures_the_kubernetes_launcher(chart: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    objects, _ = render(chart, None)
    data = api_config(objects)["data"]
    for key, value in data.items():
        monkeypatch.setenv(key, value)
    settings = KubernetesSettings()
    assert settings.namespace == NAMESPACE
    assert settings.secret_name == one(objects, "Secret")["metadata"]["name"]
    assert settings.config_map == api_config(objects)["metadata"]["name"]
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    assert settings.image == f"ghcr.io/skydriver/skydriver:{app_version}"
    assert settings.instance == RELEASE
    scan_sa = [
        sa for sa in by_kind(objects, "ServiceAccount") if sa["metadata"]["name"] == settings.service_account
    ]
    assert scan_sa and scan_sa[0]["automountServiceAccountToken"] is False
    assert data["SKYDRIVER_LAUNCHER"] == "kubernetes"
    assert data["SKYDRIVER_API_URL"] == f"http://{RELEASE}-skydriver.{NAMESPACE}.svc:80"
    # the bundled services' URIs point at the bundled StatefulSets, with the generated passwords
    secrets = secret_data(objects)
    assert secrets["rabbitmq-url"] == (
        f"amqp://skydriver:{secrets['rabbitmq-password']}@{RELEASE}-skydriver-rabbitmq."
        f"{NAMESPACE}.svc:5672/%2F"
    )
    assert secrets["mongodb-uri"] == (
        f"mongodb://root:{secrets['mongodb-password']}@{RELEASE}-skydriver-mongodb."
        f"{NAMESPACE}.svc:27017/?authSource=admin"
    )
    assert len(secrets["admin-token"]) == 40 and len(secrets["rabbitmq-password"]) == 32


def test_ci_values_external_services_ingress_and_htcondor(
    chart: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = VALUE_SETS["external-ingress-htcondor-values.yaml"]
    assert values is not None
    objects, notes = render(chart, values)
    assert by_kind(objects, "StatefulSet") == []
    secrets = secret_data(objects)
    assert secrets["rabbitmq-url"] == values["externalRabbitmq"]["url"]
    assert secrets["mongodb-uri"] == values["externalMongodb"]["uri"]
    assert "condor-broker-url" not in secrets
    assert (
        secrets["admin-token"] == "ci-admin-token" and secrets["scan-secret"] == values["auth"]["scanSecret"]
    )
    assert "rabbitmq-password" not in secrets
    ingress = one(objects, "Ingress")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [
        {"secretName": "skydriver-ci-tls", "hosts": ["skydriver.ci.example.org"]}
    ]
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "skydriver-ci", "port": {"name": "http"}}
    assert "https://skydriver.ci.example.org/" in notes
    pod, api = _api_container(objects)
    env = {e["name"]: e for e in api["env"]}
    assert "SKYDRIVER_CONDOR_BROKER_URL" not in env
    assert env["SKYDRIVER_RABBITMQ_MANAGEMENT_URL"]["value"] == "https://rabbitmq.example.org:15671"
    assert env["SKYDRIVER_RABBITMQ_SCAN_HOST"]["value"] == "rabbitmq-public.example.org:5672"
    assert pod["imagePullSecrets"] == [{"name": "ghcr-pull"}]
    assert env["CONDOR_CONFIG"]["value"] == "ONLY_ENV"
    assert env["_CONDOR_COLLECTOR_HOST"]["value"] == "cm.example.org"
    mount = next(m for m in api["volumeMounts"] if m["name"] == "condor-token")
    assert mount == {"name": "condor-token", "mountPath": "/etc/condor/tokens.d", "readOnly": True}
    volume = next(v for v in pod["volumes"] if v["name"] == "condor-token")
    assert volume["secret"]["secretName"] == "skydriver-condor-idtoken"
    assert api["image"].endswith("@sha256:" + "0" * 64)
    data = api_config(objects)["data"]
    assert data["SKYDRIVER_MAX_CONCURRENT_SCANS"] == "8" and data["SKYDRIVER_WORKER_PIXEL_TIMEOUT_S"] == "900"
    assert data["SKYDRIVER_API_URL"] == "https://skydriver.ci.example.org"  # config overrides computed values
    for key, value in data.items():
        monkeypatch.setenv(key, value)
    condor = HTCondorSettings()
    assert condor.server_launcher == "kubernetes" and condor.spool is True
    assert condor.cluster_schedds == {"osg": "ap.example.org"}
    assert condor.collector == "cm.example.org" and condor.requirements == "has_avx2"
    k8s = KubernetesSettings()
    assert k8s.image_pull_secrets == ["ghcr-pull"]
    assert k8s.node_selector == {"kubernetes.io/arch": "amd64"}
    assert k8s.priority_class == "skydriver-scans"


def test_requests_choose_only_what_the_chart_configures(chart: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Images come from image.*, worker resources from scans.workerProfiles, recos from
    scans.enabledRecos; the test-only recos cannot be turned on through the chart."""
    from skydriver_api.settings import ApiSettings
    from worker.settings import WorkerSettings

    values = {
        "scans": {"workerProfiles": {"default": {}, "large": {"cpus": 8}}, "enabledRecos": ["pandel-mpe"]}
    }
    objects, _ = render(chart, values)
    for key, value in api_config(objects)["data"].items():
        monkeypatch.setenv(key, value)
    api, worker = ApiSettings(), WorkerSettings()  # what the API and (envFrom) the scan pods read
    assert sorted(api.worker_profiles) == ["default", "large"] and api.worker_profiles["large"].cpus == 8
    assert api.recos() == worker.recos() == {"pandel-mpe"}
    assert KubernetesSettings().image == f"ghcr.io/skydriver/skydriver:{chart.metadata['appVersion']}"
    objects, _ = render(chart, None)
    for key, value in api_config(objects)["data"].items():
        monkeypatch.setenv(key, value)
    assert ApiSettings().recos() == {
        "pandel-spe",
        "pandel-mpe",
        "pandel-layered",
        "table-mpe",
        "table-spe",
    }  # no test recos
    for bad in (
        {"config": {"SKYDRIVER_TEST_RECOS": "true"}},
        {"config": {"SKYDRIVER_ENABLED_RECOS": '["crash-dummy"]'}},
        {"scans": {"enabledRecos": ["crash-dummy"]}},
        {"scans": {"workerProfiles": {"default": {"image": "evil:1"}}}},
    ):
        with pytest.raises(helm.HelmError):
            chart.validate_schema(bad)


def test_local_launcher_gets_no_kubernetes_permissions(chart: Any) -> None:
    objects, notes = render(chart, {"launcher": "local"})
    for obj in objects:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    assert by_kind(objects, "Role") == [] and by_kind(objects, "RoleBinding") == []
    pod, _ = _api_container(objects)
    assert pod["automountServiceAccountToken"] is False
    assert not any(k.startswith("SKYDRIVER_K8S_") for k in api_config(objects)["data"])
    assert "demos only" in notes


def test_existing_secret_means_no_chart_secret(chart: Any) -> None:
    objects, _ = render(
        chart,
        {"existingSecret": "my-skydriver", "rabbitmq": {"enabled": False}, "mongodb": {"enabled": False}},
    )
    assert by_kind(objects, "Secret") == []
    _, api = _api_container(objects)
    refs = {e["valueFrom"]["secretKeyRef"]["name"] for e in api["env"] if "valueFrom" in e}
    assert refs == {"my-skydriver"}
    keys = {e["valueFrom"]["secretKeyRef"]["key"] for e in api["env"] if "valueFrom" in e}
    assert keys == {"rabbitmq-url", "mongodb-uri", "admin-token", "scan-secret"}
    assert api_config(objects)["data"]["SKYDRIVER_K8S_SECRET_NAME"] == "my-skydriver"


def test_schema_and_required_values_reject_bad_input(chart: Any) -> None:
    with pytest.raises(helm.HelmError):
        chart.validate_schema({"launcher": "slurm"})
    with pytest.raises(helm.HelmError):
        chart.validate_schema({"config": {"NOT_OURS": "x"}})
    with pytest.raises(helm.HelmError):
        chart.validate_schema({"podSecurityContext": {"runAsNonRoot": False}})
    with pytest.raises(helm.HelmError, match="externalMongodb.uri is required"):
        chart.render({"mongodb": {"enabled": False}}, name=RELEASE, namespace=NAMESPACE)
    with pytest.raises(helm.HelmError, match="needs htcondor.schedd"):
        chart.render({"launcher": "htcondor"}, name=RELEASE, namespace=NAMESPACE)
    for bad in (
        {"htcondor": {"brokerUrl": "amqp://x@y/"}},  # gone: workers get their scan's own identity
        {"brokerIdentities": {"managementUrl": "http://admin:pw@rabbitmq:15672"}},  # no credentials
        {"brokerIdentities": {"scanHost": "amqp://w:pw@rabbitmq:5672"}},  # host:port only
        {"auth": {"scanSecret": "short"}},  # every scan's credentials derive from it
    ):
        with pytest.raises(helm.HelmError):
            chart.validate_schema(bad)


def test_api_gets_its_scan_secret_and_broker_settings(chart: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from skydriver_api.settings import ApiSettings

    objects, _ = render(chart, None)
    _, api = _api_container(objects)
    env = {e["name"]: e for e in api["env"]}
    assert env["SKYDRIVER_RABBITMQ_MANAGEMENT_URL"] == {
        "name": "SKYDRIVER_RABBITMQ_MANAGEMENT_URL",
        "value": "",
    }
    secrets = secret_data(objects)
    monkeypatch.setenv("SKYDRIVER_SCAN_SECRET", secrets["scan-secret"])
    for name in ("SKYDRIVER_RABBITMQ_MANAGEMENT_URL", "SKYDRIVER_RABBITMQ_SCAN_HOST"):
        monkeypatch.setenv(name, env[name]["value"])
    settings = ApiSettings()
    assert (
        settings.scan_secret is not None and settings.scan_secret.get_secret_value() == secrets["scan-secret"]
    )
    assert settings.rabbitmq_management_url == "" and settings.rabbitmq_scan_host == ""
    # the bundled RabbitMQ runs the management plugin the API creates scan users through
    rabbit = one(objects, "StatefulSet", f"{RELEASE}-skydriver-rabbitmq")
    (container,) = rabbit["spec"]["template"]["spec"]["containers"]
    assert "management" in container["image"].rsplit(":", 1)[1]
    assert {"name": "management", "containerPort": 15672, "protocol": "TCP"} in container["ports"]
    # its quorum queues' in-memory write-ahead log is capped (the broker stays flat over long steps)
    config = one(objects, "ConfigMap", f"{RELEASE}-skydriver-rabbitmq-config")
    assert config["data"]["20-skydriver.conf"].strip() == "raft.wal_max_size_bytes = 67108864"
    mount = next(m for m in container["volumeMounts"] if m["name"] == "config")
    assert mount["mountPath"] == "/etc/rabbitmq/conf.d/20-skydriver.conf" and mount["readOnly"] is True
    volumes = rabbit["spec"]["template"]["spec"]["volumes"]
    assert {"name": "config", "configMap": {"name": f"{RELEASE}-skydriver-rabbitmq-config"}} in volumes

    # another Secret may hold it
    objects, _ = render(chart, {"auth": {"scanSecretRef": {"name": "vault-scan-secret", "key": "value"}}})
    _, api = _api_container(objects)
    env = {e["name"]: e for e in api["env"]}
    assert env["SKYDRIVER_SCAN_SECRET"]["valueFrom"]["secretKeyRef"] == {
        "name": "vault-scan-secret",
        "key": "value",
    }
    assert "scan-secret" not in secret_data(objects) and "value" not in secret_data(objects)


# --- docs/deploy.md: the configuration reference lists every setting ---------------------------------


def _documented() -> set[str]:
    text = (ROOT / "docs" / "deploy.md").read_text()
    return set(re.findall(r"SKYDRIVER_[A-Z0-9_]+", text))


def test_deploy_docs_list_every_setting() -> None:
    from server.settings import ServerSettings
    from skydriver_api.settings import ApiSettings
    from worker.settings import WorkerSettings

    documented = _documented()
    expected = {
        f"SKYDRIVER_{name.upper()}"
        for cls in (ApiSettings, ServerSettings, WorkerSettings)
        for name in cls.model_fields
    }
    expected |= {f"SKYDRIVER_K8S_{name.upper()}" for name in KubernetesSettings.model_fields}
    expected |= {f"SKYDRIVER_CONDOR_{name.upper()}" for name in HTCondorSettings.model_fields}
    assert expected - documented == set()


# --- container images: the Dockerfile and the Apptainer definition agree with the repo --------------


def test_dockerfile_builds_everything_the_package_needs() -> None:
    import tomllib

    dockerfile = (ROOT / "containers" / "Dockerfile").read_text()
    ignore = (ROOT / "containers" / "Dockerfile.dockerignore").read_text().split()
    stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\w+)", dockerfile, re.M)
    assert stages == ["build", "runtime"]  # multi-stage; the runtime stage is last, hence the image
    copied = [
        source
        for line in dockerfile.splitlines()
        if line.startswith("COPY") and "--from=" not in line
        for source in line.split()[1:-1]
        if not source.startswith("--")
    ]
    assert {"pyproject.toml", "constraints.txt", "containers/skydriver-condor-worker"} <= set(copied)
    for source in copied:
        assert f"!{source}" in ignore, f"{source} is copied but excluded from the build context"
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = [p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]]
    for package in packages:
        assert re.search(rf"^COPY {package} \./{package}$", dockerfile, re.M), package
    readme = pyproject["project"].get("readme")
    assert readme is None or re.search(rf"^COPY .*{readme}", dockerfile, re.M)
    assert "pip install -c constraints.txt -r" in dockerfile
    assert "pip install --no-deps -c constraints.txt ." in dockerfile
    runtime = dockerfile.split("AS runtime", 1)[1]
    assert re.search(r"^USER 10001:10001$", runtime, re.M)  # numeric: runAsNonRoot can verify it
    assert 'ENTRYPOINT ["skydriver"]' in runtime
    labels = set(re.findall(r"org\.opencontainers\.image\.(\w+)=", runtime))
    assert {"title", "version", "revision", "created", "source", "licenses"} <= labels
    assert f"/usr/local/bin/{HTCondorSettings().executable.rsplit('/', 1)[-1]}" in runtime


def test_apptainer_definition_wraps_the_same_image() -> None:
    definition = (ROOT / "containers" / "skydriver-worker.def").read_text()
    assert re.search(r"^Bootstrap: docker$", definition, re.M)
    assert re.search(r"^From: \{\{ IMAGE \}\}$", definition, re.M)
    assert "IMAGE=ghcr.io/skydriver/skydriver:" in definition
    runscript = definition.split("%runscript", 1)[1].split("%", 1)[0]
    assert f'exec {HTCondorSettings().executable} "$@"' in runscript
