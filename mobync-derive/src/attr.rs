//! The helper attributes, parsed once: `#[mobync(...)]` on the struct and
//! its fields, and the two `#[diesel(...)]` keys the derive reads
//! (`table_name`, `column_name`).

use proc_macro2::{Ident, TokenTree};
use syn::meta::ParseNestedMeta;
use syn::parse::ParseStream;
use syn::{Attribute, Error, Expr, ExprLit, Lit, LitStr, Path, Result, Token};

const CONTAINER_KEYS: &str = "model, connection, validate, validate_create, validate_update, validate_delete";
const FIELD_KEYS: &str = "id, owner, skip, rename";

/// `#[mobync(...)]` and `#[diesel(table_name = ...)]` of the struct.
#[derive(Default)]
pub struct Container {
    /// `model = "..."`: the wire model name.
    pub model: Option<LitStr>,
    /// `validate = path`: the rule of creates and updates.
    pub validate: Option<Path>,
    /// `validate_create = path`.
    pub validate_create: Option<Path>,
    /// `validate_update = path`.
    pub validate_update: Option<Path>,
    /// `validate_delete = path`.
    pub validate_delete: Option<Path>,
    /// `connection = path`, each time it is given: the connection types to
    /// generate the glue for (default `::mobync::db::DbConnection`).
    pub connections: Vec<Path>,
    /// `#[diesel(table_name = path)]`.
    pub table_name: Option<Path>,
}

/// `#[mobync(...)]` and `#[diesel(column_name = ...)]` of a field. Each flag
/// keeps the key as written, for error spans.
#[derive(Default)]
pub struct FieldAttrs {
    /// `#[mobync(id)]`.
    pub id: Option<Path>,
    /// `#[mobync(owner)]`.
    pub owner: Option<Path>,
    /// `#[mobync(skip)]`.
    pub skip: Option<Path>,
    /// `#[mobync(rename = "wireName")]`.
    pub rename: Option<LitStr>,
    /// `#[diesel(column_name = ...)]`, as the column's Rust identifier.
    pub column_name: Option<Ident>,
}

/// Parses the attributes of the struct.
pub fn container(attrs: &[Attribute]) -> Result<Container> {
    let mut out = Container::default();
    let mut errors = Errors::default();
    for attr in attrs {
        if attr.path().is_ident("mobync") {
            errors.add(attr.parse_nested_meta(|meta| container_key(&mut out, &meta)));
        } else if attr.path().is_ident("diesel") {
            // Malformed diesel attributes are diesel's to report.
            let _ = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("table_name") {
                    out.table_name = Some(meta.value()?.parse()?);
                    Ok(())
                } else {
                    skip_value(meta.input)
                }
            });
        }
    }
    errors.finish(out)
}

/// Parses the attributes of a field.
pub fn field(attrs: &[Attribute]) -> Result<FieldAttrs> {
    let mut out = FieldAttrs::default();
    let mut errors = Errors::default();
    for attr in attrs {
        if attr.path().is_ident("mobync") {
            errors.add(attr.parse_nested_meta(|meta| field_key(&mut out, &meta)));
        } else if attr.path().is_ident("diesel") {
            let _ = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("column_name") {
                    out.column_name = Some(column_name(meta.value()?)?);
                    Ok(())
                } else {
                    skip_value(meta.input)
                }
            });
        }
    }
    errors.finish(out)
}

fn container_key(out: &mut Container, meta: &ParseNestedMeta) -> Result<()> {
    let key = key_name(&meta.path);
    match key.as_str() {
        "model" => {
            let value = string_value(meta, "model = \"task\"")?;
            if value.value().is_empty() {
                return Err(Error::new_spanned(&value, "the model name must not be empty"));
            }
            set_once(&mut out.model, value, &meta.path)
        }
        "connection" => {
            let path = connection_value(meta)?;
            if out.connections.iter().any(|known| key_name(known) == key_name(&path)) {
                return Err(Error::new_spanned(&path, format!("connection `{}` is given twice", key_name(&path))));
            }
            out.connections.push(path);
            Ok(())
        }
        "validate" => set_once(&mut out.validate, path_value(meta)?, &meta.path),
        "validate_create" => set_once(&mut out.validate_create, path_value(meta)?, &meta.path),
        "validate_update" => set_once(&mut out.validate_update, path_value(meta)?, &meta.path),
        "validate_delete" => set_once(&mut out.validate_delete, path_value(meta)?, &meta.path),
        "id" | "owner" | "skip" | "rename" => Err(meta.error(format!(
            "`{key}` is a field attribute: put #[mobync({key})] on the field, not on the struct"
        ))),
        _ => Err(meta
            .error(format!("unknown mobync attribute `{key}` on a struct; the keys are: {CONTAINER_KEYS}"))),
    }
}

fn field_key(out: &mut FieldAttrs, meta: &ParseNestedMeta) -> Result<()> {
    let key = key_name(&meta.path);
    let slot = match key.as_str() {
        "id" => &mut out.id,
        "owner" => &mut out.owner,
        "skip" => &mut out.skip,
        "rename" => {
            let value = string_value(meta, "rename = \"wireName\"")?;
            if value.value().is_empty() {
                return Err(Error::new_spanned(&value, "the wire name must not be empty"));
            }
            return set_once(&mut out.rename, value, &meta.path);
        }
        "model" | "connection" | "validate" | "validate_create" | "validate_update" | "validate_delete" => {
            return Err(meta.error(format!(
                "`{key}` is a struct attribute: put #[mobync({key} = ...)] on the struct, not on a field"
            )))
        }
        _ => {
            return Err(meta
                .error(format!("unknown mobync attribute `{key}` on a field; the keys are: {FIELD_KEYS}")))
        }
    };
    if !meta.input.is_empty() && !meta.input.peek(Token![,]) {
        return Err(meta.error(format!("`{key}` takes no value: write #[mobync({key})]")));
    }
    set_once(slot, meta.path.clone(), &meta.path)
}

fn key_name(path: &Path) -> String {
    let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    segments.join("::")
}

fn set_once<T>(slot: &mut Option<T>, value: T, key: &Path) -> Result<()> {
    if slot.is_some() {
        let name = key_name(key);
        return Err(Error::new_spanned(key, format!("duplicate mobync attribute `{name}`: give it once")));
    }
    *slot = Some(value);
    Ok(())
}

fn value_expr(meta: &ParseNestedMeta, example: &str) -> Result<Expr> {
    if !meta.input.peek(Token![=]) {
        let key = key_name(&meta.path);
        return Err(meta.error(format!("`{key}` needs a value: write `{example}`")));
    }
    meta.value()?.parse()
}

fn string_value(meta: &ParseNestedMeta, example: &str) -> Result<LitStr> {
    match value_expr(meta, example)? {
        Expr::Lit(ExprLit { lit: Lit::Str(lit), .. }) => Ok(lit),
        other => {
            let key = key_name(&meta.path);
            Err(Error::new_spanned(other, format!("`{key}` takes a string: write `{example}`")))
        }
    }
}

fn path_value(meta: &ParseNestedMeta) -> Result<Path> {
    let key = key_name(&meta.path);
    let example = format!("{key} = rules::check");
    match value_expr(meta, &example)? {
        Expr::Path(expr) if expr.qself.is_none() && expr.attrs.is_empty() => Ok(expr.path),
        Expr::Lit(ExprLit { lit: Lit::Str(lit), .. }) => Err(Error::new_spanned(
            &lit,
            format!(
                "`{key}` takes the path of a fn, not a string: write `{key} = {}` without the quotes",
                lit.value()
            ),
        )),
        other => Err(Error::new_spanned(
            other,
            format!(
                "`{key}` takes the path of a fn `fn(&str, &Model) -> Result<(), String>`: write `{example}`"
            ),
        )),
    }
}

/// `connection = path::To::Connection`.
fn connection_value(meta: &ParseNestedMeta) -> Result<Path> {
    let example = "connection = diesel::PgConnection";
    match value_expr(meta, example)? {
        Expr::Path(expr) if expr.qself.is_none() && expr.attrs.is_empty() => Ok(expr.path),
        other => Err(Error::new_spanned(
            other,
            format!("`connection` takes the path of a Diesel connection type: write `{example}`"),
        )),
    }
}

/// Diesel's `column_name = name` or `column_name = "name"`.
fn column_name(input: ParseStream) -> Result<Ident> {
    if input.peek(LitStr) {
        let lit: LitStr = input.parse()?;
        syn::parse_str::<Ident>(&format!("r#{}", lit.value()))
            .or_else(|_| syn::parse_str::<Ident>(&lit.value()))
            .map(|mut ident| {
                ident.set_span(lit.span());
                ident
            })
            .map_err(|_| Error::new_spanned(&lit, "expected a column name"))
    } else {
        syn::ext::IdentExt::parse_any(input)
    }
}

/// Skips the value of a diesel key the derive does not read, up to the next
/// `,` outside angle brackets (`serialize_as = Wrapper<A, B>`).
fn skip_value(input: ParseStream) -> Result<()> {
    let mut depth = 0usize;
    loop {
        if input.is_empty() || (depth == 0 && input.peek(Token![,])) {
            return Ok(());
        }
        match input.parse::<TokenTree>()? {
            TokenTree::Punct(p) if p.as_char() == '<' => depth += 1,
            TokenTree::Punct(p) if p.as_char() == '>' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
}

/// Collects errors so that one compile reports every misuse.
#[derive(Default)]
pub struct Errors(Option<Error>);

impl Errors {
    /// Keeps the error of `result`, if any.
    pub fn add<T>(&mut self, result: Result<T>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(err) => {
                self.push(err);
                None
            }
        }
    }

    /// Keeps `err`.
    pub fn push(&mut self, err: Error) {
        match &mut self.0 {
            Some(first) => first.combine(err),
            None => self.0 = Some(err),
        }
    }

    /// `value` if no error was kept.
    pub fn finish<T>(self, value: T) -> Result<T> {
        match self.0 {
            Some(err) => Err(err),
            None => Ok(value),
        }
    }
}
