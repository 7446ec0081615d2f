//! Deals: stores on the map, last-minute deals, and the points a buyer pays with.
//!
//! This module holds the rules that need no I/O: which categories exist, what a store and a
//! deal must look like, how far apart two places are (great-circle distance) and which
//! latitude/longitude box surely holds every place within a radius (what the stores' spatial
//! index is asked for before distances are computed exactly). [`orders`] holds the order rule.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::MAX_MONEY;
use crate::validation::{FieldErrors, char_len};

pub mod orders;

/// Most characters in a store's name or a deal's title.
pub const MAX_NAME_CHARS: usize = 100;
/// Most characters in a store's address.
pub const MAX_ADDRESS_CHARS: usize = 200;
/// Most units one deal may offer.
pub const MAX_QUANTITY: i64 = 10_000;
/// The nearby search's radius, in metres: at least this …
pub const MIN_RADIUS_M: i64 = 1;
/// … at most this …
pub const MAX_RADIUS_M: i64 = 20_000;
/// … and this when none is given.
pub const DEFAULT_RADIUS_M: i64 = 1_000;
/// Most points one top-up adds.
pub const MAX_TOP_UP: i64 = 1_000_000;
/// Longest a deal may run, from its start.
pub const MAX_DEAL_DAYS: i64 = 30;
/// The mean Earth radius (IUGG), in metres: what "distance" means here.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// What a store sells; clients send and receive the lower-case names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Snack,
    Western,
    Japanese,
    Korean,
    Chicken,
    Chinese,
    Meat,
    Dessert,
    Convenience,
    Other,
}

impl Category {
    pub const ALL: [Category; 10] = [
        Category::Snack,
        Category::Western,
        Category::Japanese,
        Category::Korean,
        Category::Chicken,
        Category::Chinese,
        Category::Meat,
        Category::Dessert,
        Category::Convenience,
        Category::Other,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Category::Snack => "snack",
            Category::Western => "western",
            Category::Japanese => "japanese",
            Category::Korean => "korean",
            Category::Chicken => "chicken",
            Category::Chinese => "chinese",
            Category::Meat => "meat",
            Category::Dessert => "dessert",
            Category::Convenience => "convenience",
            Category::Other => "other",
        }
    }

    pub fn parse(name: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|category| category.as_str() == name)
    }

    /// The list for error messages.
    pub fn names() -> String {
        Category::ALL.map(|c| c.as_str()).join(", ")
    }
}

/// A place on Earth, in degrees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Place {
    pub lat: f64,
    pub lng: f64,
}

impl Place {
    /// Field errors for a latitude outside −90…90 or a longitude outside −180…180 (or not a
    /// number at all).
    pub fn check(lat: f64, lng: f64, errors: &mut FieldErrors) -> Option<Place> {
        let mut ok = true;
        if !(lat.is_finite() && (-90.0..=90.0).contains(&lat)) {
            errors.add("lat", "must be a latitude between -90 and 90");
            ok = false;
        }
        if !(lng.is_finite() && (-180.0..=180.0).contains(&lng)) {
            errors.add("lng", "must be a longitude between -180 and 180");
            ok = false;
        }
        ok.then_some(Place { lat, lng })
    }
}

/// The great-circle distance between two places, in metres (haversine on a sphere of
/// [`EARTH_RADIUS_M`]).
pub fn distance_m(a: Place, b: Place) -> f64 {
    let (lat1, lat2) = (a.lat.to_radians(), b.lat.to_radians());
    let d_lat = lat2 - lat1;
    let d_lng = (b.lng - a.lng).to_radians();
    let h = (d_lat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (d_lng / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * h.sqrt().min(1.0).asin()
}

/// A latitude/longitude box, in degrees; `min_lng > max_lng` never happens: a box across the
/// antimeridian is split in two by [`boxes_around`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoBox {
    pub min_lat: f64,
    pub max_lat: f64,
    pub min_lng: f64,
    pub max_lng: f64,
}

/// Boxes that together hold every place within `radius_m` of `center` (and some more: the
/// exact distance decides). One box, or two when the circle crosses the antimeridian; near a
/// pole, every longitude.
pub fn boxes_around(center: Place, radius_m: f64) -> Vec<GeoBox> {
    // A small margin for rounding: a place exactly on the circle must be in the box.
    let angle = (radius_m / EARTH_RADIUS_M).to_degrees() * 1.000_001 + 1e-9;
    let min_lat = (center.lat - angle).max(-90.0);
    let max_lat = (center.lat + angle).min(90.0);
    let widest = center.lat.abs() + angle;
    if widest >= 89.999 {
        return vec![GeoBox { min_lat, max_lat, min_lng: -180.0, max_lng: 180.0 }];
    }
    // At the latitude farthest from the equator the circle is widest in longitude.
    let lng_angle =
        (angle.to_radians().sin() / widest.to_radians().cos()).min(1.0).asin().to_degrees()
            * 1.000_001
            + 1e-9;
    let (west, east) = (center.lng - lng_angle, center.lng + lng_angle);
    let mut boxes =
        vec![GeoBox { min_lat, max_lat, min_lng: west.max(-180.0), max_lng: east.min(180.0) }];
    if west < -180.0 {
        boxes.push(GeoBox { min_lat, max_lat, min_lng: west + 360.0, max_lng: 180.0 });
    }
    if east > 180.0 {
        boxes.push(GeoBox { min_lat, max_lat, min_lng: -180.0, max_lng: east - 360.0 });
    }
    boxes
}

/// A store as its owner describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreDraft {
    pub name: String,
    pub category: String,
    pub lat: f64,
    pub lng: f64,
    pub address: String,
}

/// A store that passed [`validate_store`]: trimmed text, a known category, a real place.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidStore {
    pub name: String,
    pub category: Category,
    pub place: Place,
    pub address: String,
}

/// Checks every store rule at once: a name of 1–100 characters and an address of 1–200 (as
/// sent, not blank; kept trimmed), one of the ten categories, a latitude and a longitude.
pub fn validate_store(draft: StoreDraft) -> Result<ValidStore, FieldErrors> {
    let mut errors = FieldErrors::new();
    let name = required_text(&draft.name, "name", MAX_NAME_CHARS, &mut errors);
    let address = required_text(&draft.address, "address", MAX_ADDRESS_CHARS, &mut errors);
    let category = Category::parse(&draft.category);
    if category.is_none() {
        errors.add("category", format!("must be one of {}", Category::names()));
    }
    let place = Place::check(draft.lat, draft.lng, &mut errors);
    match (category, place) {
        (Some(category), Some(place)) if errors.is_empty() => {
            Ok(ValidStore { name, category, place, address })
        }
        _ => Err(errors),
    }
}

/// Text of at most `max` characters as sent, not blank; returned trimmed.
fn required_text(text: &str, field: &str, max: usize, errors: &mut FieldErrors) -> String {
    let trimmed = text.trim();
    if trimmed.is_empty() || char_len(text) > max {
        errors.add(field, format!("must be 1 to {max} characters"));
    }
    trimmed.to_owned()
}

/// A deal as its store's owner posts it.
#[derive(Debug, Clone, PartialEq)]
pub struct DealDraft {
    pub title: String,
    pub original_price: i64,
    pub deal_price: i64,
    pub quantity: i64,
    pub per_user_limit: Option<i64>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: DateTime<Utc>,
}

/// A deal that passed [`validate_deal`].
#[derive(Debug, Clone, PartialEq)]
pub struct ValidDeal {
    pub title: String,
    pub original_price: i64,
    pub deal_price: i64,
    pub quantity: i64,
    pub per_user_limit: i64,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}

/// Checks every deal rule at once: a title of 1–100 characters; prices in minor units with
/// `0 < deal_price < original_price`; a quantity of 1–10,000; a per-user limit of 1 to the
/// quantity (the quantity when absent); a window that starts now or later (now when absent),
/// ends after it starts and in the future, and lasts at most [`MAX_DEAL_DAYS`] days.
pub fn validate_deal(draft: DealDraft, now: DateTime<Utc>) -> Result<ValidDeal, FieldErrors> {
    let mut errors = FieldErrors::new();
    let title = required_text(&draft.title, "title", MAX_NAME_CHARS, &mut errors);
    if !(1..=MAX_MONEY).contains(&draft.original_price) {
        errors.add("original_price", format!("must be between 1 and {MAX_MONEY}"));
    }
    if !(1..draft.original_price.max(1)).contains(&draft.deal_price) {
        errors.add("deal_price", "must be at least 1 and below original_price");
    }
    if !(1..=MAX_QUANTITY).contains(&draft.quantity) {
        errors.add("quantity", format!("must be between 1 and {MAX_QUANTITY}"));
    }
    let per_user_limit = draft.per_user_limit.unwrap_or(draft.quantity);
    if !(1..=draft.quantity.max(1)).contains(&per_user_limit) {
        errors.add("per_user_limit", "must be between 1 and quantity");
    }
    let starts_at = draft.starts_at.unwrap_or(now);
    if draft.ends_at <= starts_at {
        errors.add("ends_at", "must be after starts_at");
    } else if draft.ends_at <= now {
        errors.add("ends_at", "must be in the future");
    } else if draft.ends_at - starts_at > Duration::days(MAX_DEAL_DAYS) {
        errors.add("ends_at", format!("must be at most {MAX_DEAL_DAYS} days after starts_at"));
    }
    errors.into_result(ValidDeal {
        title,
        original_price: draft.original_price,
        deal_price: draft.deal_price,
        quantity: draft.quantity,
        per_user_limit,
        starts_at,
        ends_at: draft.ends_at,
    })
}

/// Whether a deal is live at `now`: inside its window with units left.
pub fn is_live(
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    remaining: i64,
    now: DateTime<Utc>,
) -> bool {
    starts_at <= now && now < ends_at && remaining > 0
}

/// A top-up: 1 to [`MAX_TOP_UP`] points, and a balance that stays at most [`MAX_MONEY`].
pub fn validate_top_up(amount: i64) -> Result<(), FieldErrors> {
    if (1..=MAX_TOP_UP).contains(&amount) {
        Ok(())
    } else {
        Err(FieldErrors::single("amount", format!("must be between 1 and {MAX_TOP_UP}")))
    }
}

/// The radius of a nearby search: 1–20,000 m, [`DEFAULT_RADIUS_M`] when absent.
pub fn validate_radius(radius_m: Option<i64>) -> Result<i64, FieldErrors> {
    let radius = radius_m.unwrap_or(DEFAULT_RADIUS_M);
    if (MIN_RADIUS_M..=MAX_RADIUS_M).contains(&radius) {
        Ok(radius)
    } else {
        Err(FieldErrors::single(
            "radius_m",
            format!("must be between {MIN_RADIUS_M} and {MAX_RADIUS_M}"),
        ))
    }
}

#[cfg(test)]
mod tests;
