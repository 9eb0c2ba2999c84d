"""JSON parsing for the API: PostgreSQL text cannot hold NUL characters, so a body containing one is bad
input (400), caught here before it can reach the database as a 500."""

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


def contains_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(contains_nul(k) or contains_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(contains_nul(v) for v in value)
    return False


class StrictJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        if contains_nul(data):
            raise ParseError("Text may not contain NUL (\\u0000) characters.")
        return data
