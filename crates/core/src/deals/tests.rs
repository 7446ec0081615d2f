//! The deal rules: categories, store and deal validation, distances and search boxes.

use chrono::TimeZone;

use super::*;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 18, 0, 0).unwrap()
}

fn store() -> StoreDraft {
    StoreDraft {
        name: "  Mangwon Bakery ".into(),
        category: "dessert".into(),
        lat: 37.5558,
        lng: 126.9014,
        address: "Mangwon-ro 1, Seoul".into(),
    }
}

fn deal() -> DealDraft {
    DealDraft {
        title: "Last ten boxes".into(),
        original_price: 12_000,
        deal_price: 6_000,
        quantity: 10,
        per_user_limit: None,
        starts_at: None,
        ends_at: now() + Duration::hours(2),
    }
}

#[test]
fn the_ten_categories_round_trip_and_others_are_unknown() {
    for category in Category::ALL {
        assert_eq!(Category::parse(category.as_str()), Some(category));
    }
    assert_eq!(Category::ALL.len(), 10);
    assert_eq!(Category::parse("Dessert"), None);
    assert_eq!(Category::parse(""), None);
}

#[test]
fn a_valid_store_is_trimmed_and_placed() {
    let valid = validate_store(store()).unwrap();
    assert_eq!(valid.name, "Mangwon Bakery");
    assert_eq!(valid.category, Category::Dessert);
    assert_eq!(valid.place, Place { lat: 37.5558, lng: 126.9014 });
}

#[test]
fn every_store_mistake_is_reported_at_once() {
    let errors = validate_store(StoreDraft {
        name: "   ".into(),
        category: "bakery".into(),
        lat: 91.0,
        lng: f64::NAN,
        address: "x".repeat(MAX_ADDRESS_CHARS + 1),
    })
    .unwrap_err();
    for field in ["name", "category", "lat", "lng", "address"] {
        assert!(errors.contains(field), "{field}: {errors:?}");
    }
}

#[test]
fn a_deal_defaults_its_start_to_now_and_its_limit_to_the_quantity() {
    let valid = validate_deal(deal(), now()).unwrap();
    assert_eq!(valid.starts_at, now());
    assert_eq!(valid.per_user_limit, 10);
}

#[test]
fn the_deal_price_must_be_below_the_original_price() {
    for (original, deal_price) in [(100, 100), (100, 101), (100, 0), (100, -5)] {
        let draft = DealDraft { original_price: original, deal_price, ..deal() };
        assert!(validate_deal(draft, now()).unwrap_err().contains("deal_price"), "{deal_price}");
    }
    assert!(
        validate_deal(DealDraft { original_price: 100, deal_price: 99, ..deal() }, now()).is_ok()
    );
}

#[test]
fn quantity_and_per_user_limit_have_their_bounds() {
    for quantity in [0, -1, MAX_QUANTITY + 1] {
        let draft = DealDraft { quantity, ..deal() };
        assert!(validate_deal(draft, now()).unwrap_err().contains("quantity"), "{quantity}");
    }
    for limit in [0, 11] {
        let draft = DealDraft { per_user_limit: Some(limit), ..deal() };
        assert!(validate_deal(draft, now()).unwrap_err().contains("per_user_limit"), "{limit}");
    }
    assert!(validate_deal(DealDraft { quantity: MAX_QUANTITY, ..deal() }, now()).is_ok());
}

#[test]
fn the_window_must_end_after_it_starts_in_the_future_within_30_days() {
    let before_start = DealDraft {
        starts_at: Some(now() + Duration::hours(3)),
        ends_at: now() + Duration::hours(2),
        ..deal()
    };
    let past = DealDraft { starts_at: Some(now() - Duration::hours(3)), ends_at: now(), ..deal() };
    let too_long = DealDraft { ends_at: now() + Duration::days(MAX_DEAL_DAYS + 1), ..deal() };
    for draft in [before_start, past, too_long] {
        assert!(validate_deal(draft.clone(), now()).unwrap_err().contains("ends_at"), "{draft:?}");
    }
}

#[test]
fn a_deal_is_live_inside_its_window_with_units_left() {
    let (start, end) = (now(), now() + Duration::hours(1));
    assert!(is_live(start, end, 1, now()));
    assert!(!is_live(start, end, 0, now()), "sold out");
    assert!(!is_live(start, end, 5, end), "the end is exclusive");
    assert!(!is_live(start, end, 5, start - Duration::seconds(1)), "not started");
}

#[test]
fn distances_match_known_ones() {
    let seoul_city_hall = Place { lat: 37.5663, lng: 126.9779 };
    let gangnam_station = Place { lat: 37.4979, lng: 127.0276 };
    let d = distance_m(seoul_city_hall, gangnam_station);
    assert!((d - 8_775.0).abs() < 50.0, "{d}");
    assert_eq!(distance_m(seoul_city_hall, seoul_city_hall), 0.0);
    // A quarter of the way round the equator.
    let quarter = distance_m(Place { lat: 0.0, lng: 0.0 }, Place { lat: 0.0, lng: 90.0 });
    assert!((quarter - EARTH_RADIUS_M * std::f64::consts::FRAC_PI_2).abs() < 1e-6);
}

/// Every place within the radius lies in one of the boxes: checked on a ring of points just
/// inside the circle, at the equator, in Seoul, near a pole and across the antimeridian.
#[test]
fn the_search_boxes_hold_every_place_within_the_radius() {
    for (center, radius) in [
        (Place { lat: 0.0, lng: 0.0 }, 20_000.0),
        (Place { lat: 37.5663, lng: 126.9779 }, 1_000.0),
        (Place { lat: 37.5663, lng: 126.9779 }, 1.0),
        (Place { lat: 89.95, lng: 10.0 }, 20_000.0),
        (Place { lat: -16.5, lng: 179.99 }, 20_000.0),
        (Place { lat: 64.1, lng: -179.95 }, 15_000.0),
    ] {
        let boxes = boxes_around(center, radius);
        for step in 0..360 {
            let bearing = f64::from(step).to_radians();
            let point = destination(center, bearing, radius * 0.999_999);
            assert!(
                boxes.iter().any(|b| {
                    (b.min_lat..=b.max_lat).contains(&point.lat)
                        && (b.min_lng..=b.max_lng).contains(&point.lng)
                }),
                "{point:?} ({radius} m from {center:?}) is in none of {boxes:?}"
            );
        }
    }
}

/// The place `distance` metres from `start` along `bearing` (radians from north).
fn destination(start: Place, bearing: f64, distance: f64) -> Place {
    let angular = distance / EARTH_RADIUS_M;
    let (lat1, lng1) = (start.lat.to_radians(), start.lng.to_radians());
    let lat2 = (lat1.sin() * angular.cos() + lat1.cos() * angular.sin() * bearing.cos()).asin();
    let lng2 = lng1
        + (bearing.sin() * angular.sin() * lat1.cos())
            .atan2(angular.cos() - lat1.sin() * lat2.sin());
    let lng = (lng2.to_degrees() + 540.0) % 360.0 - 180.0;
    Place { lat: lat2.to_degrees(), lng }
}

#[test]
fn radius_and_top_up_have_their_bounds() {
    assert_eq!(validate_radius(None).unwrap(), DEFAULT_RADIUS_M);
    assert_eq!(validate_radius(Some(MAX_RADIUS_M)).unwrap(), MAX_RADIUS_M);
    assert!(validate_radius(Some(0)).is_err());
    assert!(validate_radius(Some(MAX_RADIUS_M + 1)).is_err());
    assert!(validate_top_up(1).is_ok());
    assert!(validate_top_up(MAX_TOP_UP).is_ok());
    assert!(validate_top_up(0).is_err());
    assert!(validate_top_up(MAX_TOP_UP + 1).is_err());
}
