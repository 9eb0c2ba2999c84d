"""Pagination of every list endpoint: {"results": [...], "next": url|null} as in API.md."""

from __future__ import annotations

from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response


class ResultsPagination(LimitOffsetPagination):
    """{"results": [...], "next": url|null} as in API.md."""

    default_limit = 50
    max_limit = 200

    def get_paginated_response(self, data):
        return Response({"results": data, "next": self.get_next_link()})

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["results", "next"],
            "properties": {"results": schema, "next": {"type": "string", "nullable": True, "format": "uri"}},
        }
