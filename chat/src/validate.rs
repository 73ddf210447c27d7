//! Input rules shared by every action and entry point, collecting every problem before
//! refusing (400 over REST, an `invalid` frame over WebSocket).

use chatboard_core::model::{is_valid_email, message_body_problem, text_problem};
use serde_json::Value;
use unicode_normalization::UnicodeNormalization;

use crate::error::{ChatError, ChatResult, FieldErrors};

/// Collects field problems; [`Validator::finish`] turns them into one 400.
#[derive(Default)]
pub struct Validator {
    errors: FieldErrors,
}

impl Validator {
    /// Records a problem with `field`.
    pub fn add(&mut self, field: &str, problem: impl Into<String>) {
        self.errors
            .entry(field.to_owned())
            .or_default()
            .push(problem.into());
    }

    /// A trimmed line of text of `min..=max` characters, normalised (NFC); control and bidi
    /// override characters and invisible-only text are refused.
    pub fn text(&mut self, field: &str, value: &str, min: usize, max: usize) -> String {
        let trimmed = stored_text(value);
        let len = trimmed.chars().count();
        if let Some(problem) = text_problem(&trimmed) {
            self.add(field, problem);
        } else if len < min {
            self.add(
                field,
                if min == 1 {
                    "This field may not be blank.".to_owned()
                } else {
                    format!("Must be at least {min} characters.")
                },
            );
        } else if len > max {
            self.add(field, format!("Must be at most {max} characters."));
        }
        trimmed
    }

    /// A trimmed, lower-cased email address.
    pub fn email(&mut self, field: &str, value: &str) -> String {
        let email = value.trim().to_lowercase();
        if email.chars().count() > 254 {
            self.add(field, "Must be at most 254 characters.");
        } else if !is_valid_email(&email) {
            self.add(field, "Enter a valid email address.");
        }
        email
    }

    /// An optional http(s) URL of at most `max` characters; blank means "none".
    pub fn optional_url(&mut self, field: &str, value: &str, max: usize) -> Option<String> {
        let url = value.trim();
        if url.is_empty() {
            return None;
        }
        if url.chars().count() > max {
            self.add(field, format!("Must be at most {max} characters."));
        } else if !(url.starts_with("https://") || url.starts_with("http://"))
            || url.contains(|c: char| c.is_whitespace() || c.is_control())
        {
            self.add(field, "Enter a valid http(s) URL.");
        }
        Some(url.to_owned())
    }

    /// An optional positive integer given as text (a query parameter).
    pub fn optional_id(&mut self, field: &str, raw: Option<&str>) -> Option<i64> {
        let raw = raw?;
        match raw.trim().parse::<i64>() {
            Ok(n) if n > 0 => Some(n),
            _ => {
                self.add(field, "Must be a positive integer id.");
                None
            }
        }
    }

    /// An optional integer in `min..=max` given as text, or `default` when absent.
    pub fn int_in(
        &mut self,
        field: &str,
        raw: Option<&str>,
        min: i64,
        max: i64,
        default: i64,
    ) -> i64 {
        let Some(raw) = raw else { return default };
        match raw.trim().parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) => n,
            _ => {
                self.add(field, format!("Must be an integer from {min} to {max}."));
                default
            }
        }
    }

    /// Message text, by the rule every entry point shares; kept as written.
    pub fn message_body(&mut self, field: &str, value: &str) -> String {
        if let Some(problem) = message_body_problem(value) {
            self.add(field, problem);
        }
        value.to_owned()
    }

    /// Whether nothing has been recorded so far.
    pub fn is_clean(&self) -> bool {
        self.errors.is_empty()
    }

    /// `Invalid` with every recorded problem, or `Ok` when there were none.
    pub fn finish(self) -> ChatResult<()> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ChatError::Invalid(self.errors))
        }
    }
}

/// The field of a JSON document that holds a NUL character (`"\u0000"`), as a dotted path
/// (`name`, `items.2.title`), or `None`. No store keeps NUL (PostgreSQL refuses it in text),
/// so every JSON input is checked for it before it is read; the scan of the raw bytes keeps
/// the common case free.
pub fn nul_field(json: &[u8]) -> Option<String> {
    const ESCAPED_NUL: &[u8] = b"\\u0000";
    if !json.windows(ESCAPED_NUL.len()).any(|w| w == ESCAPED_NUL) {
        return None;
    }
    let value: Value = serde_json::from_slice(json).ok()?;
    path_to_nul(&value)
}

fn path_to_nul(value: &Value) -> Option<String> {
    let join = |head: &str, rest: Option<String>| match rest {
        Some(rest) if !rest.is_empty() => format!("{head}.{rest}"),
        _ => head.to_owned(),
    };
    match value {
        Value::String(s) => s.contains('\0').then(String::new),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| path_to_nul(item).map(|rest| join(&i.to_string(), Some(rest)))),
        Value::Object(fields) => fields.iter().find_map(|(key, item)| {
            if key.contains('\0') {
                return Some(key.replace('\0', "\\u0000"));
            }
            path_to_nul(item).map(|rest| join(key, Some(rest)))
        }),
        _ => None,
    }
}

/// Text as it is stored: trimmed and composed (NFC), as [`Validator::text`] keeps it. A
/// message's `client_msg_id` is stored so, and answers name it in that form.
pub fn stored_text(value: &str) -> String {
    value.trim().nfc().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_is_found_with_its_field() {
        assert_eq!(nul_field(br#"{"name":"ok"}"#), None);
        assert_eq!(
            nul_field(br#"{"name":"a\\u0000"}"#),
            None,
            "an escaped backslash"
        );
        assert_eq!(
            nul_field(br#"{"name":"a\u0000b"}"#).as_deref(),
            Some("name")
        );
        assert_eq!(
            nul_field(br#"{"spec":{"admins":["x","\u0000"]}}"#).as_deref(),
            Some("spec.admins.1")
        );
        assert_eq!(nul_field(br#""\u0000""#).as_deref(), Some(""));
    }

    #[test]
    fn every_problem_is_kept_by_field() {
        let mut v = Validator::default();
        assert_eq!(v.text("name", "  ü ", 1, 1), "ü");
        v.text("blank", "   ", 1, 10);
        v.text("long", &"x".repeat(11), 1, 10);
        match v.finish() {
            Err(ChatError::Invalid(fields)) => {
                assert_eq!(fields.keys().collect::<Vec<_>>(), ["blank", "long"]);
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
    }
}
