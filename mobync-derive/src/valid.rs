//! Checks a parsed struct and finds the role of each field; every misuse is
//! an error spanned on the token at fault, saying how to fix it.

use crate::ast::{Field, Struct};
use crate::attr::Errors;
use syn::{Error, Result};

/// The fields of a valid model by role.
pub struct Roles<'s, 'a> {
    /// The row id (`id`, or `#[mobync(id)]`).
    pub id: &'s Field<'a>,
    /// The owner column (`owner`, or `#[mobync(owner)]`).
    pub owner: &'s Field<'a>,
    /// The synced fields besides the id, in order; never empty.
    pub data: Vec<&'s Field<'a>>,
    /// `#[mobync(skip)]`: left out of the INSERT (the column's default
    /// applies) and of every update.
    pub skipped: Vec<&'s Field<'a>>,
}

/// Checks `input` and sorts its fields by role.
pub fn check<'s, 'a>(input: &'s Struct<'a>) -> Result<Roles<'s, 'a>> {
    let generics = &input.original.generics;
    if !generics.params.is_empty() || generics.where_clause.is_some() {
        return Err(Error::new_spanned(
            generics,
            "a synced model can't have generic parameters or lifetimes: derive Syncable on a concrete struct",
        ));
    }

    let id = role(input, "id", |f| f.attrs.id.as_ref())?;
    let owner = role(input, "owner", |f| f.attrs.owner.as_ref())?;
    if std::ptr::eq(id, owner) {
        let key = owner.attrs.owner.as_ref().or(id.attrs.id.as_ref());
        let message = format!(
            "field `{}` can't be both the row id and the owner: give one of the roles to another field",
            id.name()
        );
        return Err(match key {
            Some(key) => Error::new_spanned(key, message),
            None => Error::new_spanned(id.ident, message),
        });
    }

    let mut errors = Errors::default();
    if let Some(rename) = &id.attrs.rename {
        errors.push(Error::new_spanned(
            rename,
            format!("field `{}` is the row id, which is always `id` on the wire: remove `rename`", id.name()),
        ));
    }
    for field in input.fields.iter().filter(|f| std::ptr::eq(*f, owner) || f.attrs.skip.is_some()) {
        if let Some(rename) = &field.attrs.rename {
            let what = if std::ptr::eq(field, owner) { "the owner, set by the server" } else { "skipped" };
            errors.push(Error::new_spanned(
                rename,
                format!("field `{}` is {what} and never on the wire: remove `rename`", field.name()),
            ));
        }
    }
    for (field, what) in [(id, "row id"), (owner, "owner")] {
        if let Some(skip) = &field.attrs.skip {
            errors.push(Error::new_spanned(
                skip,
                format!(
                    "field `{}` is the {what}, which is always synced: remove #[mobync(skip)]",
                    field.name()
                ),
            ));
        }
    }

    let mut data = Vec::new();
    let mut skipped = Vec::new();
    for field in &input.fields {
        if std::ptr::eq(field, id) {
            continue;
        }
        if field.attrs.skip.is_some() {
            skipped.push(field);
            continue;
        }
        if std::ptr::eq(field, owner) {
            continue;
        }
        let wire = field.wire_name();
        if wire == "id" {
            let message = match &field.attrs.rename {
                Some(_) => format!(
                    "field `{}` is renamed to `id`, the wire key of the row id `{}`: choose another name",
                    field.name(),
                    id.name()
                ),
                None => format!(
                    "field `id` would be sent as `id`, the wire key of the row id `{}`: rename the field \
                     (keeping its column with #[diesel(column_name = id)]), give it another wire name with \
                     #[mobync(rename = \"...\")], or mark it #[mobync(skip)]",
                    id.name()
                ),
            };
            match &field.attrs.rename {
                Some(rename) => errors.push(Error::new_spanned(rename, message)),
                None => errors.push(Error::new_spanned(field.ident, message)),
            }
        } else if wire == owner.name() {
            let message = format!(
                "field `{}` would be sent as `{wire}`, which names the owner field: give it another wire \
                 name with #[mobync(rename = \"...\")]",
                field.name()
            );
            match &field.attrs.rename {
                Some(rename) => errors.push(Error::new_spanned(rename, message)),
                None => errors.push(Error::new_spanned(field.ident, message)),
            }
        } else if let Some(first) = data.iter().find(|f: &&&Field| f.wire_name() == wire) {
            let message = format!(
                "fields `{}` and `{}` would both be sent as `{wire}`: give one of them another wire name \
                 with #[mobync(rename = \"...\")]",
                first.name(),
                field.name()
            );
            match &field.attrs.rename {
                Some(rename) => errors.push(Error::new_spanned(rename, message)),
                None => errors.push(Error::new_spanned(field.ident, message)),
            }
        }
        data.push(field);
    }
    for path in &input.attrs.connections {
        if let Err(err) = whose_connection(path) {
            errors.push(err);
        }
    }
    let on_db_connection =
        input.attrs.connections.is_empty() || input.attrs.connections.iter().any(|path| matches!(whose_connection(path), Ok(true)));
    if on_db_connection {
        if let Err(err) = default_connection_holds(input) {
            errors.push(err);
        }
    }
    errors.finish(())?;

    if data.is_empty() {
        return Err(Error::new_spanned(
            input.ident(),
            format!(
                "`{}` has nothing to sync besides its row id and owner: add a field \
                 (fields marked #[mobync(skip)] are not synced)",
                input.ident()
            ),
        ));
    }
    Ok(Roles { id, owner, data, skipped })
}

/// The field of a role: the one marked `#[mobync(role)]`, else the one named
/// `role`.
fn role<'s, 'a>(
    input: &'s Struct<'a>,
    role: &str,
    marked: impl Fn(&'s Field<'a>) -> Option<&'s syn::Path>,
) -> Result<&'s Field<'a>> {
    let mut found: Option<&'s Field<'a>> = None;
    let mut errors = Errors::default();
    for field in input.fields.iter() {
        if let Some(key) = marked(field) {
            match found {
                Some(first) => errors.push(Error::new_spanned(
                    key,
                    format!(
                        "two fields are marked #[mobync({role})], `{}` and `{}`: a model has one {}; \
                         remove one of the attributes",
                        first.name(),
                        field.name(),
                        what(role),
                    ),
                )),
                None => found = Some(field),
            }
        }
    }
    errors.finish(())?;
    found.or_else(|| input.fields.iter().find(|f| f.name() == role)).ok_or_else(|| {
        Error::new_spanned(
            input.ident(),
            format!(
                "`{}` has no {}: name a field `{role}`, or mark the field that holds it #[mobync({role})]",
                input.ident(),
                what(role),
            ),
        )
    })
}

fn what(role: &str) -> &'static str {
    match role {
        "id" => "row id",
        _ => "owner column",
    }
}

/// Whether `path` (of `connection = path`) is mobync's own
/// `DbConnection`, an enum whose code differs from that of a connection
/// type: only when written in full, `mobync::db::DbConnection` (or
/// `::mobync::db::DbConnection`). A path of another crate's, or of the
/// app's starting with `crate`, `self` or `super`, is the app's own type,
/// even named `DbConnection` (`type DbConnection = diesel::PgConnection`).
/// A `DbConnection` reached by any other path (`DbConnection`,
/// `db::DbConnection`) could be either: an error that asks which, rather
/// than code generated for the wrong one.
pub fn whose_connection(path: &syn::Path) -> Result<bool> {
    let names: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    if names == ["mobync", "db", "DbConnection"] {
        return Ok(true);
    }
    let rooted = path.leading_colon.is_some() || matches!(names[0].as_str(), "crate" | "self" | "super");
    if names.last().map(String::as_str) != Some("DbConnection") || rooted || names.len() > 2 {
        return Ok(false);
    }
    let written = names.join("::");
    Err(Error::new_spanned(
        path,
        format!(
            "`connection = {written}`: whose `DbConnection` is it? Write `mobync::db::DbConnection` for mobync's \
             (or leave `connection` out: it is the default), or a path from a crate's root, such as \
             `crate::{written}` or `::other_crate::{written}`, for a type of your own"
        ),
    ))
}

/// Types that mobync's default connection, `mobync::db::DbConnection`
/// (Diesel's `MultiBackend`: only what SQLite, PostgreSQL and MySQL share),
/// cannot hold, by the last segment of their path. Without this check such a
/// model gives a score of Diesel trait errors, none naming the fix.
const NOT_ON_DEFAULT_CONNECTION: &[&str] = &[
    "Uuid", "DateTime", "Value", "JsonValue", "BigDecimal", "IpNetwork", "IpAddr", "Ipv4Addr", "Ipv6Addr",
    "MacAddress", "PgInterval", "PgMoney", "PgNumeric", "PgTimestamp", "PgDate", "PgTime", "Range",
];

/// The name of `ty`'s type (inside an `Option`) if the default connection
/// cannot hold it: one of [`NOT_ON_DEFAULT_CONNECTION`], or a `Vec` other
/// than `Vec<u8>` (a PostgreSQL array).
fn not_on_default_connection(ty: &syn::Type) -> Option<String> {
    let syn::Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    let inner = match &last.arguments {
        syn::PathArguments::AngleBracketed(args) => args.args.iter().find_map(|arg| match arg {
            syn::GenericArgument::Type(ty) => Some(ty),
            _ => None,
        }),
        _ => None,
    };
    let name = last.ident.to_string();
    match (name.as_str(), inner) {
        ("Option", Some(inner)) => not_on_default_connection(inner),
        ("Vec", Some(syn::Type::Path(item))) if !item.path.is_ident("u8") => Some(name),
        _ if NOT_ON_DEFAULT_CONNECTION.contains(&name.as_str()) => Some(name),
        _ => None,
    }
}

/// On `DbConnection` (no `connection = ...`, or that one named), every
/// field's type must be one it holds; else one error that names the fix.
fn default_connection_holds(input: &Struct) -> Result<()> {
    let mut found = input.fields.iter().filter_map(|f| not_on_default_connection(f.ty).map(|name| (f, name)));
    let Some((first, name)) = found.next() else { return Ok(()) };
    let others: Vec<String> = found.map(|(f, _)| format!("`{}`", f.name())).collect();
    let also = if others.is_empty() { String::new() } else { format!(" (nor those of {})", others.join(", ")) };
    Err(Error::new_spanned(
        first.ty,
        format!(
            "`{}` syncs on `mobync::db::DbConnection` (mobync's default connection: SQLite, PostgreSQL or MySQL \
             chosen by the URL, holding only the column types all three share), which cannot hold field `{}`'s \
             type `{name}`{also}: name the connection your app uses on the struct, e.g. \
             #[mobync(connection = diesel::PgConnection)]",
            input.ident(),
            first.name(),
        ),
    ))
}
