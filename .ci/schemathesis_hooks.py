"""Schemathesis hooks for Faultline (loaded through SCHEMATHESIS_HOOKS by .ci/schemathesis.sh).

`application/x-ndjson` has no standard serializer: the OpenAPI document describes an NDJSON
upload as the array of its lines, and this sends each item as one JSON value on its own line.
"""

import json

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    items = value if isinstance(value, list) else [value]
    return "".join(json.dumps(item) + "\n" for item in items).encode("utf-8")


@schemathesis.deserializer("application/x-ndjson")
def ndjson_lines(ctx, response):
    """A streamed answer is validated as the array of its lines, as the document describes it."""
    text = response.content.decode("utf-8")
    return [json.loads(line) for line in text.split("\n") if line.strip()]
