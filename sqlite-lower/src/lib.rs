//! SQLite's `lower()` for every alphabet, not the 26 ASCII letters alone.
//!
//! SQLite built without ICU (as sqlx bundles it) lowercases ASCII only, so the member, mention
//! and room-name lookups, which compare `lower(column)` with a lowercased prefix, missed
//! "Élodie" for "élodie" on the single node while PostgreSQL (in a UTF-8 locale) found her.
//! [`register`] makes every SQLite connection the process opens afterwards carry a `lower()`
//! that lowercases each character by Unicode's mapping, as PostgreSQL's does and as the store
//! lowercases a prefix (`char::to_lowercase`, so a final "Σ" becomes "σ" on both sides). SQLite
//! lets an application function take a built-in one's name, so the SQL stays the same on both
//! engines.
//!
//! The schema has no index on `lower(...)`: one built by a connection without this function
//! would disagree with the connections that have it.

use std::ffi::{c_char, c_int};
use std::sync::OnceLock;

use rusqlite::auto_extension::{init_auto_extension, register_auto_extension};
use rusqlite::ffi;
use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::{Value, ValueRef};
use rusqlite::Connection;

/// Why the function could not be registered.
#[derive(Debug, Clone, thiserror::Error)]
#[error("registering SQLite's Unicode lower() failed: {0}")]
pub struct RegisterError(String);

/// Registers `lower()` for every SQLite connection opened from now on in this process (once per
/// process; later calls return the first answer). Connections opened before keep SQLite's own.
pub fn register() -> Result<(), RegisterError> {
    static REGISTERED: OnceLock<Result<(), RegisterError>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            // SAFETY: `on_open` opens and closes no connection and leaves SQLite's list of
            // automatic extensions alone, which is what registering one requires.
            unsafe { register_auto_extension(on_open) }.map_err(|e| RegisterError(e.to_string()))
        })
        .clone()
}

/// SQLite's hook for a connection it has just opened.
unsafe extern "C" fn on_open(
    db: *mut ffi::sqlite3,
    error: *mut *mut c_char,
    _api: *const ffi::sqlite3_api_routines,
) -> c_int {
    // SAFETY: SQLite passes the connection it is opening, open for the whole call, and its slot
    // for an error message; `install` only adds a function to it (and does not close it: the
    // `Connection` it gets does not own the handle).
    unsafe { init_auto_extension(db, error, install) }
}

/// Adds the function to one connection.
fn install(conn: Connection) -> rusqlite::Result<()> {
    conn.create_scalar_function(
        "lower",
        1,
        FunctionFlags::SQLITE_UTF8
            | FunctionFlags::SQLITE_DETERMINISTIC
            | FunctionFlags::SQLITE_INNOCUOUS,
        lower,
    )
}

/// `lower(x)`: text (and a blob, read as UTF-8 text) lowercased; NULL stays NULL. A number comes
/// back as its text, as from SQLite's own (an integer's digits exactly; a real's as Rust writes
/// it, where SQLite's may differ in form, e.g. `1e20` for `1.0e+20`).
fn lower(ctx: &Context<'_>) -> rusqlite::Result<Value> {
    Ok(match ctx.get_raw(0) {
        ValueRef::Text(text) | ValueRef::Blob(text) => Value::Text(lowercase(text)),
        ValueRef::Null => Value::Null,
        ValueRef::Integer(n) => Value::Text(n.to_string()),
        ValueRef::Real(x) => Value::Text(format!("{x:?}")),
    })
}

/// `text` lowercased; bytes that are not UTF-8 become U+FFFD, as a text column should not hold
/// them.
fn lowercase(text: &[u8]) -> String {
    // Most of what is compared is ASCII (addresses, most names): no case table needed.
    if text.is_ascii() {
        return text
            .iter()
            .map(|&byte| char::from(byte.to_ascii_lowercase()))
            .collect();
    }
    String::from_utf8_lossy(text)
        .chars()
        .flat_map(char::to_lowercase)
        .collect()
}
