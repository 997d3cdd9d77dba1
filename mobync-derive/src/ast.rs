//! The derive's own model of the input: a struct with named fields, its
//! parsed attributes, and the names the generated code uses.

use crate::attr::{self, Errors};
use proc_macro2::Ident;
use syn::ext::IdentExt as _;
use syn::{Data, DeriveInput, Error, Fields, Path, Result, Type};

/// The struct the derive is on.
pub struct Struct<'a> {
    /// The input, for spans.
    pub original: &'a DeriveInput,
    /// Its `#[mobync(...)]` and `#[diesel(table_name)]`.
    pub attrs: attr::Container,
    /// Its fields, in order.
    pub fields: Vec<Field<'a>>,
}

/// One named field.
pub struct Field<'a> {
    /// Its name as written (maybe raw, `r#type`).
    pub ident: &'a Ident,
    /// Its type.
    pub ty: &'a Type,
    /// Its `#[mobync(...)]` and `#[diesel(column_name)]`.
    pub attrs: attr::FieldAttrs,
}

impl<'a> Struct<'a> {
    /// Reads a struct with named fields; anything else is an error.
    pub fn from_syn(input: &'a DeriveInput) -> Result<Self> {
        let named = match &input.data {
            Data::Struct(data) => match &data.fields {
                Fields::Named(named) => named,
                Fields::Unnamed(fields) => {
                    return Err(Error::new_spanned(
                        fields,
                        "#[derive(Syncable)] needs named fields: a synced model is a struct like \
                         `struct Task { id: String, owner: String, ... }`, not a tuple struct",
                    ))
                }
                Fields::Unit => {
                    return Err(Error::new_spanned(
                        &input.ident,
                        "#[derive(Syncable)] needs named fields: a synced model is a struct like \
                         `struct Task { id: String, owner: String, ... }`, not a unit struct",
                    ))
                }
            },
            Data::Enum(data) => return Err(Error::new_spanned(
                data.enum_token,
                "#[derive(Syncable)] works on a struct with named fields (a Diesel model), not on an enum",
            )),
            Data::Union(data) => return Err(Error::new_spanned(
                data.union_token,
                "#[derive(Syncable)] works on a struct with named fields (a Diesel model), not on a union",
            )),
        };
        let mut errors = Errors::default();
        let attrs = errors.add(attr::container(&input.attrs)).unwrap_or_default();
        let mut fields = Vec::new();
        for field in &named.named {
            let field_attrs = errors.add(attr::field(&field.attrs));
            if let (Some(ident), Some(attrs)) = (&field.ident, field_attrs) {
                fields.push(Field { ident, ty: &field.ty, attrs });
            }
        }
        errors.finish(Struct { original: input, attrs, fields })
    }

    /// The struct's name.
    pub fn ident(&self) -> &'a Ident {
        &self.original.ident
    }

    /// The Diesel table: `#[diesel(table_name = ...)]`, else Diesel's own
    /// default, the struct name in snake_case plus `s`.
    pub fn table(&self) -> Path {
        match &self.attrs.table_name {
            Some(path) => path.clone(),
            None => {
                Ident::new(&default_table_name(&self.ident().unraw().to_string()), self.ident().span()).into()
            }
        }
    }

    /// The wire model name: `model = "..."`, else the table's name.
    pub fn model_name(&self) -> String {
        match &self.attrs.model {
            Some(lit) => lit.value(),
            None => match self.table().segments.last() {
                Some(segment) => segment.ident.unraw().to_string(),
                None => default_table_name(&self.ident().unraw().to_string()),
            },
        }
    }
}

impl Field<'_> {
    /// The field name, without `r#`: its key in serde and on the wire.
    pub fn name(&self) -> String {
        self.ident.unraw().to_string()
    }

    /// Its key on the wire: `#[mobync(rename = "...")]`, else its name.
    pub fn wire_name(&self) -> String {
        match &self.attrs.rename {
            Some(lit) => lit.value(),
            None => self.name(),
        }
    }

    /// The column: `#[diesel(column_name = ...)]`, else the field name.
    pub fn column(&self) -> Ident {
        match &self.attrs.column_name {
            Some(column) => column.clone(),
            None => self.ident.clone(),
        }
    }
}

/// Diesel's default table name (`diesel_derives::model::infer_table_name`).
fn default_table_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if i > 0 && c.is_uppercase() {
            out.push('_');
        }
        out.extend(c.to_lowercase());
    }
    out.push('s');
    out
}

#[cfg(test)]
mod tests {
    use super::default_table_name;

    #[test]
    fn default_table_name_is_diesels() {
        assert_eq!(default_table_name("Task"), "tasks");
        assert_eq!(default_table_name("FooBarBaz"), "foo_bar_bazs");
        assert_eq!(default_table_name("todo_item"), "todo_items");
    }
}
