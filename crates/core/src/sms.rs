//! SMS-code login rules: what a phone number looks like, how long a code lives, how often one
//! may be asked for, how many wrong tries kill it, and the message that carries it. Sending is
//! `surge-engine::sms`; the codes are stored (hashed) by `surge-store::sms`.

use chrono::Duration;

/// A code lives this long after it was sent.
pub const CODE_TTL_SECS: i64 = 600;
/// A new code for the same phone may be asked for this long after the last one.
pub const RESEND_AFTER_SECS: i64 = 60;
/// Wrong tries after which a code is dead.
pub const MAX_WRONG_TRIES: u32 = 3;
/// Digits in a code.
pub const CODE_DIGITS: usize = 6;

pub fn code_ttl() -> Duration {
    Duration::seconds(CODE_TTL_SECS)
}

pub fn resend_after() -> Duration {
    Duration::seconds(RESEND_AFTER_SECS)
}

/// E.164: `+`, a country code that does not start with 0, at most 15 digits in all (and at
/// least 8, the shortest numbers in use).
pub fn valid_phone(phone: &str) -> bool {
    let Some(digits) = phone.strip_prefix('+') else { return false };
    (8..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

/// Exactly six ASCII digits.
pub fn valid_code(code: &str) -> bool {
    code.len() == CODE_DIGITS && code.bytes().all(|b| b.is_ascii_digit())
}

/// A code from a uniformly random 32-bit number (from a CSPRNG): six digits, leading zeros
/// kept. The modulo bias of 2^32 mod 10^6 is below one in four thousand.
pub fn code_from(random: u32) -> String {
    format!("{:06}", random % 1_000_000)
}

/// The text a provider delivers.
pub fn message_text(code: &str) -> String {
    format!("Your Surge code is {code}. It expires in {} minutes.", CODE_TTL_SECS / 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_are_e164() {
        for good in ["+821012345678", "+14155550123", "+4930123456"] {
            assert!(valid_phone(good), "{good}");
        }
        for bad in [
            "821012345678",
            "+0101234567",
            "+1234567",
            "+1234567890123456",
            "+1 415 555",
            "+1415555012a",
            "",
        ] {
            assert!(!valid_phone(bad), "{bad}");
        }
    }

    #[test]
    fn codes_are_six_digits_with_leading_zeros() {
        assert_eq!(code_from(0), "000000");
        assert_eq!(code_from(42), "000042");
        assert_eq!(code_from(u32::MAX), "967295");
        assert!(valid_code("012345"));
        for bad in ["12345", "1234567", "12345a", "１２３４５６"] {
            assert!(!valid_code(bad), "{bad}");
        }
    }
}
