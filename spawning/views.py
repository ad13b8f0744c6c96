"""The hub API: what JupyterHub calls to draw the spawn form, provision a notebook and clean up after it."""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from optionsportal.logs import bind_user
from spawning import schema  # noqa: F401 - registers the schema extensions (token scheme, overrides)
from spawning.reply_cache import CachedReply
from spawning.selectors import options_document
from spawning.serializers import (
    ErrorSerializer,
    OptionsInputSerializer,
    OptionsOutputSerializer,
    PoststopInputSerializer,
    PoststopOutputSerializer,
    PrespawnInputSerializer,
    PrespawnOutputSerializer,
)
from spawning.services import poststop_clean, prespawn_dry_run, prespawn_provision

_ERRORS = {
    400: OpenApiResponse(
        ErrorSerializer,
        description=(
            "Missing fields or choices the user may not make, every one named in `fields` (nested ones as "
            "`groups.1`); or more than 1,000 form fields (`too_many_fields`)"
        ),
    ),
    401: OpenApiResponse(ErrorSerializer, description="No or a wrong hub token"),
    413: OpenApiResponse(ErrorSerializer, description="The body is larger than the portal accepts (`too_large`)"),
}
_DATABASE_DOWN = "; or the portal's database is unavailable (`database_unavailable`)"


class OptionsView(APIView):
    """``POST /options``: the spawn form for one user's server, with only what they may use."""

    @extend_schema(
        request=OptionsInputSerializer,
        responses={
            200: OptionsOutputSerializer,
            **_ERRORS,
            503: OpenApiResponse(ErrorSerializer, description="The portal's database is unavailable; retrying is safe"),
        },
        summary="Draw the spawn form",
        operation_id="options",
    )
    def post(self, request: Request) -> HttpResponse:
        serializer = OptionsInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        values = serializer.validated_data
        bind_user(values["username"])
        reply = options_document(
            username=values["username"],
            server_name=values["server_name"],
            groups=values["groups"],
            default_namespace=values["default_namespace"],
        )
        return json_response(reply, request)


def json_response(reply: CachedReply, request: Request) -> HttpResponse:
    """The reply's bytes as they are, gzipped when the client accepts it (JupyterHub's client does)."""
    if "gzip" in request.META.get("HTTP_ACCEPT_ENCODING", ""):
        response = HttpResponse(reply.gzipped, content_type="application/json")
        response["Content-Encoding"] = "gzip"
    else:
        response = HttpResponse(reply.body, content_type="application/json")
    response["Vary"] = "Accept-Encoding"
    return response


class PrespawnView(APIView):
    """``POST /prespawn``: validate the submitted form, create the notebook's objects, return the overrides."""

    @extend_schema(
        request=PrespawnInputSerializer,
        responses={
            200: PrespawnOutputSerializer,
            **_ERRORS,
            502: OpenApiResponse(
                ErrorSerializer, description="The cluster rejected the configuration; an operator must fix it"
            ),
            503: OpenApiResponse(
                ErrorSerializer, description="The Kubernetes API failed" + _DATABASE_DOWN + "; retrying is safe"
            ),
        },
        summary="Validate and provision a spawn",
        operation_id="prespawn",
    )
    def post(self, request: Request) -> Response:
        serializer = PrespawnInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        values = serializer.validated_data
        bind_user(values["username"])
        spawn = prespawn_dry_run if values["dry_run"] else prespawn_provision
        reply = spawn(
            username=values["username"],
            server_name=values["server_name"],
            pod_name=values["pod_name"],
            default_namespace=values["default_namespace"],
            profile=values["profile"],
            user_options=values["user_options"],
            groups=values["groups"],
            reply_version=values["reply_version"],
        )
        return Response(reply)


class PoststopView(APIView):
    """``POST /poststop``: the notebook stopped; delete what /prespawn made for it."""

    @extend_schema(
        request=PoststopInputSerializer,
        responses={
            200: PoststopOutputSerializer,
            **_ERRORS,
            502: OpenApiResponse(
                ErrorSerializer, description="The cluster rejected the configuration; an operator must fix it"
            ),
            503: OpenApiResponse(
                ErrorSerializer, description="The Kubernetes API failed" + _DATABASE_DOWN + "; retrying is safe"
            ),
        },
        summary="Clean up after a stopped notebook",
        operation_id="poststop",
    )
    def post(self, request: Request) -> Response:
        serializer = PoststopInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        values = serializer.validated_data
        bind_user(values["username"])
        deleted = poststop_clean(
            username=values["username"],
            server_name=values["server_name"],
            pod_name=values["pod_name"],
            groups=values["groups"],
        )
        return Response({"deleted": deleted})
