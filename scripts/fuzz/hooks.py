"""Schemathesis hooks for Surge's API fuzzing (scripts/fuzz-api.sh).

The OpenAPI document states every bound a schema can state. A few rules cannot be said in JSON
Schema, and the document says them in words instead: times relative to now, records that must
exist, the bytes of an image, a cursor or an Idempotency-Key that names one earlier request,
two fields compared, a calendar date. For requests Schemathesis generates as *valid* (positive
mode), these hooks replace exactly those values with ones that keep the rule; everything else
stays generated. Negative cases are never touched: every malformed request reaches the server
as generated.

Half of the valid requests on an id in the path go to a record the fuzz script made (an
auction of another account, a screening), so bids and reservations reach their business
rules; the other half keep their random id and meet 404.
"""

import base64
import datetime
import os
import random
import uuid
from collections.abc import MutableMapping

import schemathesis

# A 1 x 1 PNG: the server sniffs the bytes, not the declared type.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)

FIXTURES = {
    "auction": os.environ.get("SURGE_FUZZ_AUCTION"),
    "screening": os.environ.get("SURGE_FUZZ_SCREENING"),
    "movie": os.environ.get("SURGE_FUZZ_MOVIE"),
    "theater": os.environ.get("SURGE_FUZZ_THEATER"),
    "store": os.environ.get("SURGE_FUZZ_STORE"),
    "deal": os.environ.get("SURGE_FUZZ_DEAL"),
}

# Reproducible choices, like Schemathesis' own seed.
CHOICE = random.Random(20261202)


def _positive(case):
    meta = getattr(case, "meta", None)
    return meta is not None and meta.generation.mode.is_positive


def _is_mapping(value):
    # Headers come as a case-insensitive mapping, not a dict.
    return isinstance(value, MutableMapping)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _in(hours=0, days=0):
    at = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=hours, days=days)
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def _number(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _fixture_for(path):
    if path.startswith("/api/v1/auctions/{id}"):
        return FIXTURES["auction"]
    if path.startswith("/api/v1/screenings/{id}"):
        return FIXTURES["screening"]
    if path.startswith("/api/v1/stores/{id}"):
        return FIXTURES["store"]
    if path.startswith("/api/v1/deals/{id}"):
        return FIXTURES["deal"]
    return None


@schemathesis.hook
def before_call(ctx, case, kwargs):
    if not _positive(case):
        return
    method, path = case.operation.method.upper(), case.operation.path
    operation = f"{method} {path}"
    body = case.body if _is_mapping(case.body) else None
    query = case.query if _is_mapping(case.query) else None
    headers = case.headers if _is_mapping(case.headers) else None

    fixture = _fixture_for(path)
    if fixture and _is_mapping(case.path_parameters) and CHOICE.random() < 0.5:
        case.path_parameters["id"] = fixture

    # An Idempotency-Key names one request: a new request takes a new key.
    if headers is not None and "Idempotency-Key" in headers:
        headers["Idempotency-Key"] = str(uuid.uuid4())

    if query is not None:
        # A cursor is only ever one the server handed out with an earlier page.
        query.pop("cursor", None)
        # The search's price range must not be upside down.
        low, high = _number(query.get("min_price")), _number(query.get("max_price"))
        if low is not None and high is not None and low > high:
            query["min_price"], query["max_price"] = high, low

    if operation == "POST /api/v1/auctions" and body is not None:
        # It ends in the future, within 30 days of its start; images must be the caller's own.
        body["starts_at"] = None
        body["ends_at"] = _in(hours=1)
        body["image_ids"] = []
    elif operation == "POST /api/v1/admin/screenings" and body is not None:
        # The movie and the theater exist; the start is ahead (366 days at most).
        body["movie_id"] = FIXTURES["movie"] or body.get("movie_id")
        body["theater_id"] = FIXTURES["theater"] or body.get("theater_id")
        body["starts_at"] = _in(days=CHOICE.randint(3, 300), hours=CHOICE.randint(0, 23))
    elif operation == "PATCH /api/v1/me" and body is not None:
        # A birthday is a real calendar date, not in the future.
        if isinstance(body.get("birthday"), str):
            today = datetime.date.today()
            try:
                birthday = min(datetime.date.fromisoformat(body["birthday"]), today)
            except ValueError:
                birthday = datetime.date(2000, 1, 1)
            body["birthday"] = birthday.isoformat()
    elif operation == "POST /api/v1/reservations" and body is not None:
        # The screening exists; seats exist in its hall and sit next to each other in a row.
        if FIXTURES["screening"] and CHOICE.random() < 0.5:
            body["screening_id"] = FIXTURES["screening"]
        body["seats"] = [f"{CHOICE.choice('ABC')}{CHOICE.randint(1, 8)}"]
    elif operation == "POST /api/v1/stores/{id}/deals" and body is not None:
        # The deal price is below the original one, the per-user limit at most the quantity,
        # and the window ahead (30 days at most).
        # (JSON Schema integers may come as 6000.0.)
        original, price = body.get("original_price"), body.get("deal_price")
        if _is_number(original) and _is_number(price):
            body["deal_price"] = min(price, original - 1)
        quantity, limit = body.get("quantity"), body.get("per_user_limit")
        if _is_number(quantity) and _is_number(limit):
            body["per_user_limit"] = min(limit, quantity)
        body["starts_at"] = None
        body["ends_at"] = _in(hours=2)
    elif operation == "POST /api/v1/images":
        # The bytes must really be an image. The form is sent in place of the generated one
        # (Schemathesis cannot re-check a binary body a hook edited).
        kwargs["files"] = {"file": ("pixel.png", PNG, "image/png")}
