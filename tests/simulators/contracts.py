"""Read one provider's vendored wire contract: example requests, answers, transcripts, schemas.

Everything a simulator serves comes from `tests/contracts/<provider>/`; this module only loads
and slices those files, it never invents content.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from referencing import Registry
from referencing.jsonschema import DRAFT202012

CONTRACTS_DIR = Path(__file__).resolve().parent.parent / "contracts"

# SSE events end with a blank line; Gemini writes CRLF, everyone else LF.
SSE_FRAME_END = re.compile(rb"\r\n\r\n|\n\n")
NDJSON_FRAME_END = re.compile(rb"\n")
# Gemini's non-SSE stream is one JSON array whose elements are separated by ",\r\n".
JSON_ARRAY_FRAME_END = re.compile(rb",\r\n")


def split_frames(data: bytes, frame_end: re.Pattern[bytes] = SSE_FRAME_END) -> list[bytes]:
    """Cut a byte-exact transcript into frames; joining the frames gives `data` back."""
    frames: list[bytes] = []
    start = 0
    for match in frame_end.finditer(data):
        frames.append(data[start:match.end()])
        start = match.end()
    if start < len(data):
        frames.append(data[start:])
    return frames


def sse_payloads(data: bytes) -> list[tuple[str | None, str]]:
    """Decode an SSE transcript into (event name, joined data) pairs, for tests and rendering."""
    events: list[tuple[str | None, str]] = []
    for frame in split_frames(data):
        name: str | None = None
        lines: list[str] = []
        for line in frame.decode().splitlines():
            if line.startswith("event:"):
                name = line[len("event:"):].strip()
            elif line.startswith("data:"):
                lines.append(line[len("data:"):].lstrip(" "))
        if lines:
            events.append((name, "\n".join(lines)))
    return events


@dataclass(frozen=True)
class Example:
    """One entry of requests.json or responses.json."""

    name: str
    raw: Mapping[str, Any]

    @property
    def body(self) -> Any:
        """A fresh copy of the example body, safe to mutate."""
        return copy.deepcopy(self.raw.get("body"))

    @property
    def status(self) -> int:
        """The HTTP status of a response example."""
        return int(self.raw.get("status", 200))

    @property
    def headers(self) -> dict[str, str]:
        """The example's headers, names lower-cased."""
        return {k.lower(): str(v) for k, v in (self.raw.get("headers") or {}).items()}


class Contract:
    """The contract files of one provider directory, loaded once and cached."""

    def __init__(self, directory: str) -> None:
        self.directory = CONTRACTS_DIR / directory
        self.requests = self._examples("requests.json")
        self.responses = self._examples("responses.json")

    def _examples(self, file_name: str) -> dict[str, Example]:
        doc = json.loads((self.directory / file_name).read_text())
        return {e["name"]: Example(e["name"], e) for e in doc["examples"]}

    def response(self, name: str) -> Example:
        """The response example called `name`."""
        return self.responses[name]

    def request(self, name: str) -> Example:
        """The request example called `name`."""
        return self.requests[name]

    def transcript(self, file_name: str) -> bytes:
        """A stream transcript, byte for byte."""
        return _read_bytes(str(self.directory / file_name))

    def errors(self, status: int, prefix: str = "error") -> list[Example]:
        """Error examples answering with `status`, in file order."""
        return [e for e in self.responses.values()
                if e.name.startswith(prefix) and e.status == status]

    def any_error(self, prefix: str = "error") -> Example:
        """Some error example, used as a shape template for statuses the contract lacks."""
        errors = [e for e in self.responses.values() if e.name.startswith(prefix)]
        return next((e for e in errors if e.status >= 500), errors[-1])

    def json_schema(self, file_name: str, ref: str) -> jsonschema.Draft202012Validator:
        """A validator for `ref` (e.g. '#/$defs/X') inside a JSON or OpenAPI YAML document."""
        return _validator(str(self.directory / file_name), ref)

    def document(self, file_name: str) -> Any:
        """A parsed JSON or YAML contract document."""
        return copy.deepcopy(_document(str(self.directory / file_name)))


@functools.cache
def _read_bytes(path: str) -> bytes:
    return Path(path).read_bytes()


@functools.cache
def _document(path: str) -> Any:
    text = Path(path).read_text()
    return json.loads(text) if path.endswith(".json") else yaml.safe_load(text)


@functools.cache
def _validator(path: str, ref: str) -> jsonschema.Draft202012Validator:
    # The document is registered whole so that its internal "#/..." references resolve,
    # whatever else (OpenAPI paths, model metadata) sits at its top level.
    uri = "urn:contract:" + Path(path).name
    registry: Registry[Any] = Registry().with_resource(
        uri, DRAFT202012.create_resource(_document(path)))
    return jsonschema.Draft202012Validator({"$ref": uri + ref}, registry=registry)


def first_violation(validator: jsonschema.Draft202012Validator,
                    body: Any) -> tuple[str, str] | None:
    """The most relevant schema violation as (dotted path, message), or None when valid."""
    error = jsonschema.exceptions.best_match(validator.iter_errors(body))
    if error is None:
        return None
    return ".".join(str(p) for p in error.absolute_path), error.message


def describe(violation: tuple[str, str]) -> str:
    """A violation as one human-readable line."""
    where, message = violation
    return f"{where}: {message}" if where else message
