//! Field-level validation errors, reported to clients as a 422 with a `fields` map.

use std::collections::BTreeMap;

/// Field name → what is wrong with it. Ordered so responses are stable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldErrors(BTreeMap<String, String>);

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a problem with `field`; the first problem found for a field wins.
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.entry(field.to_owned()).or_insert_with(|| message.into());
    }

    /// Adds another check's errors, so a client sees every problem at once.
    pub fn merge(&mut self, other: FieldErrors) {
        for (field, message) in other.0 {
            self.0.entry(field).or_insert(message);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, field: &str) -> bool {
        self.0.contains_key(field)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// `Ok(value)` when nothing was recorded, the errors otherwise.
    pub fn into_result<T>(self, value: T) -> Result<T, FieldErrors> {
        if self.is_empty() { Ok(value) } else { Err(self) }
    }

    /// A single-field error, for rules checked one at a time.
    pub fn single(field: &str, message: impl Into<String>) -> Self {
        let mut errors = Self::new();
        errors.add(field, message);
        errors
    }
}

/// Length in user-perceived characters (Unicode scalar values), which is what people mean by
/// "10 characters" for a nickname in any script.
pub fn char_len(value: &str) -> usize {
    value.chars().count()
}
