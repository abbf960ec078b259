"""A small, real HTTP server speaking the part of the Kubernetes API the launcher uses.

It serves, on 127.0.0.1 and an ephemeral port, the paths the ``kubernetes`` Python client calls for:

* ``batch/v1`` Jobs: create, get, list (label selector), delete (records the DeleteOptions body);
* ``v1`` Pods: list (label selector); tests add pods with :meth:`FakeKubeAPI.add_pod`;
* ``v1`` Secrets: create, get, replace (optimistic concurrency on ``resourceVersion``), delete.

Objects get a uid, a creationTimestamp and a resourceVersion as a real API server would give them;
``stringData`` of a Secret is folded into base64 ``data``. Every request is recorded (method, path,
query, JSON body) so the tests can assert what the client actually sent. Unknown paths answer 404
and are listed in :attr:`FakeKubeAPI.unexpected`.

Usage::

    with FakeKubeAPI() as api:
        conf = kubernetes.client.Configuration(host=api.url)
        ...
"""

from __future__ import annotations

import base64
import copy
import json
import re
import socket
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

_ROUTES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^/apis/batch/v1/namespaces/(?P<ns>[^/]+)/jobs(?:/(?P<name>[^/]+))?$"), "Job"),
    (re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/pods(?:/(?P<name>[^/]+))?$"), "Pod"),
    (re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/secrets(?:/(?P<name>[^/]+))?$"), "Secret"),
]
_API_VERSION = {"Job": "batch/v1", "Pod": "v1", "Secret": "v1"}
_RESOURCE = {"Job": "jobs", "Pod": "pods", "Secret": "secrets"}
# what each HTTP method on a collection or an object means as an RBAC verb
_VERB = {
    ("GET", False): "list",
    ("GET", True): "get",
    ("POST", False): "create",
    ("PUT", True): "update",
    ("DELETE", True): "delete",
    ("PATCH", True): "patch",
    ("DELETE", False): "deletecollection",
}


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    kind: str | None
    namespace: str | None
    name: str | None

    @property
    def verb(self) -> str | None:
        return _VERB.get((self.method, self.name is not None))


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def _matches(labels: dict[str, str], selector: str | None) -> bool:
    if not selector:
        return True
    for term in selector.split(","):
        term = term.strip()
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k) == v:
                return False
        elif "=" in term:
            k, v = term.split("==", 1) if "==" in term else term.split("=", 1)
            if labels.get(k) != v:
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


class FakeKubeAPI:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.requests: list[Recorded] = []
        self.unexpected: list[Recorded] = []
        self._failures: dict[tuple[str, str], list[tuple[int, str, str]]] = {}
        self._lock = threading.Lock()
        self._rv = 0
        self._clock = 0
        self._t0 = datetime(2026, 1, 1, tzinfo=UTC)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> str:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # headers and body go out in two writes: without this, Nagle's algorithm and the
                # client's delayed ACK add ~40 ms to every keep-alive response
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                code, payload = api._dispatch(self.command, self.path, raw)
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle  # noqa: N815

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="fake-kube-api",
            daemon=True,
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeKubeAPI:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # --- test controls --------------------------------------------------------------------------

    def fail_next(self, method: str, kind: str, code: int, reason: str, message: str) -> None:
        """Make the next ``method`` request on ``kind`` answer with this error Status."""
        with self._lock:
            self._failures.setdefault((method, kind), []).append((code, reason, message))

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            obj = self.objects.get((kind, namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def names(self, kind: str, namespace: str) -> list[str]:
        with self._lock:
            return sorted(n for (k, ns, n) in self.objects if k == kind and ns == namespace)

    def requests_for(self, method: str, kind: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.kind == kind]

    def set_job_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        with self._lock:
            self.objects[("Job", namespace, name)]["status"] = copy.deepcopy(status)

    def add_pod(
        self,
        namespace: str,
        job_name: str,
        *,
        phase: str,
        waiting: tuple[str, str] | None = None,
        terminated: tuple[str, int, str] | None = None,
        unschedulable: str | None = None,
        reason: str | None = None,
    ) -> str:
        """A pod of ``job_name`` as the Job controller would create it, in the given state.

        ``waiting`` = (reason, message); ``terminated`` = (reason, exit code, message);
        ``unschedulable`` = the scheduler's message; ``reason`` = the pod-level reason (Evicted ...).
        """
        with self._lock:
            job = self.objects[("Job", namespace, job_name)]
            template = job["spec"]["template"]
            labels = {
                **template["metadata"].get("labels", {}),
                "batch.kubernetes.io/job-name": job_name,
                "job-name": job_name,
                "batch.kubernetes.io/controller-uid": job["metadata"]["uid"],
            }
            name = f"{job_name}-{uuid.uuid4().hex[:5]}"
            containers = template["spec"]["containers"]
            if terminated:
                state: dict[str, Any] = {
                    "terminated": {
                        "reason": terminated[0],
                        "exitCode": terminated[1],
                        "message": terminated[2],
                    }
                }
            elif waiting:
                state = {"waiting": {"reason": waiting[0], "message": waiting[1]}}
            elif phase == "Running":
                state = {"running": {"startedAt": self._now()}}
            else:
                state = {"waiting": {"reason": "ContainerCreating"}}
            conditions = []
            if unschedulable:
                conditions.append(
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": unschedulable,
                    }
                )
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "labels": labels,
                    "uid": str(uuid.uuid4()),
                    "creationTimestamp": self._now(),
                    "resourceVersion": self._next_rv(),
                    "ownerReferences": [
                        {
                            "apiVersion": "batch/v1",
                            "kind": "Job",
                            "name": job_name,
                            "uid": job["metadata"]["uid"],
                            "controller": True,
                        }
                    ],
                },
                "spec": {
                    "containers": [{"name": c["name"], "image": c["image"]} for c in containers],
                    "restartPolicy": "Never",
                },
                "status": {
                    "phase": phase,
                    "conditions": conditions,
                    "containerStatuses": []
                    if unschedulable
                    else [
                        {
                            "name": c["name"],
                            "image": c["image"],
                            "imageID": "",
                            "ready": phase == "Running",
                            "restartCount": 0,
                            "state": state,
                        }
                        for c in containers
                    ],
                },
            }
            if reason:
                pod["status"]["reason"] = reason
            self.objects[("Pod", namespace, name)] = pod
            return name

    # --- the API --------------------------------------------------------------------------------

    def _now(self) -> str:
        # strictly increasing, so "newest" is well defined without sleeping
        self._clock += 1
        return (self._t0 + timedelta(seconds=self._clock)).strftime("%Y-%m-%dT%H:%M:%SZ")

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _dispatch(self, method: str, raw_path: str, raw: bytes) -> tuple[int, dict[str, Any]]:
        parts = urlsplit(raw_path)
        query = parse_qs(parts.query)
        body = json.loads(raw) if raw else None
        for pattern, kind in _ROUTES:
            m = pattern.match(parts.path)
            if m:
                rec = Recorded(method, parts.path, query, body, kind, m["ns"], m["name"])
                with self._lock:
                    self.requests.append(rec)
                    queued = self._failures.get((method, kind))
                    if queued:
                        code, reason, message = queued.pop(0)
                        return code, _status(code, reason, message)
                    return self._serve(rec)
        rec = Recorded(method, parts.path, query, body, None, None, None)
        with self._lock:
            self.requests.append(rec)
            self.unexpected.append(rec)
        return 404, _status(404, "NotFound", f"the server could not find the requested resource {parts.path}")

    def _serve(self, rec: Recorded) -> tuple[int, dict[str, Any]]:
        kind, ns, name = rec.kind, rec.namespace, rec.name
        assert kind is not None and ns is not None
        key = (kind, ns, name or "")
        if rec.method == "GET" and name is None:
            selector = (rec.query.get("labelSelector") or [None])[0]
            items = [
                copy.deepcopy(o)
                for (k, n, _), o in sorted(self.objects.items())
                if k == kind and n == ns and _matches(o["metadata"].get("labels") or {}, selector)
            ]
            return 200, {
                "kind": f"{kind}List",
                "apiVersion": _API_VERSION[kind],
                "metadata": {"resourceVersion": str(self._rv)},
                "items": items,
            }
        if rec.method == "POST" and name is None:
            obj = copy.deepcopy(rec.body or {})
            meta = obj.setdefault("metadata", {})
            obj_name = meta.get("name")
            if not obj_name:
                return 422, _status(422, "Invalid", "metadata.name: Required value")
            if obj.get("kind") != kind:
                return 400, _status(400, "BadRequest", f"expected kind {kind}, got {obj.get('kind')}")
            if meta.get("namespace", ns) != ns:
                return 400, _status(400, "BadRequest", "the namespace of the object does not match")
            if (kind, ns, obj_name) in self.objects:
                return 409, _status(409, "AlreadyExists", f'{_RESOURCE[kind]} "{obj_name}" already exists')
            meta.update(
                namespace=ns,
                uid=str(uuid.uuid4()),
                creationTimestamp=self._now(),
                resourceVersion=self._next_rv(),
            )
            if kind == "Secret":
                self._fold_string_data(obj)
            if kind == "Job":
                obj["status"] = {}
            self.objects[(kind, ns, obj_name)] = obj
            return 201, copy.deepcopy(obj)
        if name is None:
            return 405, _status(405, "MethodNotAllowed", f"{rec.method} on a collection")
        current = self.objects.get(key)
        if current is None:
            return 404, _status(404, "NotFound", f'{_RESOURCE[kind]} "{name}" not found')
        if rec.method == "GET":
            return 200, copy.deepcopy(current)
        if rec.method == "PUT":
            obj = copy.deepcopy(rec.body or {})
            rv = (obj.get("metadata") or {}).get("resourceVersion")
            if rv and rv != current["metadata"]["resourceVersion"]:
                return 409, _status(
                    409,
                    "Conflict",
                    "the object has been modified; please apply your "
                    "changes to the latest version and try again",
                )
            for field in ("uid", "creationTimestamp", "namespace"):
                obj["metadata"][field] = current["metadata"][field]
            obj["metadata"]["resourceVersion"] = self._next_rv()
            if kind == "Secret":
                data = {} if obj.get("data") is None else obj["data"]
                obj["data"] = data
                self._fold_string_data(obj)
            self.objects[key] = obj
            return 200, copy.deepcopy(obj)
        if rec.method == "DELETE":
            del self.objects[key]
            if kind == "Job":  # foreground or background, the Job's pods go too
                for k in [
                    k
                    for k, o in self.objects.items()
                    if k[0] == "Pod"
                    and k[1] == ns
                    and (o["metadata"].get("labels") or {}).get("job-name") == name
                ]:
                    del self.objects[k]
            return 200, {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {
                    "name": name,
                    "group": "batch" if kind == "Job" else "",
                    "kind": _RESOURCE[kind],
                    "uid": current["metadata"]["uid"],
                },
            }
        return 405, _status(405, "MethodNotAllowed", rec.method)

    @staticmethod
    def _fold_string_data(secret: dict[str, Any]) -> None:
        string_data = secret.pop("stringData", None) or {}
        data = secret.setdefault("data", {}) or {}
        for k, v in string_data.items():
            data[k] = base64.b64encode(v.encode()).decode()
        secret["data"] = data
