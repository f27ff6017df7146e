"""The JSON every API endpoint accepts: DRF's parser with `loupe.jsonchecks`' limits (depth, finite
numbers, storable strings), so a bad body is a 400 naming where it is wrong, never a 500, for every
endpoint, the anonymous crowd ones included."""

from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from loupe.jsonchecks import json_loads_checked


class CheckedJSONParser(JSONParser):
    """DRF's JSONParser with `json_loads_checked`'s limits: every refusal is a 400 saying what and where."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict | None = None) -> Any:
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", "utf-8")
        try:
            return json_loads_checked(stream.read().decode(encoding))
        except (ValueError, UnicodeDecodeError) as error:
            raise ParseError(f"JSON parse error - {error}") from error
