//! Which shard an entity belongs to.
//!
//! The distributed engine groups an entity's hot keys and its events by shard, so the shard of
//! an id must be the same in every process, on every platform and in every version of Surge: a
//! change here would move live auctions away from their state. The hash is therefore spelled out
//! (FNV-1a, 64 bits, over the 16 bytes of the id) rather than borrowed from `std`, whose hashers
//! are free to change.

use uuid::Uuid;

const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a, 64 bits.
fn fnv1a_64(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(FNV_OFFSET_BASIS, |hash, &byte| (hash ^ u64::from(byte)).wrapping_mul(FNV_PRIME))
}

/// The shard of `id` among `shards` shards, in `0..shards`. A shard count of 0 is treated as 1.
pub fn shard_of(id: Uuid, shards: u16) -> u16 {
    let shards = u64::from(shards.max(1));
    // The remainder is below `shards`, which fits in a u16.
    (fnv1a_64(id.as_bytes()) % shards) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_fnv1a_64() {
        // Reference values of the published algorithm.
        assert_eq!(fnv1a_64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a_64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a_64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn known_ids_keep_their_shards() {
        // Pinned: changing any of these moves live data between shards.
        assert_eq!(fnv1a_64(Uuid::nil().as_bytes()), 0x8820_1fb9_60ff_6465);
        assert_eq!(shard_of(Uuid::nil(), 16), 5);
        assert_eq!(shard_of(Uuid::from_u128(1), 16), 2);
        assert_eq!(shard_of(Uuid::from_u128(1), 1024), 690);
        assert_eq!(shard_of(Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef), 16), 5);
        assert_eq!(shard_of(Uuid::max(), 1024), 85);
        let id = Uuid::parse_str("67e55044-10b1-426f-9247-bb680e5fe0c8").unwrap();
        assert_eq!(shard_of(id, 16), 2);
        assert_eq!(shard_of(id, 1024), 786);
    }

    #[test]
    fn shards_are_in_range_and_zero_means_one() {
        for n in 0..1000u128 {
            let id = Uuid::from_u128(n.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835));
            assert!(shard_of(id, 16) < 16);
            assert!(shard_of(id, 3) < 3);
            assert_eq!(shard_of(id, 1), 0);
            assert_eq!(shard_of(id, 0), 0);
        }
    }

    #[test]
    fn random_ids_spread_over_sixteen_shards() {
        let mut counts = [0u32; 16];
        for _ in 0..16_000 {
            counts[usize::from(shard_of(Uuid::new_v4(), 16))] += 1;
        }
        // 1000 expected per shard; the standard deviation is about 31.
        for (shard, &count) in counts.iter().enumerate() {
            assert!(
                (800..=1200).contains(&count),
                "shard {shard} got {count} of 16000: {counts:?}"
            );
        }
    }

    #[test]
    fn sequential_ids_spread_over_sixteen_shards() {
        // Version 7 ids created in a burst differ only in a few bytes; they must still spread.
        let mut counts = [0u32; 16];
        for n in 0..16_000u128 {
            counts[usize::from(shard_of(Uuid::from_u128(n), 16))] += 1;
        }
        for (shard, &count) in counts.iter().enumerate() {
            assert!(
                (700..=1300).contains(&count),
                "shard {shard} got {count} of 16000: {counts:?}"
            );
        }
    }
}
