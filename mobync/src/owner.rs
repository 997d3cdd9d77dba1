//! Owners: whom a sync belongs to, in the app's own type (a text id, a
//! `SERIAL` user id, a UUID). The authenticator hands one back; the generated
//! code filters every query on it; the diff log keys it by its text form.

use std::borrow::Cow;
use std::fmt;

/// The type of a synced model's owner column: `String`, `i32`, `i64`, or
/// `uuid::Uuid` (feature `uuid`).
///
/// ```
/// use mobync::Owner;
/// assert_eq!(42i32.key(), "42");
/// assert_eq!(String::from("ada").key(), "ada");
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` can't be the owner of a synced model",
    label = "the owner column's type",
    note = "an owner is a `String`, an `i32`, an `i64` or a `uuid::Uuid` (feature `uuid` of mobync)"
)]
pub trait Owner: Clone + fmt::Debug + Send + Sync + 'static {
    /// What the app's rules are given: `str` for a `String` owner, the type
    /// itself otherwise (`fn(&str, &Task)`, `fn(&i32, &Note)`).
    type Ref: ?Sized;

    /// The owner as the diff log and the clocks keep it: its text form,
    /// which must differ for different owners.
    fn key(&self) -> Cow<'_, str>;

    /// The owner as a rule is given it.
    fn as_ref(&self) -> &Self::Ref;
}

impl Owner for String {
    type Ref = str;

    fn key(&self) -> Cow<'_, str> {
        Cow::Borrowed(self)
    }

    fn as_ref(&self) -> &str {
        self
    }
}

impl Owner for i32 {
    type Ref = i32;

    fn key(&self) -> Cow<'_, str> {
        Cow::Owned(self.to_string())
    }

    fn as_ref(&self) -> &i32 {
        self
    }
}

impl Owner for i64 {
    type Ref = i64;

    fn key(&self) -> Cow<'_, str> {
        Cow::Owned(self.to_string())
    }

    fn as_ref(&self) -> &i64 {
        self
    }
}

/// Keyed by its hyphenated lowercase text.
#[cfg(feature = "uuid")]
impl Owner for uuid::Uuid {
    type Ref = uuid::Uuid;

    fn key(&self) -> Cow<'_, str> {
        Cow::Owned(self.hyphenated().to_string())
    }

    fn as_ref(&self) -> &uuid::Uuid {
        self
    }
}

/// The type of a synced model's row id: `String`, `uuid::Uuid` (feature
/// `uuid`), or a type of the app's whose text form round-trips (parsing
/// the text a client sent and printing it gives that text back; a text that
/// does not is refused with 422).
///
/// ```
/// use mobync::RowId;
/// #[derive(Clone, PartialEq, Debug)]
/// struct Sku(String);
/// impl std::str::FromStr for Sku {
///     type Err = String;
///     fn from_str(s: &str) -> Result<Self, String> {
///         if s.starts_with("SKU-") { Ok(Sku(s.to_owned())) } else { Err("not a SKU".into()) }
///     }
/// }
/// impl std::fmt::Display for Sku {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(&self.0) }
/// }
/// impl RowId for Sku {}
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` can't be the row id of a synced model",
    label = "the row id's type",
    note = "a row id is a `String`, a `uuid::Uuid` (feature `uuid` of mobync), or a type that implements \
            `mobync::RowId` (its `FromStr` and `Display` round-trip the text ids clients send)"
)]
pub trait RowId: std::str::FromStr + fmt::Display + Clone + PartialEq + Send + 'static
where
    <Self as std::str::FromStr>::Err: fmt::Display,
{
}

impl RowId for String {}

#[cfg(feature = "uuid")]
impl RowId for uuid::Uuid {}
