//! Input rules shared by every action and entry point, collecting every problem before
//! refusing (400 over REST, an `invalid` frame over WebSocket).

use chatboard_core::model::{is_valid_email, message_body_problem};

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

    /// A trimmed string of `min..=max` characters.
    pub fn text(&mut self, field: &str, value: &str, min: usize, max: usize) -> String {
        let trimmed = value.trim();
        let len = trimmed.chars().count();
        if len < min {
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
        trimmed.to_owned()
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
            || url.contains(char::is_whitespace)
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

#[cfg(test)]
mod tests {
    use super::*;

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
