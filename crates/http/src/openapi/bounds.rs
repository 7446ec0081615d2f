//! Every bound the server enforces, written into the OpenAPI document from the same constants
//! the rules use: lengths, ranges, enums and patterns of request bodies and parameters. A
//! client (or a fuzzer) that stays inside the document is never refused for its shape.
//!
//! What a schema cannot say is said in the field's description and left to the server: times
//! relative to now (an auction's end, a screening's start, a birthday), references to other
//! records (images, theaters, seats of the hall), an image's actual bytes, and a cursor that
//! must come from an earlier page.

use serde_json::{Value, json};
use surge_core::MAX_MONEY;
use surge_core::accounts::{ABOUT_MAX, EMAIL_MAX, NICKNAME_MAX, PASSWORD_MAX, PASSWORD_MIN};
use surge_core::auctions::{
    DESCRIPTION_MAX, EXTEND_SECONDS_MAX, MAX_IMAGES, MAX_SEARCH_CHARS, TITLE_MAX,
};
use surge_core::cinema::{
    Genre, Grade, MAX_COLS, MAX_ROWS, MAX_RUNNING_MINUTES, MAX_SEATS_PER_RESERVATION,
    MAX_THEATER_NAME_CHARS, MAX_TITLE_CHARS,
};
use surge_core::deals::{
    Category, MAX_ADDRESS_CHARS, MAX_NAME_CHARS, MAX_QUANTITY, MAX_RADIUS_M, MAX_TOP_UP,
    MIN_RADIUS_M,
};
use surge_core::idempotency::MAX_KEY_LEN;
use surge_core::ratings::MAX_BATCH;
use surge_core::social::{CONTENT_MAX, RANKING_MAX, TITLE_MAX as SOCIAL_TITLE_MAX};

use crate::pagination::MAX_LIMIT;

/// At least one character that is not white space (Unicode `White_Space`, as Rust's `trim`
/// has it): the server trims names and titles, and counts the length as sent.
const NOT_BLANK: &str = r"[^\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]";

/// `validate_email`: printable ASCII, one `@`, a dotted domain that neither starts nor ends
/// with a dot.
const EMAIL: &str = r"^[!-?A-~]+@[!-\-/-?A-~]+(\.[!-\-/-?A-~]+)+$";

/// `is_web_url`: `http(s)://host[:port]` and the characters a URL holds unescaped.
const WEB_URL: &str = r"^https?://[A-Za-z0-9][A-Za-z0-9.\-]*(:[0-9]{1,5})?([/?#][A-Za-z0-9\-._~:/?#\[\]@!$&()*+,;=%]*)?$";

/// An E.164 phone number, as `surge_core::sms::valid_phone` has it.
const PHONE: &str = r"^\+[1-9][0-9]{7,14}$";

/// A LeetCode slug, as `surge_core::ratings::valid_slug` has it.
const SLUG: &str = "^[a-z0-9-]{1,100}$";

/// The rating filters' range (`http::ratings` refuses anything outside it).
const MAX_RATING_FILTER: i64 = crate::ratings::MAX_RATING_FILTER;

/// A seat code: a row letter and a column from 1 (`B3`).
const SEAT: &str = r"^[A-Z][1-9][0-9]?$";

/// The sort keys of the auction search, each ascending or (with `-`) descending.
const AUCTION_SORTS: [&str; 8] = [
    "ends_at",
    "-ends_at",
    "current_price",
    "-current_price",
    "created_at",
    "-created_at",
    "title",
    "-title",
];

fn latitude() -> Value {
    json!({ "minimum": -90, "maximum": 90 })
}

fn longitude() -> Value {
    json!({ "minimum": -180, "maximum": 180 })
}

/// Constraints on a property of a schema component: (component, property, constraints).
pub fn properties() -> Vec<(&'static str, &'static str, Value)> {
    let money = |min: i64| json!({ "minimum": min, "maximum": MAX_MONEY });
    let genres: Vec<&str> = Genre::ALL.iter().map(Genre::as_str).collect();
    let grades: Vec<&str> = Grade::ALL.iter().map(Grade::as_str).collect();
    let nickname = json!({ "minLength": 1, "maxLength": NICKNAME_MAX, "pattern": NOT_BLANK });
    let categories: Vec<&str> = Category::ALL.iter().map(Category::as_str).collect();
    vec![
        ("BatchRequest", "slugs", json!({ "maxItems": MAX_BATCH })),
        (
            "ArticleRequest",
            "title",
            json!({ "minLength": 1, "maxLength": SOCIAL_TITLE_MAX, "pattern": NOT_BLANK }),
        ),
        ("ArticleRequest", "content", json!({ "maxLength": CONTENT_MAX })),
        ("CodeRequest", "phone", json!({ "pattern": PHONE })),
        ("SmsLoginRequest", "phone", json!({ "pattern": PHONE })),
        ("SmsLoginRequest", "code", json!({ "pattern": "^[0-9]{6}$" })),
        ("SignupRequest", "email", json!({ "maxLength": EMAIL_MAX, "pattern": EMAIL })),
        (
            "SignupRequest",
            "password",
            json!({ "minLength": PASSWORD_MIN, "maxLength": PASSWORD_MAX }),
        ),
        ("SignupRequest", "nickname", nickname.clone()),
        ("ProfileUpdate", "nickname", nickname),
        ("ProfileUpdate", "about", json!({ "maxLength": ABOUT_MAX })),
        (
            "CreateAuction",
            "title",
            json!({ "minLength": 1, "maxLength": TITLE_MAX, "pattern": NOT_BLANK }),
        ),
        ("CreateAuction", "description", json!({ "maxLength": DESCRIPTION_MAX })),
        ("CreateAuction", "starting_price", money(0)),
        ("CreateAuction", "min_increment", money(1)),
        ("CreateAuction", "extend_seconds", json!({ "minimum": 0, "maximum": EXTEND_SECONDS_MAX })),
        ("CreateAuction", "image_ids", json!({ "maxItems": MAX_IMAGES, "uniqueItems": true })),
        ("BidRequest", "amount", money(1)),
        (
            "ReservationRequest",
            "seats",
            json!({ "minItems": 1, "maxItems": MAX_SEATS_PER_RESERVATION, "uniqueItems": true,
                    "items": { "type": "string", "pattern": SEAT } }),
        ),
        (
            "TheaterRequest",
            "name",
            json!({ "minLength": 1, "maxLength": MAX_THEATER_NAME_CHARS, "pattern": NOT_BLANK }),
        ),
        ("TheaterRequest", "rows", json!({ "minimum": 1, "maximum": MAX_ROWS })),
        ("TheaterRequest", "cols", json!({ "minimum": 1, "maximum": MAX_COLS })),
        (
            "MovieRequest",
            "title",
            json!({ "minLength": 1, "maxLength": MAX_TITLE_CHARS, "pattern": NOT_BLANK }),
        ),
        ("MovieRequest", "grade", json!({ "enum": grades })),
        ("MovieRequest", "genre", json!({ "enum": genres })),
        ("MovieRequest", "thumbnail_url", json!({ "maxLength": 2048, "pattern": WEB_URL })),
        (
            "MovieRequest",
            "running_minutes",
            json!({ "minimum": 1, "maximum": MAX_RUNNING_MINUTES }),
        ),
        (
            "StoreRequest",
            "name",
            json!({ "minLength": 1, "maxLength": MAX_NAME_CHARS, "pattern": NOT_BLANK }),
        ),
        ("StoreRequest", "category", json!({ "enum": categories.clone() })),
        ("StoreRequest", "lat", latitude()),
        ("StoreRequest", "lng", longitude()),
        (
            "StoreRequest",
            "address",
            json!({ "minLength": 1, "maxLength": MAX_ADDRESS_CHARS, "pattern": NOT_BLANK }),
        ),
        (
            "DealRequest",
            "title",
            json!({ "minLength": 1, "maxLength": MAX_NAME_CHARS, "pattern": NOT_BLANK }),
        ),
        // `deal_price` below `original_price`, `per_user_limit` at most `quantity` and the
        // window are compared by the server.
        ("DealRequest", "original_price", money(2)),
        ("DealRequest", "deal_price", money(1)),
        ("DealRequest", "quantity", json!({ "minimum": 1, "maximum": MAX_QUANTITY })),
        ("DealRequest", "per_user_limit", json!({ "minimum": 1, "maximum": MAX_QUANTITY })),
        ("TopUpRequest", "amount", json!({ "minimum": 1, "maximum": MAX_TOP_UP })),
        ("OrderRequest", "quantity", json!({ "minimum": 1 })),
    ]
}

/// Constraints on a parameter's schema, wherever a parameter of that place and name is:
/// (in, name, constraints).
pub fn parameters() -> Vec<(&'static str, &'static str, Value)> {
    let genres: Vec<&str> = Genre::ALL.iter().map(Genre::as_str).collect();
    let genres_or_any = [genres, vec![""]].concat();
    let categories: Vec<&str> = Category::ALL.iter().map(Category::as_str).collect();
    vec![
        ("query", "lat", latitude()),
        ("query", "lng", longitude()),
        ("query", "radius_m", json!({ "minimum": MIN_RADIUS_M, "maximum": MAX_RADIUS_M })),
        ("query", "category", json!({ "enum": categories })),
        ("query", "limit", json!({ "minimum": 1, "maximum": MAX_LIMIT })),
        ("query", "q", json!({ "maxLength": MAX_SEARCH_CHARS })),
        ("query", "status", json!({ "enum": ["upcoming", "live", "ended"] })),
        ("query", "sort", json!({ "enum": AUCTION_SORTS })),
        ("query", "min_price", json!({ "minimum": 0 })),
        ("query", "max_price", json!({ "minimum": 0 })),
        ("query", "title", json!({ "maxLength": MAX_TITLE_CHARS })),
        // An empty genre is no filter (a form's "any" choice).
        ("query", "genre", json!({ "enum": genres_or_any })),
        ("path", "slug", json!({ "pattern": SLUG })),
        ("query", "n", json!({ "minimum": 1, "maximum": RANKING_MAX })),
        ("query", "tag", json!({ "pattern": SLUG })),
        ("query", "min_rating", json!({ "minimum": 0, "maximum": MAX_RATING_FILTER })),
        ("query", "max_rating", json!({ "minimum": 0, "maximum": MAX_RATING_FILTER })),
        (
            "header",
            "Idempotency-Key",
            json!({ "minLength": 1, "maxLength": MAX_KEY_LEN, "pattern": "^[!-~]+$" }),
        ),
    ]
}

/// Bounds of parameters whose name means something else elsewhere (`sort`): (path, place,
/// name, constraints), applied to that path's operations after [`parameters`].
pub fn path_parameters() -> Vec<(&'static str, &'static str, &'static str, Value)> {
    vec![("/api/v1/problems", "query", "sort", json!({ "enum": ["rating", "-rating"] }))]
}

/// Writes every bound into `document`; panics on a bound whose schema, property or parameter
/// is not in the document (a renamed field must not drop its bounds silently; the tests load
/// the document).
pub fn apply(document: &mut Value) {
    for (component, property, constraints) in properties() {
        let schema = &mut document["components"]["schemas"][component]["properties"][property];
        assert!(!schema.is_null(), "OpenAPI bounds: no property {component}.{property}");
        merge(schema, &constraints);
    }
    let bounds = parameters();
    let mut unused = bounds.clone();
    if let Some(paths) = document["paths"].as_object_mut() {
        let operations =
            paths.values_mut().filter_map(Value::as_object_mut).flat_map(|item| item.values_mut());
        for operation in operations {
            let Some(taken) = operation.get_mut("parameters").and_then(Value::as_array_mut) else {
                continue;
            };
            for parameter in taken {
                for (place, name, constraints) in &bounds {
                    if parameter["in"] == *place && parameter["name"] == *name {
                        merge(&mut parameter["schema"], constraints);
                        unused.retain(|(p, n, _)| (p, n) != (place, name));
                    }
                }
            }
        }
    }
    for (path, place, name, constraints) in path_parameters() {
        let item = document["paths"][path].as_object_mut();
        let operations = item.into_iter().flat_map(|item| item.values_mut());
        let mut found = false;
        for operation in operations {
            let taken = operation.get_mut("parameters").and_then(Value::as_array_mut);
            for parameter in taken.into_iter().flatten() {
                if parameter["in"] == place && parameter["name"] == name {
                    merge(&mut parameter["schema"], &constraints);
                    found = true;
                }
            }
        }
        assert!(found, "OpenAPI bounds: no parameter {name} on {path}");
    }
    assert!(
        unused.is_empty(),
        "OpenAPI bounds: no parameters {:?}",
        unused.iter().map(|(p, n, _)| (p, n)).collect::<Vec<_>>()
    );
}

/// Adds `constraints` to a property schema. An optional property is `{"type": [T, "null"]}`
/// or a `oneOf` with null; the bounds go on the non-null part.
fn merge(schema: &mut Value, constraints: &Value) {
    if let Some(variants) = schema.get_mut("oneOf").and_then(Value::as_array_mut) {
        for variant in variants.iter_mut().filter(|v| v["type"] != "null") {
            merge(variant, constraints);
        }
        return;
    }
    if let (Some(schema), Some(constraints)) = (schema.as_object_mut(), constraints.as_object()) {
        for (key, value) in constraints {
            schema.insert(key.clone(), value.clone());
        }
    }
}
