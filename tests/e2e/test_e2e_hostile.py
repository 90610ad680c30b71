"""Hostile input, generated: every request here is invalid by construction and must be refused.

A refusal is a 4xx with a JSON `message` that names the problem, and nothing
written: no table row, no announcement. Hypothesis builds the requests (wrong
types, oversized, empty or malformed bodies, keys given twice, bad ids, odd
content types), so the refusals are checked far beyond the hand-picked cases
of test_e2e_requests.py.
Afterwards the same stack must still book a trip.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
from hypothesis import HealthCheck, event, example, given, note, settings
from hypothesis import strategies as st

from holiday.models import RunType
from holiday.planning import MAX_BODY_BYTES
from holiday_tools.devstack import LocalStack
from tests.support import Inbox, poll, row_count, statuses

BOOKED = {"flights": ["confirmed"], "cars": ["confirmed"], "payments": ["charged"]}
RUN_TYPES = [r.value for r in RunType]
TRIP_ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
STRING_LIMITS = {"depart_city": 64, "arrive_city": 64, "car_class": 32}
TIME_FIELDS = ["depart_at", "arrive_at", "rental_from", "rental_to"]
KNOWN_FIELDS = {"trip_id", "run_type", "amount", "currency", *STRING_LIMITS, *TIME_FIELDS}
INGRESS_REFUSES = "does not match 'application/json'"  # the ingress's words for a wrong content type


@dataclass(frozen=True)
class Hostile:
    """One request that must be refused, and what the refusal must say."""

    kind: str
    body: bytes
    says: str  # a fragment the message must hold ("" where only the status is certain)
    status: int = 400
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "application/json"})


def _sized(kind: str, body: bytes, says: str) -> Hostile:
    """The size limit comes first: over it, the answer is 413 whatever else is wrong."""
    if len(body) > MAX_BODY_BYTES:
        return Hostile(kind, body, f"the limit is {MAX_BODY_BYTES}", 413)
    return Hostile(kind, body, says)


def _dumps(value: object) -> bytes:
    return json.dumps(value).encode()


def _field_body(name: str, raw_value: str, wrapped: bool) -> bytes:
    """`{"name": <raw JSON>}`, flat or in the `{"request": ...}` wrapper; raw so NaN can be sent."""
    inner = f"{json.dumps(name)}: {raw_value}"
    return (f'{{"request": {{{inner}}}}}' if wrapped else f"{{{inner}}}").encode()


# Any JSON value, kept shallow and small.
_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
_lists = st.lists(_json, max_size=3)
_objects = st.dictionaries(st.text(max_size=8), _json, max_size=3)
_not_strings = st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | _lists | _objects
# No time: numbers are read as Unix timestamps and "2027-01-01" as a date, so only these are certain.
_not_times = (
    st.booleans() | _lists | _objects | st.sampled_from(["tomorrow", "2027-13-01T09:00:00Z", "2027-02-30", "T"])
)


@st.composite
def wrong_type(draw: st.DrawFn) -> Hostile:
    """A known field holding a value of the wrong type (or out of range, for amount)."""
    name = draw(st.sampled_from(sorted(KNOWN_FIELDS)))
    raw: str
    if name in ("trip_id", "run_type"):  # null is valid here: "not given"
        raw = json.dumps(draw(_not_strings))
    elif name in TIME_FIELDS:  # null is valid here too
        raw = json.dumps(draw(_not_times))
    elif name == "amount":
        raw = draw(
            st.sampled_from(["NaN", "Infinity", "-Infinity", "null", "true", '"lots"', '""', '"1,50"', "[]", "{}"])
            | st.integers(max_value=0).map(str)
            | st.integers(min_value=100_001).map(str)
            | st.floats(max_value=0, allow_nan=False, allow_infinity=False).map(json.dumps)
            | st.decimals(min_value=1, max_value=99_999, places=3).map(str).filter(lambda d: not d.endswith("0"))
            # Past the cents by less than a binary float can hold: read as a float, it would pass.
            | st.builds(lambda whole, zeros: f"{whole}.{'0' * zeros}1", st.integers(1, 100_000), st.integers(14, 40))
        )
    else:  # a required string (with a default): null is wrong here
        raw = json.dumps(draw(st.none() | _not_strings))
    return Hostile("wrong type", _field_body(name, raw, draw(st.booleans())), says=name)


@st.composite
def too_long(draw: st.DrawFn) -> Hostile:
    """A string field past its length limit, from just over it to far past the body limit."""
    name, limit = draw(st.sampled_from([*STRING_LIMITS.items(), ("trip_id", 64)]))
    chars = TRIP_ID_CHARS if name == "trip_id" else None
    unit = draw(st.text(alphabet=chars or st.characters(codec="utf-8"), min_size=1, max_size=8))
    length = draw(st.integers(limit + 1, limit + 80) | st.integers(limit + 1, 40_000))
    value = (unit * (length // len(unit) + 1))[:length]
    return _sized("too long", _dumps({name: value}), name)


@st.composite
def bad_currency(draw: st.DrawFn) -> Hostile:
    """A currency that is not three capital letters: "eur", "EURO", "€", "US$"..."""
    currency = draw(
        st.text(max_size=6).filter(lambda c: not re.fullmatch("[A-Z]{3}", c))
        | st.sampled_from(["eur", "Eur", "EURO", "EU", "€", "US$", " EUR", "EUR\n", "\uff25\uff35\uff32"])
    )
    return Hostile("bad currency", _dumps({"currency": currency}), says="currency")


@st.composite
def times_out_of_order(draw: st.DrawFn) -> Hostile:
    """Arrival at or before departure, or a rental that ends at or before it starts."""
    start = draw(st.datetimes(datetime(2000, 1, 1), datetime(2100, 1, 1), timezones=st.just(UTC)))
    end = start - timedelta(seconds=draw(st.integers(0, 10**7)))
    first, then = draw(st.sampled_from([("depart_at", "arrive_at"), ("rental_from", "rental_to")]))
    body = _dumps({first: start.isoformat(), then: end.isoformat()})
    return Hostile("times out of order", body, says=f"{then} must be after {first}")


@st.composite
def bad_trip_id(draw: st.DrawFn) -> Hostile:
    """A trip id with a character outside [A-Za-z0-9_-] (space, slash, unicode, newline...), or empty."""
    valid = st.text(alphabet=TRIP_ID_CHARS, max_size=20)
    bad_char = st.characters(codec="utf-8").filter(lambda c: c not in TRIP_ID_CHARS)
    trip_id = draw(st.just("") | st.tuples(valid, bad_char, valid).map("".join))
    return Hostile("bad trip_id", _dumps({"trip_id": trip_id}), says="trip_id: must be 1 to 64 characters")


@st.composite
def bad_run_type(draw: st.DrawFn) -> Hostile:
    """A run_type that is none of the six, including near misses of real ones."""
    near_miss = st.tuples(
        st.sampled_from(RUN_TYPES),
        st.sampled_from([str.lower, str.upper, lambda s: s + " ", lambda s: " " + s, lambda s: s + "\n", str.title]),
    ).map(lambda pair: pair[1](pair[0]))
    run_type = draw((st.text() | near_miss).filter(lambda s: s not in RUN_TYPES))
    return Hostile("bad run_type", _dumps({"run_type": run_type}), says="unknown run_type")


@st.composite
def unknown_field(draw: st.DrawFn) -> Hostile:
    """A field the API does not know (a typo must not pass silently), flat or wrapped."""
    name = draw(st.text(alphabet=st.characters(codec="utf-8"), max_size=30).filter(lambda k: k not in KNOWN_FIELDS))
    fields = {name: draw(_json)}
    if name == "request":  # {"request": X} alone is the wrapper; with a sibling, "request" is unknown
        fields["trip_id"] = "sibling"
    body = _dumps({"request": fields} if name != "request" and draw(st.booleans()) else fields)
    return Hostile("unknown field", body, says=f"{name or 'request'}: Extra inputs are not permitted")


@st.composite
def duplicate_key(draw: st.DrawFn) -> Hostile:
    """A key twice in one object: at the top, in the wrapper, or deeper inside a field's value."""
    key = draw(st.sampled_from(sorted(KNOWN_FIELDS)) | st.text(max_size=8))
    first, second = draw(_json), draw(_json)  # any two values, even the same one
    pair = f"{json.dumps(key)}: {json.dumps(first)}, {json.dumps(key)}: {json.dumps(second)}"
    where = draw(st.sampled_from(["top", "wrapper", "field"]))
    body = {"top": f"{{{pair}}}", "wrapper": f'{{"request": {{{pair}}}}}', "field": f'{{"depart_city": [{{{pair}}}]}}'}
    return Hostile("duplicate key", body[where].encode(), f"request body has the key {json.dumps(key)} more than once")


@st.composite
def no_body(draw: st.DrawFn) -> Hostile:
    """Nothing but JSON whitespace, or nothing at all: a request with no body books nothing."""
    body = draw(st.text(alphabet=" \t\r\n", max_size=20)).encode()
    if not body:  # the ingress refuses an empty body it was told is JSON, before the handler
        return Hostile("no body", body, "Empty body not allowed")
    return Hostile("blank body", body, "request body is empty; send a JSON object, {} for all defaults")


@st.composite
def not_an_object(draw: st.DrawFn) -> Hostile:
    """JSON that is not an object, at the top or inside the `{"request": ...}` wrapper (null there is valid)."""
    value = draw(_scalars | _lists)
    if value is not None and draw(st.booleans()):
        return Hostile("wrapper not an object", _dumps({"request": value}), says="request must be a JSON object")
    return Hostile("not an object", _dumps(value), says="request must be a JSON object")


@st.composite
def deeply_nested(draw: st.DrawFn) -> Hostile:
    """Arrays or objects nested up to thousands of levels, at the top, in a field or in the wrapper."""
    depth = draw(st.integers(1, 8_000))
    nested = "[" * depth + "]" * depth if draw(st.booleans()) else '{"a":' * depth + "1" + "}" * depth
    where = draw(st.sampled_from(["top", "field", "wrapper"]))  # "a" is an unknown field at every level
    body = {"top": nested, "field": f'{{"depart_city": {nested}}}', "wrapper": f'{{"request": {nested}}}'}[where]
    return _sized(f"nested {depth} deep", body.encode(), "")


_BAD_UTF8 = [
    b"\x80",  # a continuation byte alone
    b"\xbf",
    b"\xc0\xaf",  # overlong "/"
    b"\xc1\xbf",
    b"\xe0\x80\xaf",  # overlong, three bytes
    b"\xed\xa0\x80",  # an encoded surrogate
    b"\xf4\x90\x80\x80",  # past U+10FFFF
    b"\xf5\x80\x80\x80",
    b"\xfe",
    b"\xff",
    b"\xc3",  # truncated sequences
    b"\xe2\x82",
    b"\xf0\x9f\x98",
]


@st.composite
def invalid_utf8(draw: st.DrawFn) -> Hostile:
    """An otherwise sensible JSON body with a byte sequence that is not UTF-8 somewhere in it."""
    base = _dumps(draw(st.sampled_from([{}, {"depart_city": "Dublin"}, {"trip_id": "utf8", "car_class": "suv"}])))
    at = draw(st.integers(0, len(base)))
    bad = draw(st.sampled_from(_BAD_UTF8))
    return Hostile("invalid UTF-8", base[:at] + bad + base[at:], says="not valid UTF-8")


_MALFORMED = [
    "{'trip_id': 'x'}",
    '{"trip_id": "x",}',
    "{trip_id: 1}",
    '{"trip_id" "x"}',
    '{"trip_id": "x"} // comment',
    '{"trip_id": "\\x41"}',
    '{"trip_id": "a\tb"}',  # a raw control character inside a string
    '{"amount": 01}',
    '{"amount": .5}',
    '{"amount": 1.}',
    '{"amount": +1}',
    '{"trip_id": undefined}',
    "{,}",
]


@st.composite
def malformed_json(draw: st.DrawFn) -> Hostile:
    """Not JSON: a cut-off object, an object with trailing junk, or one of the classic mistakes."""
    base = json.dumps(
        draw(st.dictionaries(st.sampled_from(sorted(KNOWN_FIELDS)), st.text(TRIP_ID_CHARS, max_size=10), max_size=4))
    )
    how = draw(st.sampled_from(["cut", "junk", "classic"]))
    if how == "cut":
        text = base[: draw(st.integers(1, len(base) - 1))]
    elif how == "junk":
        text = base + draw(st.sampled_from(["}", "]", "x", ",", "{}", "null", '"', "\x00"]))
    else:
        text = draw(st.sampled_from(_MALFORMED))
    return Hostile("malformed JSON", text.encode(), says="not valid JSON")


@st.composite
def oversize(draw: st.DrawFn) -> Hostile:
    """A body over 16 KiB, even one that would be valid if it were smaller (padding is still bytes)."""
    size = draw(st.integers(MAX_BODY_BYTES + 1, 4 * MAX_BODY_BYTES))
    head = draw(st.sampled_from([b"{}", b'{"trip_id": "big"}', b'{"depart_city": "']))
    if head.endswith(b'"'):
        body = head + b"x" * (size - len(head) - 2) + b'"}'
    else:
        body = head + draw(st.sampled_from([b" ", b"\n", b"\t"])) * (size - len(head))
    return Hostile("oversize", body, f"the limit is {MAX_BODY_BYTES}", 413)


_token = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12)
_ODD_TYPES = [
    "text/plain",
    "text/plain; charset=utf-8",
    "application/x-www-form-urlencoded",
    "multipart/form-data",
    "multipart/form-data; boundary=----hostile",
    "application/xml",
    "text/xml",
    "application/octet-stream",
    "application/json-patch+json",
    "not a content type",
    ";;;",
    "/",
    "application/",
]


@st.composite
def odd_content_type(draw: st.DrawFn) -> Hostile:
    """A body that would book a trip, sent with a content type other than application/json, or none."""
    body = draw(st.sampled_from([b"{}", b'{"trip_id": "odd-type"}', b"trip_id=odd-type", b"<trip/>"]))
    generated = st.tuples(_token, _token).map("/".join).filter(lambda t: t != "application/json")
    content_type = draw(st.sampled_from(_ODD_TYPES) | generated | st.none())
    if content_type is None:  # a body with no content type at all
        return Hostile("no content type", body, "Empty content-type", headers={})
    return Hostile("odd content type", body, INGRESS_REFUSES, headers={"content-type": content_type})


hostile_requests = st.one_of(
    wrong_type(),
    too_long(),
    bad_currency(),
    times_out_of_order(),
    bad_trip_id(),
    bad_run_type(),
    unknown_field(),
    duplicate_key(),
    no_body(),
    not_an_object(),
    deeply_nested(),
    invalid_utf8(),
    malformed_json(),
    oversize(),
    odd_content_type(),
)


@settings(
    max_examples=70,
    deadline=None,
    database=None,  # each run draws afresh; a failure prints the example to replay
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=hostile_requests, with_key=st.booleans(), json_charset=st.booleans())
# Always tried, whatever is drawn: each would book a trip if its check were missing.
@example(
    case=Hostile("padded {}", b"{}" + b" " * MAX_BODY_BYTES, "the limit is", 413), with_key=False, json_charset=False
)
@example(
    case=Hostile("typo", b'{"runtype": "failPayment"}', "runtype: Extra inputs"), with_key=False, json_charset=False
)
@example(case=Hostile("no type", b"{}", "Empty content-type", headers={}), with_key=True, json_charset=False)
@example(
    case=Hostile("no body, no type", b"", "request body is empty; send a JSON object", headers={}),
    with_key=False,
    json_charset=False,
)
@example(
    case=Hostile("key twice", b'{"run_type": "failPayment", "run_type": null}', 'the key "run_type" more than once'),
    with_key=False,
    json_charset=False,
)
def test_hostile_input_is_refused_naming_the_problem_and_writes_nothing(
    case: Hostile, with_key: bool, json_charset: bool, stack: LocalStack, ingress: httpx.Client, inbox: Inbox
) -> None:
    headers = dict(case.headers)
    if json_charset and headers.get("content-type") == "application/json":
        headers["content-type"] = "application/json; charset=utf-8"
    if with_key:  # a key must not turn a refusal into anything else
        headers["idempotency-key"] = f"hostile-{uuid.uuid4().hex}"
    event(case.kind.split(" ")[0] if case.kind.startswith("nested") else case.kind)
    note(f"{case.kind}: {len(case.body)} bytes {case.body[:200]!r}... headers {headers}")
    rows_before, messages_before = row_count(stack), inbox.count()

    # A short timeout: a request that hangs is a finding, and shrinking must not wait a minute per try.
    response = ingress.post("/trips/reserve", content=case.body, headers=headers, timeout=20)

    assert response.status_code == case.status, response.text
    message = response.json()["message"]
    assert isinstance(message, str)
    assert message.strip()
    assert case.says in message
    assert (row_count(stack), inbox.count()) == (rows_before, messages_before)


def test_after_the_hostile_input_a_trip_still_books(
    trip_id: str, stack: LocalStack, ingress: httpx.Client, inbox: Inbox
) -> None:
    """The refusals must leave nothing behind that stops the next good request."""
    response = ingress.post("/trips/reserve", json={"trip_id": trip_id})
    assert response.status_code == 200, response.text
    assert response.json()["trip_id"] == trip_id
    assert statuses(stack, trip_id) == BOOKED
    [message] = poll(lambda: inbox.messages(trip_id), bool, "the success announcement")
    assert message["outcome"] == "success"
