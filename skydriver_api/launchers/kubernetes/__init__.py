"""Kubernetes launcher: the scan server and each worker cluster run as ``batch/v1`` Jobs.

What it creates for one scan (all in ``SKYDRIVER_K8S_NAMESPACE``, all labelled with the scan id):

* a Secret ``sd-<scan>-token`` holding the per-scan token, the scan's two broker identities
  (``server-broker-url``, ``worker-broker-url``) and its signing key (``scan-key``), mounted read-only
  as files with per-role ``items``: the server sees the token, its own URL and the key, workers the
  token, the worker URL and the key (``SKYDRIVER_SCAN_TOKEN_FILE``, ``SKYDRIVER_BROKER_URL_FILE``,
  ``SKYDRIVER_SCAN_KEY_FILE``); a relaunch with other values replaces them. It lists every Job of the
  scan as an owner, so the garbage collector deletes it with the last of them;
* the server Job (``skydriver server --scan-id ID``): ``backoffLimit: 0`` (the reconciler decides on
  replacement servers), ``activeDeadlineSeconds``, ``ttlSecondsAfterFinished``;
* one worker Job per :class:`WorkerCluster` and per add-workers request
  (``skydriver worker --scan-id ID``) with ``parallelism`` = the requested count (a work-queue Job:
  workers exit 0 when the queue stays idle), each pod bounded by ``max_worker_runtime_s``.

No secret is a literal value. The shared administrator RabbitMQ URL never reaches a scan pod; only the
server reads the MongoDB URI, with ``secretKeyRef`` from the deployment's Secret
(``SKYDRIVER_K8S_SECRET_NAME``, written by the Helm chart). Non-secret settings come from the chart's
ConfigMap with ``envFrom`` (``SKYDRIVER_K8S_CONFIG_MAP``).

One concern per module:

* :mod:`.settings`: :class:`KubernetesSettings` (``SKYDRIVER_K8S_*``);
* :mod:`.manifests`: names, labels and the Secret and Job manifests (pure, no API call);
* :mod:`.client`: every Kubernetes API call, the credentials and the error mapping; the Helm chart's
  Role grants exactly its :data:`~.client.RBAC_RULES` (Jobs create/list/delete, Pods list, Secrets
  create/get/update/delete);
* :mod:`.status`: the scan's workforce derived from its Jobs and Pods (pure);
* :mod:`.launcher`: :class:`KubernetesLauncher`, composing them.

Construct with ``KubernetesLauncher()``: it reads :class:`KubernetesSettings` from the environment and
loads in-cluster credentials (service-account token) or, outside a cluster, a kubeconfig
(``SKYDRIVER_K8S_KUBECONFIG`` / ``SKYDRIVER_K8S_CONTEXT``, or the client's default lookup) on first use.
Tests pass ``settings=`` and a ready ``api_client=``.
"""

from skydriver_api.launchers.kubernetes.launcher import KubernetesLauncher
from skydriver_api.launchers.kubernetes.settings import KubernetesSettings

__all__ = ["KubernetesLauncher", "KubernetesSettings"]
