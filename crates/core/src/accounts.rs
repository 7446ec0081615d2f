//! Account rules: what a valid sign-up and profile look like.

use chrono::NaiveDate;
use uuid::Uuid;

use crate::validation::{FieldErrors, char_len};

/// Someone shown by id and nickname (a seller, a bidder, a winner, an author): what every app
/// shows of a user.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UserRef {
    pub id: Uuid,
    pub nickname: String,
}

pub const PASSWORD_MIN: usize = 8;
pub const PASSWORD_MAX: usize = 128;
pub const NICKNAME_MAX: usize = 10;
pub const ABOUT_MAX: usize = 200;
pub const EMAIL_MAX: usize = 254;

/// Normalises an email for storage and lookup: trimmed and lower-cased, so `Ann@X.io` and
/// `ann@x.io` are one account.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// A deliberately simple shape check (one `@`, non-empty local part, dotted domain, no spaces).
/// Deliverability is not something a regex can prove. Only printable ASCII: a control character
/// or a look-alike letter (a Cyrillic `а`) would make a second account for what reads as the
/// same address (an international domain goes in its `xn--` form).
pub fn validate_email(email: &str, errors: &mut FieldErrors) {
    let valid = email.len() <= EMAIL_MAX
        && email.bytes().all(|b| b.is_ascii_graphic())
        && match email.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            }
            None => false,
        };
    if !valid {
        errors.add("email", "must be a valid email address (printable ASCII)");
    }
}

pub fn validate_password(password: &str, errors: &mut FieldErrors) {
    let len = char_len(password);
    if !(PASSWORD_MIN..=PASSWORD_MAX).contains(&len) {
        errors.add("password", format!("must be {PASSWORD_MIN} to {PASSWORD_MAX} characters"));
    }
}

/// 1–10 characters as sent, not all white space; stored trimmed.
pub fn validate_nickname(nickname: &str, errors: &mut FieldErrors) -> String {
    let trimmed = nickname.trim();
    if trimmed.is_empty() || char_len(nickname) > NICKNAME_MAX {
        errors.add("nickname", format!("must be 1 to {NICKNAME_MAX} characters"));
    }
    trimmed.to_owned()
}

/// `YYYY-MM-DD`, not after `today`.
pub fn validate_birthday(
    birthday: &str,
    today: NaiveDate,
    errors: &mut FieldErrors,
) -> Option<NaiveDate> {
    match NaiveDate::parse_from_str(birthday, "%Y-%m-%d") {
        Ok(date) if date > today => {
            errors.add("birthday", "must not be in the future");
            None
        }
        Ok(date) => Some(date),
        Err(_) => {
            errors.add("birthday", "must be a date in YYYY-MM-DD format");
            None
        }
    }
}

pub fn validate_about(about: &str, errors: &mut FieldErrors) {
    if char_len(about) > ABOUT_MAX {
        errors.add("about", format!("must be at most {ABOUT_MAX} characters"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors_of(f: impl FnOnce(&mut FieldErrors)) -> FieldErrors {
        let mut errors = FieldErrors::new();
        f(&mut errors);
        errors
    }

    #[test]
    fn emails_are_trimmed_and_lowercased() {
        assert_eq!(normalize_email("  Ann@Example.COM "), "ann@example.com");
    }

    #[test]
    fn plausible_emails_pass_and_broken_ones_fail() {
        for ok in ["a@b.io", "first.last+tag@mail.example.org"] {
            assert!(errors_of(|e| validate_email(ok, e)).is_empty(), "{ok}");
        }
        for bad in ["", "ab.io", "a@b", "@b.io", "a@@b.io", "a b@c.io", "a@.io", "a@io."] {
            assert!(errors_of(|e| validate_email(bad, e)).contains("email"), "{bad}");
        }
        // A control character or a look-alike letter would be a second account for what
        // reads as the same address.
        for bad in ["alice@surge.test\u{0}", "\u{430}lice@surge.test", "al\u{7f}ice@surge.test"] {
            assert!(errors_of(|e| validate_email(bad, e)).contains("email"), "{bad:?}");
        }
    }

    #[test]
    fn passwords_must_be_8_to_128_characters() {
        assert!(errors_of(|e| validate_password("1234567", e)).contains("password"));
        assert!(errors_of(|e| validate_password("12345678", e)).is_empty());
        assert!(errors_of(|e| validate_password(&"x".repeat(128), e)).is_empty());
        assert!(errors_of(|e| validate_password(&"x".repeat(129), e)).contains("password"));
    }

    #[test]
    fn nicknames_count_characters_not_bytes() {
        assert!(
            errors_of(|e| {
                validate_nickname("가나다라마바사아자차", e);
            })
            .is_empty()
        );
        assert!(
            errors_of(|e| {
                validate_nickname("가나다라마바사아자차카", e);
            })
            .contains("nickname")
        );
        assert!(
            errors_of(|e| {
                validate_nickname("   ", e);
            })
            .contains("nickname")
        );
    }

    #[test]
    fn birthdays_in_the_future_or_malformed_are_rejected() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
        assert!(
            errors_of(|e| {
                validate_birthday("2026-11-21", today, e);
            })
            .is_empty()
        );
        assert!(
            errors_of(|e| {
                validate_birthday("2026-11-22", today, e);
            })
            .contains("birthday")
        );
        assert!(
            errors_of(|e| {
                validate_birthday("21/11/2000", today, e);
            })
            .contains("birthday")
        );
    }

    #[test]
    fn about_is_at_most_200_characters() {
        assert!(errors_of(|e| validate_about(&"é".repeat(200), e)).is_empty());
        assert!(errors_of(|e| validate_about(&"é".repeat(201), e)).contains("about"));
    }
}
