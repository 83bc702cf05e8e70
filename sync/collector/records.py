"""Scan records on the wire: decoding a gate's upload and checking every field's type.

A batch is ``{"records": [...]}``; each record carries the gate's scan log fields with byte
strings in hex (``kid``, ``cti``, ``prev_hash``, ``hash``) and ``data`` as the JSON text the
gate stored. Anything else is refused with a :class:`PayloadError` that names the record and
the field, so a broken agent learns what to fix and the collector never stores a guess.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import zlib
from collections.abc import Mapping
from typing import Any

from gate.scanlog import CHAINED_FIELDS, record_hash

MAX_COMPRESSED_BYTES = 4 * 1024 * 1024
MAX_DECOMPRESSED_BYTES = 16 * 1024 * 1024
MAX_RECORDS = 1000
HASH_SIZE = 32
MAX_ID_BYTES = 64  # kid and cti: far above what a GT1 ticket carries, bounded all the same
INT64_MAX = (1 << 63) - 1

WIRE_FIELDS = (*CHAINED_FIELDS, "prev_hash", "hash")
HEX_FIELDS = ("kid", "cti", "prev_hash", "hash")
TEXT_FIELDS = ("source", "decision", "reason", "detail", "data")
_HEX = re.compile(r"[0-9a-fA-F]*")


class PayloadError(ValueError):
    """A request body the collector refuses; ``message`` is safe to return to the caller."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def decode_body(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    """The body as sent, un-gzipped when it says so, never more than ``limit`` bytes.

    Decompression is bounded: a gzip bomb stops at ``limit + 1`` bytes of output.
    """
    encoding = (content_encoding or "identity").strip().lower()
    if encoding == "identity":
        if len(body) > limit:
            raise PayloadError(f"body is over {limit} bytes", 413)
        return body
    if encoding not in ("gzip", "x-gzip"):
        raise PayloadError(f"Content-Encoding {encoding!r} is not supported: gzip or identity", 415)
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        plain = inflater.decompress(body, limit + 1)
    except zlib.error as err:
        raise PayloadError(f"body is not valid gzip: {err}") from err
    if len(plain) > limit:
        raise PayloadError(f"body is over {limit} bytes once decompressed", 413)
    if not inflater.eof:
        raise PayloadError("body is not valid gzip: the stream is truncated")
    if inflater.unused_data:
        raise PayloadError("body is not valid gzip: data after the end of the stream")
    return plain


def _no_constants(name: str) -> Any:
    raise PayloadError(f"JSON constant {name} is not allowed")


def parse_json(body: bytes) -> Any:
    """Strict JSON: UTF-8 only, no NaN or Infinity, bounded nesting."""
    try:
        text = body.decode("utf-8")
        return json.loads(text, parse_constant=_no_constants)
    except PayloadError:
        raise
    except UnicodeDecodeError as err:
        raise PayloadError("body is not UTF-8 text") from err
    except RecursionError as err:
        raise PayloadError("body is not valid JSON: nested too deeply") from err
    except ValueError as err:  # JSONDecodeError, and integers beyond Python's digit limit
        raise PayloadError(f"body is not valid JSON: {err}") from err


def is_number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and abs(value) <= INT64_MAX
    )


def is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= INT64_MAX


def check_text(value: Any, where: str) -> str:
    """A string both databases can store: valid UTF-8 and no NUL character."""
    if not isinstance(value, str):
        raise PayloadError(f"{where} must be a string or null")
    if "\x00" in value:
        raise PayloadError(f"{where} contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise PayloadError(f"{where} is not valid Unicode (lone surrogate)") from err
    return value


def _hex(value: Any, where: str, size: int | None, limit: int = MAX_ID_BYTES) -> bytes:
    if not isinstance(value, str) or len(value) % 2 or not _HEX.fullmatch(value):
        raise PayloadError(f"{where} must be an even number of hex digits")
    raw = bytes.fromhex(value)
    if size is not None and len(raw) != size:
        raise PayloadError(f"{where} must be {size} bytes ({2 * size} hex digits)")
    if len(raw) > limit:
        raise PayloadError(f"{where} is over {limit} bytes")
    return raw


def parse_record(item: Any, number: int) -> dict[str, Any]:
    """One wire record as the gate hashed it: byte strings back to bytes, types checked."""
    if not isinstance(item, Mapping):
        raise PayloadError(f"record #{number} is not a JSON object")
    unknown = sorted(set(item) - set(WIRE_FIELDS))
    if unknown:
        raise PayloadError(f"record #{number}: unknown fields {unknown}")
    seq = item.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or not 1 <= seq <= INT64_MAX:
        raise PayloadError(f"record #{number}: seq must be a whole number 1 to 2^63-1")
    where = f"record {seq}"
    record: dict[str, Any] = {"seq": seq}
    if not is_number(item.get("at")):
        raise PayloadError(f"{where}: at must be a finite number (Unix seconds)")
    record["at"] = item["at"]
    kind = item.get("kind")
    if not isinstance(kind, str) or not kind:
        raise PayloadError(f"{where}: kind must be a non-empty string")
    record["kind"] = check_text(kind, f"{where}: kind")
    for name in TEXT_FIELDS:
        value = item.get(name)
        record[name] = None if value is None else check_text(value, f"{where}: {name}")
    for name in ("kid", "cti"):
        value = item.get(name)
        record[name] = None if value is None else _hex(value, f"{where}: {name}", None)
    admission_seq = item.get("admission_seq")
    if admission_seq is not None and not (
        isinstance(admission_seq, int)
        and not isinstance(admission_seq, bool)
        and abs(admission_seq) <= INT64_MAX
    ):
        raise PayloadError(f"{where}: admission_seq must be a whole number or null")
    record["admission_seq"] = admission_seq
    latency = item.get("latency_ms")
    if latency is not None and not is_number(latency):
        raise PayloadError(f"{where}: latency_ms must be a finite number or null")
    record["latency_ms"] = latency
    for name in ("prev_hash", "hash"):
        if item.get(name) is None:
            raise PayloadError(f"{where}: {name} is required")
        record[name] = _hex(item[name], f"{where}: {name}", HASH_SIZE)
    return record


def parse_batch(body: bytes) -> list[dict[str, Any]]:
    """The records of an upload, in order and consecutive, each field checked."""
    payload = parse_json(body)
    if not isinstance(payload, Mapping) or not isinstance(payload.get("records"), list):
        raise PayloadError('body must be a JSON object {"records": [...]}')
    items = payload["records"]
    if len(items) > MAX_RECORDS:
        raise PayloadError(f"{len(items)} records in one batch; at most {MAX_RECORDS}", 413)
    records = [parse_record(item, number) for number, item in enumerate(items, 1)]
    for before, after in itertools.pairwise(records):
        if after["seq"] != before["seq"] + 1:
            raise PayloadError(
                f"records must have consecutive seq numbers: {after['seq']} follows {before['seq']}"
            )
    return records


def content_matches_hash(record: Mapping[str, Any]) -> bool:
    """Whether the record's hash is what its own prev_hash and fields give (gate/scanlog.py)."""
    return record_hash(record["prev_hash"], record) == record["hash"]


def to_wire(record: Mapping[str, Any]) -> dict[str, Any]:
    """A stored record in the wire form: byte strings as hex."""
    return {
        name: bytes(value).hex() if name in HEX_FIELDS and value is not None else value
        for name, value in record.items()
    }
