"""REST API views of the chatbot app."""

from django.db import connection
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView


class MeView(APIView):
    """Who is calling: the tenant and the API key's name."""

    @extend_schema(
        responses=inline_serializer(
            "Me",
            {
                "tenant": inline_serializer(
                    "MeTenant", {"schema": serializers.CharField(), "name": serializers.CharField()}
                ),
                "key": inline_serializer(
                    "MeKey", {"name": serializers.CharField(), "prefix": serializers.CharField()}
                ),
            },
        )
    )
    def get(self, request: Request) -> Response:
        tenant = connection.tenant
        key = request.auth
        return Response(
            {
                "tenant": {"schema": tenant.schema_name, "name": tenant.name},
                "key": {"name": key.name, "prefix": key.prefix},
            }
        )
