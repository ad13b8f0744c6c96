"""Server-side apply, reads, lists and deletes for the objects /prespawn makes.

Everything here takes and returns plain data. Calls for several objects run side
by side (``kube.concurrent``), so a /prespawn that makes eight objects costs about
one apiserver round trip, not eight. Replies are read as raw JSON
(``_preload_content=False``): the objects are handed on as dicts, and it skips the
client's strict model parsing, which is both slow and fussy about fields.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from django.conf import settings
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kube.client import KubeError, KubeNotFound, api_client, request_timeout, translate
from kube.concurrent import run_all, run_settled

CONFIG_MAP = "ConfigMap"
SECRET = "Secret"  # noqa: S105 - a kind name, not a password
SERVICE = "Service"
INGRESS = "Ingress"
# What /prespawn may make, and so what cleanup looks through.
KINDS: tuple[str, ...] = (CONFIG_MAP, SECRET, SERVICE, INGRESS)

_APPLY_CONTENT_TYPE = "application/apply-patch+yaml"
_APPLY_ATTEMPTS = 5


@dataclass(frozen=True, order=True)
class ObjectRef:
    """Which object: enough to find it again, to record it and to delete it."""

    kind: str
    namespace: str
    name: str

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "namespace": self.namespace, "name": self.name}


@dataclass(frozen=True)
class AppliedObject:
    """The outcome of one apply; ``created`` is true when the object did not exist before (HTTP 201)."""

    ref: ObjectRef
    created: bool
    body: Mapping[str, Any]


@dataclass(frozen=True)
class ApplyOutcome:
    """What a batch of applies did: the ones that worked and the ones that did not."""

    applied: list[AppliedObject]
    failed: list[tuple[ObjectRef, KubeError]]


@dataclass(frozen=True)
class ConfigSource:
    """A ConfigMap's or Secret's payload, as stored (Secret data stays base64)."""

    ref: ObjectRef
    data: Mapping[str, str]
    binary_data: Mapping[str, str] = field(default_factory=dict)
    secret_type: str = ""


@dataclass(frozen=True)
class LabelledObject:
    """An object found by label selector, with what cleanup decides on."""

    ref: ObjectRef
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    created_at: str


@dataclass(frozen=True)
class PodInfo:
    """A pod found by label selector."""

    namespace: str
    name: str
    labels: Mapping[str, str]


@dataclass(frozen=True)
class _KindApi:
    api: Callable[[client.ApiClient], Any]
    suffix: str  # the typed client's method suffix: read_namespaced_<suffix>, …
    list_all: str
    path: str  # one object's URL, for apply (see _apply_request)


_KIND_APIS: dict[str, _KindApi] = {
    CONFIG_MAP: _KindApi(
        client.CoreV1Api,
        "config_map",
        "list_config_map_for_all_namespaces",
        "/api/v1/namespaces/{namespace}/configmaps/{name}",
    ),
    SECRET: _KindApi(
        client.CoreV1Api, "secret", "list_secret_for_all_namespaces", "/api/v1/namespaces/{namespace}/secrets/{name}"
    ),
    SERVICE: _KindApi(
        client.CoreV1Api, "service", "list_service_for_all_namespaces", "/api/v1/namespaces/{namespace}/services/{name}"
    ),
    INGRESS: _KindApi(
        client.NetworkingV1Api,
        "ingress",
        "list_ingress_for_all_namespaces",
        "/apis/networking.k8s.io/v1/namespaces/{namespace}/ingresses/{name}",
    ),
}


def _kind_api(kind: str) -> tuple[_KindApi, Any]:
    try:
        spec = _KIND_APIS[kind]
    except KeyError:
        raise KubeError(f"{kind} is not a kind the portal manages") from None
    return spec, spec.api(api_client())


def _json(response: Any) -> Any:
    return json.loads(response.data or b"null")


def ref_of(manifest: Mapping[str, Any]) -> ObjectRef:
    metadata = manifest["metadata"]
    return ObjectRef(kind=manifest["kind"], namespace=metadata["namespace"], name=metadata["name"])


def _apply_body(manifest: Mapping[str, Any]) -> bytes:
    """The manifest as UTF-8 JSON, which is also YAML, the apply content type.

    The typed client would ``json.dumps`` it with every character outside the BMP
    (an emoji in a username or a Gaffer schema) escaped as a surrogate pair,
    ``"\\ud83d\\ude00"``, which the apiserver's YAML parser refuses ("found invalid
    Unicode character escape code"); raw UTF-8 it reads as it is.
    """
    return json.dumps(manifest, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _apply_request(ref: ObjectRef, body: bytes, *, dry_run: bool) -> tuple[int, Any]:
    """One server-side apply PATCH; (HTTP status, the object as the apiserver returned it).

    Through the client's request layer rather than its typed method, which accepts only
    a dict body and serializes it itself (see ``_apply_body``).
    """
    spec, _ = _kind_api(ref.kind)
    api = api_client()
    request = api.param_serialize(
        method="PATCH",
        resource_path=spec.path,
        path_params={"namespace": ref.namespace, "name": ref.name},
        query_params=[
            ("fieldManager", settings.KUBE_FIELD_MANAGER),
            ("force", True),
            *([("dryRun", "All")] if dry_run else []),
        ],
        header_params={"Content-Type": _APPLY_CONTENT_TYPE, "Accept": "application/json"},
        body=body,
        auth_settings=["BearerToken"],
    )
    response = api.call_api(*request, _request_timeout=request_timeout())
    response.read()
    if not 200 <= response.status <= 299:
        raise ApiException.from_response(http_resp=response, body=None, data=None)
    return response.status, _json(response)


def apply_object(manifest: Mapping[str, Any], *, dry_run: bool = False) -> AppliedObject:
    """Create or update one object with server-side apply under our field manager.

    ``dry_run`` asks the apiserver to run everything but the write (``dryRun=All``):
    admission, schema and name checks answer as for a real apply, and nothing is stored.
    """
    ref = ref_of(manifest)
    body = _apply_body(manifest)
    attempts = 0
    while True:
        attempts += 1
        try:
            status, applied = _apply_request(ref, body, dry_run=dry_run)
        except Exception as exc:
            error = translate(exc, f"applying {ref.kind} {ref.namespace}/{ref.name}")
            # With force=True there are no field-ownership conflicts: a 409 means another
            # apply of the same object won the race (1.20 answers so for Services), and
            # applying again on top of it is safe and converges.
            if error.status == 409 and attempts < _APPLY_ATTEMPTS:
                continue
            raise error from exc
        return AppliedObject(ref=ref, created=status == 201, body=applied)


def apply_objects(manifests: Sequence[Mapping[str, Any]]) -> ApplyOutcome:
    """Apply every manifest concurrently; never raises, reports per object instead."""
    results = run_settled([partial(apply_object, manifest) for manifest in manifests])
    applied: list[AppliedObject] = []
    failed: list[tuple[ObjectRef, KubeError]] = []
    for manifest, result in zip(manifests, results, strict=True):
        if isinstance(result, KubeError):
            failed.append((ref_of(manifest), result))
        else:
            applied.append(result)
    return ApplyOutcome(applied=applied, failed=failed)


def read_config_source(ref: ObjectRef) -> ConfigSource:
    """A ConfigMap's or Secret's data; KubeNotFound when it is gone."""
    if ref.kind not in (CONFIG_MAP, SECRET):
        raise KubeError(f"only ConfigMaps and Secrets hold files, not {ref.kind}")
    spec, api = _kind_api(ref.kind)
    read = getattr(api, f"read_namespaced_{spec.suffix}")
    try:
        body = _json(read(ref.name, ref.namespace, _preload_content=False, _request_timeout=request_timeout()))
    except Exception as exc:
        raise translate(exc, f"reading {ref.kind} {ref.namespace}/{ref.name}") from exc
    return ConfigSource(
        ref=ref,
        data=dict(body.get("data") or {}),
        binary_data=dict(body.get("binaryData") or {}),
        secret_type=str(body.get("type") or ""),
    )


def read_config_sources(refs: Sequence[ObjectRef]) -> list[ConfigSource]:
    """Read several ConfigMaps/Secrets side by side; raises the most serious error."""
    return run_all([partial(read_config_source, ref) for ref in refs])


def read_object(ref: ObjectRef) -> dict[str, Any] | None:
    """One object as stored now, or None when it does not exist.

    A LIST by name rather than a GET, so the portal's role needs no more than "list"
    (it has no "get" on Ingresses). With no resourceVersion it is a quorum read, and
    the apiserver answers a name field selector with a single-key read, not a scan.
    """
    spec, api = _kind_api(ref.kind)
    list_namespaced = getattr(api, f"list_namespaced_{spec.suffix}")
    try:
        body = _json(
            list_namespaced(
                ref.namespace,
                field_selector=f"metadata.name={ref.name}",
                _preload_content=False,
                _request_timeout=request_timeout(),
            )
        )
    except Exception as exc:
        error = translate(exc, f"reading {ref.kind} {ref.namespace}/{ref.name}")
        if isinstance(error, KubeNotFound):
            return None
        raise error from exc
    items = body.get("items") or []
    return dict(items[0]) if items else None


def list_labelled(selector: str, kinds: Iterable[str] = KINDS) -> list[LabelledObject]:
    """Objects of the given kinds in every namespace matching a label selector; one call per kind."""
    listings = run_all([partial(list_kind, kind, selector) for kind in kinds])
    return [found for listed in listings for found in listed]


def list_kind(kind: str, selector: str, *, cached: bool = False) -> list[LabelledObject]:
    """Our objects of one kind, in every namespace.

    ``cached`` answers from the apiserver's watch cache (resourceVersion "0"): no
    etcd read, and flat as the cluster grows, but it may miss a change made a
    moment ago. Only callers that also know those changes another way use it.
    """
    spec, api = _kind_api(kind)
    extra: dict[str, Any] = {"resource_version": "0"} if cached else {}
    try:
        body = _json(
            getattr(api, spec.list_all)(
                label_selector=selector, _preload_content=False, _request_timeout=request_timeout(), **extra
            )
        )
    except Exception as exc:
        raise translate(exc, f"listing {kind}s labelled {selector}") from exc
    objects = []
    for item in body.get("items") or []:
        metadata = item.get("metadata") or {}
        objects.append(
            LabelledObject(
                ref=ObjectRef(kind=kind, namespace=metadata.get("namespace", ""), name=metadata.get("name", "")),
                labels=dict(metadata.get("labels") or {}),
                annotations=dict(metadata.get("annotations") or {}),
                created_at=str(metadata.get("creationTimestamp") or ""),
            )
        )
    return objects


def delete_object(ref: ObjectRef) -> bool:
    """Delete one object; False when it was already gone."""
    spec, api = _kind_api(ref.kind)
    delete = getattr(api, f"delete_namespaced_{spec.suffix}")
    try:
        delete(ref.name, ref.namespace, _preload_content=False, _request_timeout=request_timeout())
    except Exception as exc:
        error = translate(exc, f"deleting {ref.kind} {ref.namespace}/{ref.name}")
        if isinstance(error, KubeNotFound):
            return False
        raise error from exc
    return True


def delete_objects(refs: Sequence[ObjectRef]) -> tuple[list[ObjectRef], list[tuple[ObjectRef, KubeError]]]:
    """Delete concurrently; returns (deleted or already gone, failures)."""
    results = run_settled([partial(delete_object, ref) for ref in refs])
    done: list[ObjectRef] = []
    failed: list[tuple[ObjectRef, KubeError]] = []
    for ref, result in zip(refs, results, strict=True):
        if isinstance(result, KubeError):
            failed.append((ref, result))
        else:
            done.append(ref)
    return done, failed


def list_pods(selector: str) -> list[PodInfo]:
    """Pods in every namespace matching a label selector."""
    api = client.CoreV1Api(api_client())
    try:
        body = _json(
            api.list_pod_for_all_namespaces(
                label_selector=selector, _preload_content=False, _request_timeout=request_timeout()
            )
        )
    except Exception as exc:
        raise translate(exc, f"listing pods labelled {selector}") from exc
    pods = []
    for item in body.get("items") or []:
        metadata = item.get("metadata") or {}
        pods.append(
            PodInfo(
                namespace=metadata.get("namespace", ""),
                name=metadata.get("name", ""),
                labels=dict(metadata.get("labels") or {}),
            )
        )
    return pods


def pods_exist(keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], bool]:
    """For each (namespace, pod name): does that pod exist? Looked up side by side.

    A LIST by name rather than a GET, so the portal's role needs no more than
    "list" on pods.
    """
    api = client.CoreV1Api(api_client())

    def exists(namespace: str, name: str) -> bool:
        try:
            body = _json(
                api.list_namespaced_pod(
                    namespace,
                    field_selector=f"metadata.name={name}",
                    _preload_content=False,
                    _request_timeout=request_timeout(),
                )
            )
        except Exception as exc:
            error = translate(exc, f"looking for pod {namespace}/{name}")
            if isinstance(error, KubeNotFound):
                return False
            raise error from exc
        return bool(body.get("items"))

    found = run_all([partial(exists, namespace, name) for namespace, name in keys])
    return dict(zip(keys, found, strict=True))
