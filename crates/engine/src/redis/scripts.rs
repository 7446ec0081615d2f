//! How Surge's Lua scripts are written and read. Every script is loaded with
//! `lua/prelude.lua` in front of it (the shared helpers: integer formatting and the
//! `Idempotency-Key` record of the entity's shard) and answers by one convention: an array
//! whose first element is a word naming the outcome, followed by that outcome's values, read
//! here by [`Reply`].

use ::redis::{Script, Value};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::EngineError;

const PRELUDE: &str = include_str!("lua/prelude.lua");

/// A script, with the prelude in front of it.
pub(crate) fn load(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}\n{body}"))
}

/// A script's reply: its outcome word and values, read by position (0 is the word). Numbers
/// may come as integers (a fresh reply) or as decimal text (a stored one).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reply<'a>(pub &'a [Value]);

impl<'a> Reply<'a> {
    /// The reply of a value, which must be an array.
    pub fn of(value: &'a Value) -> Result<Self, EngineError> {
        match value {
            Value::Array(values) => Ok(Reply(values)),
            other => Err(EngineError::Internal(format!("a script answered {other:?}"))),
        }
    }

    /// The outcome word.
    pub fn word(self) -> Option<&'a str> {
        self.text(0)
    }

    pub fn int(self, index: usize) -> Option<i64> {
        match self.0.get(index) {
            Some(Value::Int(value)) => Some(*value),
            Some(Value::BulkString(bytes)) => std::str::from_utf8(bytes).ok()?.parse().ok(),
            _ => None,
        }
    }

    pub fn text(self, index: usize) -> Option<&'a str> {
        match self.0.get(index) {
            Some(Value::BulkString(bytes)) => std::str::from_utf8(bytes).ok(),
            Some(Value::SimpleString(text)) => Some(text.as_str()),
            _ => None,
        }
    }

    /// Microseconds since the Unix epoch.
    pub fn time(self, index: usize) -> Option<DateTime<Utc>> {
        self.int(index).and_then(DateTime::<Utc>::from_timestamp_micros)
    }

    pub fn uuid(self, index: usize) -> Option<Uuid> {
        Uuid::parse_str(self.text(index)?).ok()
    }

    /// The values after the word, as a reply of their own (a replayed outcome).
    pub fn rest(self) -> Reply<'a> {
        Reply(self.0.get(1..).unwrap_or_default())
    }

    /// An error naming a reply that does not follow its script's contract.
    pub fn malformed(self, script: &str) -> EngineError {
        EngineError::Internal(format!("unexpected reply from {script}: {:?}", self.0))
    }
}

/// Runs a script whose one reply follows the convention, and hands it to `read`.
pub(crate) async fn call<T>(
    conn: &super::RedisConnection,
    invocation: &::redis::ScriptInvocation<'_>,
    read: impl FnOnce(Reply<'_>) -> Result<T, EngineError>,
) -> Result<T, EngineError> {
    let value: Value = super::invoke(conn, invocation).await?;
    read(Reply::of(&value)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    #[test]
    fn replies_are_read_by_word_and_position() {
        let values = [bulk("accepted"), Value::Int(3), bulk("250"), bulk(&Uuid::nil().to_string())];
        let reply = Reply(&values);
        assert_eq!(reply.word(), Some("accepted"));
        assert_eq!((reply.int(1), reply.int(2)), (Some(3), Some(250)));
        assert_eq!(reply.uuid(3), Some(Uuid::nil()));
        assert_eq!(reply.rest().int(0), Some(3));
        assert_eq!(reply.int(9), None);
        assert!(Reply::of(&Value::Int(1)).is_err());
    }
}
