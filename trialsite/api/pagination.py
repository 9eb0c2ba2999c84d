"""Pagination of every list endpoint: {"results": [...], "next": url|null} as in API.md."""

from __future__ import annotations

from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response

_BIGINT_LIMIT = 2**63 - 1 - 1000  # room for offset + limit + 1


class ResultsPagination(LimitOffsetPagination):
    """{"results": [...], "next": url|null} as in API.md.

    One query per page, no COUNT: the page is read with one row more than the limit, and that row's presence is
    what `next` needs (the contract has no total). `limit` and `offset` as in DRF's LimitOffsetPagination.
    """

    default_limit = 50
    max_limit = 200

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        self.limit = self.get_limit(request)
        self.offset = self.get_offset(request)
        # PostgreSQL's OFFSET is a bigint: past it there are no rows (and no query to fail).
        rows = list(queryset[self.offset : self.offset + self.limit + 1]) if self.offset < _BIGINT_LIMIT else []
        # What get_next_link compares with: a next page exactly when the extra row came back.
        self.count = self.offset + len(rows)
        return rows[: self.limit]

    def get_paginated_response(self, data):
        return Response({"results": data, "next": self.get_next_link()})

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["results", "next"],
            "properties": {"results": schema, "next": {"type": "string", "nullable": True, "format": "uri"}},
        }
