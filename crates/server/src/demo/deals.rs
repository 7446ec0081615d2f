//! The demo city for deals: 5,000 stores (`deals.demo_stores`) of every category within 10 km of
//! Seoul City Hall,
//! owned by the demo account carol, each with a deal live now (renewed at every start, so the
//! map is never empty), and points for alice and bob to spend.

use chrono::{DateTime, Duration, Utc};
use surge_core::deals::{Category, EARTH_RADIUS_M, Place};
use surge_store::deals::{DealStore, NewDeal, StoreRecord};
use uuid::Uuid;

/// Where the demo city is: Seoul City Hall.
pub const CENTER: Place = Place { lat: 37.5663, lng: 126.9779 };
/// How far from the centre they spread, in metres.
const SPREAD_M: f64 = 10_000.0;

/// Makes the demo stores (the first time) and gives every one without a live deal a new one.
pub async fn seed(
    store: &dyn DealStore,
    owner: Uuid,
    now: DateTime<Utc>,
    stores: usize,
) -> anyhow::Result<()> {
    if store.store_count(owner).await? == 0 {
        let stores: Vec<StoreRecord> = (0..stores).map(|n| demo_store(n, owner, now)).collect();
        store.create_stores(&stores).await?;
    }
    let bare = store.stores_without_live_deals(owner, now).await?;
    let deals: Vec<NewDeal> =
        bare.iter().enumerate().map(|(n, store_id)| demo_deal(n, *store_id, now)).collect();
    store.create_deals(&deals).await?;
    tracing::info!(
        stores = store.store_count(owner).await?,
        new_deals = deals.len(),
        "demo deals ready"
    );
    Ok(())
}

/// A reproducible spread: the n-th store's distance and bearing from the centre come from a
/// fixed mix of `n` (no randomness, so every demo looks the same).
fn demo_store(n: usize, owner: Uuid, now: DateTime<Utc>) -> StoreRecord {
    let mix = |salt: u64| {
        let mut x = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt;
        x ^= x >> 31;
        x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        (x >> 11) as f64 / (1u64 << 53) as f64
    };
    // sqrt: stores spread evenly over the disc, not bunched at the centre.
    let distance = SPREAD_M * mix(1).sqrt();
    let bearing = 2.0 * std::f64::consts::PI * mix(2);
    let angle = distance / EARTH_RADIUS_M;
    let lat = CENTER.lat + (angle * bearing.cos()).to_degrees();
    let lng = CENTER.lng + (angle * bearing.sin() / CENTER.lat.to_radians().cos()).to_degrees();
    let category = Category::ALL[n % Category::ALL.len()];
    StoreRecord {
        id: Uuid::now_v7(),
        owner_id: owner,
        name: format!("{} {}", label(category), n + 1),
        category,
        place: Place { lat, lng },
        address: format!("Demo-ro {}, Seoul", n + 1),
        created_at: now,
    }
}

fn label(category: Category) -> &'static str {
    match category {
        Category::Snack => "Tteokbokki corner",
        Category::Western => "Burger bar",
        Category::Japanese => "Sushi counter",
        Category::Korean => "Kimbap house",
        Category::Chicken => "Fried chicken",
        Category::Chinese => "Dumpling house",
        Category::Meat => "Barbecue grill",
        Category::Dessert => "Bakery",
        Category::Convenience => "Corner store",
        Category::Other => "Deli",
    }
}

/// Tonight's deal: some boxes at about half price until midnight-ish (6 hours).
fn demo_deal(n: usize, store_id: Uuid, now: DateTime<Utc>) -> NewDeal {
    let original = 8_000 + 1_000 * (n % 8) as i64;
    let quantity = 5 + (n % 20) as i64;
    NewDeal {
        id: Uuid::now_v7(),
        store_id,
        title: "Closing-time boxes".to_owned(),
        original_price: original,
        deal_price: original / 2,
        quantity,
        per_user_limit: 2,
        starts_at: now,
        ends_at: now + Duration::hours(6),
        created_at: now,
    }
}

#[cfg(test)]
mod tests {
    use surge_core::deals::distance_m;

    use super::*;

    #[test]
    fn demo_stores_spread_within_the_city_over_every_category() {
        let owner = Uuid::now_v7();
        let stores: Vec<StoreRecord> =
            (0..5_000).map(|n| demo_store(n, owner, Utc::now())).collect();
        let farthest = stores.iter().map(|s| distance_m(CENTER, s.place)).fold(0.0, f64::max);
        assert!(farthest <= SPREAD_M * 1.001, "{farthest}");
        let near = stores.iter().filter(|s| distance_m(CENTER, s.place) <= 1_000.0).count();
        // About 1% of the disc's area: dozens of stores within a kilometre.
        assert!((20..=100).contains(&near), "{near} within 1 km");
        for category in Category::ALL {
            assert!(stores.iter().any(|s| s.category == category));
        }
    }
}
