//! Generates the impls for a model that `valid` accepted: `SyncModel` once
//! (what needs no connection) and `Syncable<C>` once per connection type.
//! Everything is named by absolute path, so the code compiles whatever the
//! user imported; the helper items live in an anonymous `const _` block.

use crate::ast::{Field, Struct};
use crate::valid::{self, Roles};
use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned as _;
use syn::{DeriveInput, Path, Result};

/// The impls, or the errors plus stub impls so that they are the only ones.
pub fn derive(input: &DeriveInput) -> TokenStream {
    match expand(input) {
        Ok(tokens) => tokens,
        Err(err) => fallback(input, err),
    }
}

fn expand(input: &DeriveInput) -> Result<TokenStream> {
    let input = Struct::from_syn(input)?;
    let roles = valid::check(&input)?;
    Ok(Model::new(&input, &roles).impls())
}

/// The private path of the runtime this derive is built with.
fn private() -> TokenStream {
    quote!(::mobync::__private_0_1)
}

/// The connections to generate for: those named, else mobync's own enum.
fn connections(input: &Struct) -> Vec<Path> {
    if input.attrs.connections.is_empty() {
        vec![syn::parse_quote!(::mobync::db::DbConnection)]
    } else {
        input.attrs.connections.clone()
    }
}

/// Whether `path` is mobync's `DbConnection`, whose batch INSERTs must go
/// through the backend's own connection: by its full path (see
/// [`valid::whose_connection`]), never by its last segment alone.
fn is_db_connection(path: &Path) -> bool {
    matches!(valid::whose_connection(path), Ok(true))
}

/// After an error: the errors, and impls whose methods are never run, so
/// that uses of the model elsewhere add no error of their own. The first
/// error stands in the owner type (`[(); compile_error!(..)]`: a type that
/// holds an error, which rustc matches with any owner the app's
/// authenticator returns without a word), and the stubs hold for every
/// connection type: a model that names no owner, or no connection, reads
/// as the app uses it.
fn fallback(input: &DeriveInput, err: syn::Error) -> TokenStream {
    let mut errors = err.into_iter();
    let first = errors.next().map(|first| first.to_compile_error()).unwrap_or_default();
    let rest = errors.map(|err| err.to_compile_error());
    if !input.generics.params.is_empty() {
        return quote!(#first #( #rest )*);
    }
    let ty = &input.ident;
    let result = quote!(::core::result::Result);
    let err = quote!(::mobync::error::SyncError);
    let diff = quote!(::mobync::protocol::Diff);
    let owner = quote!(<#ty as ::mobync::SyncModel>::Owner);
    quote! {
        #[automatically_derived]
        #[allow(unused_variables, unreachable_code)]
        impl ::mobync::SyncModel for #ty {
            const MODEL: &'static str = "";
            const FIELDS: &'static [&'static str] = &[];
            type Owner = [(); #first];
            fn check(diff: &#diff) -> #result<(), #err> { ::core::unreachable!() }
        }
        #( #rest )*
        #[automatically_derived]
        #[allow(unused_variables, unreachable_code)]
        impl<C> ::mobync::Syncable<C> for #ty {
            fn read(conn: &mut C, owner: &#owner, id: &str)
                -> #result<::core::option::Option<::mobync::protocol::JsonObject>, #err> { ::core::unreachable!() }
            fn create(conn: &mut C, owner: &#owner, diff: &#diff) -> #result<(), #err> { ::core::unreachable!() }
            fn create_all(conn: &mut C, owner: &#owner, diffs: &[&#diff]) -> #result<(), #err> { ::core::unreachable!() }
            fn update(conn: &mut C, owner: &#owner, diff: &#diff) -> #result<(), #err> { ::core::unreachable!() }
            fn delete(conn: &mut C, owner: &#owner, diff: &#diff) -> #result<(), #err> { ::core::unreachable!() }
            fn validate_all(conn: &mut C, owner: &#owner, diffs: &[&#diff]) -> #result<(), #err> { ::core::unreachable!() }
        }
    }
}

/// Everything the generated code is made of, named once.
struct Model<'s, 'a> {
    input: &'s Struct<'a>,
    roles: &'s Roles<'s, 'a>,
    ty: &'a Ident,
    table: Path,
    model: String,
}

/// The rule of one operation: the const it is coerced to, if one is given.
struct Rule {
    name: Ident,
    given: bool,
}

impl<'s, 'a> Model<'s, 'a> {
    fn new(input: &'s Struct<'a>, roles: &'s Roles<'s, 'a>) -> Self {
        Model { input, roles, ty: input.ident(), table: input.table(), model: input.model_name() }
    }

    fn rules(&self) -> [(Rule, Option<&Path>); 3] {
        let attrs = &self.input.attrs;
        let rule = |op: &str, path: Option<&'s Path>| (Rule { name: format_ident!("__MOBYNC_VALIDATE_{}", op), given: path.is_some() }, path);
        [
            rule("CREATE", attrs.validate_create.as_ref().or(attrs.validate.as_ref())),
            rule("UPDATE", attrs.validate_update.as_ref().or(attrs.validate.as_ref())),
            rule("DELETE", attrs.validate_delete.as_ref()),
        ]
    }

    fn data(&self) -> &[&'s Field<'a>] {
        &self.roles.data
    }

    fn impls(&self) -> TokenStream {
        let private = private();
        let helpers = self.helpers();
        let sync_model = self.sync_model();
        let per_connection = connections(self.input).iter().map(|conn| self.syncable(conn)).collect::<Vec<_>>();
        quote! {
            #[allow(non_upper_case_globals, non_camel_case_types, dead_code, unused_qualifications)]
            const _: () = {
                // Diesel's derives expand to `diesel::...` after a `use
                // diesel;`, which finds this one: the user's crate needs no
                // `diesel` of its own.
                use #private::diesel;

                #helpers
                #sync_model
                #( #per_connection )*
            };
        }
    }

    /// The hidden structs (a create's fields, an update's patch, the row to
    /// insert), the rules' consts, and the decoding helpers.
    fn helpers(&self) -> TokenStream {
        let private = private();
        let (ty, table, model) = (self.ty, &self.table, &self.model);
        let (id, owner) = (self.roles.id, self.roles.owner);
        let (id_ident, owner_ident) = (id.ident, owner.ident);
        let (id_ty, owner_ty) = (id.ty, owner.ty);
        let (id_col, owner_col) = (id.column(), owner.column());
        let owner_name = owner.name();
        let data: Vec<&Ident> = self.data().iter().map(|f| f.ident).collect();
        let data_ty: Vec<_> = self.data().iter().map(|f| f.ty).collect();
        let data_col: Vec<Ident> = self.data().iter().map(|f| f.column()).collect();
        // The row a create inserts, column by column: the id, the owner,
        // then every synced field (its field, type and column).
        let row_field: Vec<Ident> =
            [format_ident!("__mobync_id"), format_ident!("__mobync_owner")].into_iter().chain(data.iter().map(|&d| d.clone())).collect();
        let row_ty: Vec<_> = [id_ty, owner_ty].into_iter().chain(data_ty.iter().copied()).collect();
        let row_col: Vec<&Ident> = [&id_col, &owner_col].into_iter().chain(&data_col).collect();
        let row_sep: Vec<TokenStream> =
            (0..row_col.len()).map(|at| if at == 0 { quote!() } else { quote!(out.push_sql(", ");) }).collect();
        let wire: Vec<String> = self.data().iter().map(|f| f.wire_name()).collect();
        let de_field: Vec<Ident> = self.data().iter().map(|f| format_ident!("__mobync_de_{}", f.name())).collect();
        let de_patch: Vec<Ident> = self.data().iter().map(|f| format_ident!("__mobync_some_{}", f.name())).collect();
        let de_field_name: Vec<String> = de_field.iter().map(Ident::to_string).collect();
        let de_patch_name: Vec<String> = de_patch.iter().map(Ident::to_string).collect();
        let id_bound = quote_spanned!(id_ty.span()=> #private::assert_row_id::<#id_ty>);

        let rule_consts = self.rules().into_iter().filter_map(|(rule, path)| {
            let (name, path) = (rule.name, path?);
            Some(quote_spanned! {path.span()=>
                const #name: fn(&<#owner_ty as ::mobync::Owner>::Ref, &#ty) -> ::core::result::Result<(), ::std::string::String> = #path;
            })
        });
        // The row a create rule sees: skipped columns hold their type's
        // default (the database sets them on insert).
        let typed_row = self.rules()[0].0.given.then(|| {
            let skipped = self.roles.skipped.iter().map(|f| {
                let (ident, ty) = (f.ident, f.ty);
                quote_spanned!(f.ty.span()=> #ident: <#ty as ::core::default::Default>::default())
            });
            quote! {
                fn __mobync_row(owner: &#owner_ty, diff: &::mobync::protocol::Diff) -> ::core::result::Result<#ty, ::mobync::error::SyncError> {
                    let create = __mobync_decode_create(diff)?;
                    ::core::result::Result::Ok(#ty {
                        #id_ident: __mobync_id(diff)?,
                        #owner_ident: ::core::clone::Clone::clone(owner),
                        #( #data: create.#data, )*
                        #( #skipped, )*
                    })
                }
            }
        });

        quote! {
            const _: () = #id_bound();

            /// The fields of a create, all required: `deserialize_with`
            /// keeps serde from reading a missing `Option` field as `None`.
            #[derive(#private::serde::Deserialize)]
            #[serde(crate = "::mobync::__private_0_1::serde", deny_unknown_fields)]
            struct __MobyncCreate {
                #(
                    #[serde(rename = #wire, deserialize_with = #de_field_name)]
                    #data: #data_ty,
                )*
            }

            /// The fields of an update: `Some` when present (even `null`).
            #[derive(#private::serde::Deserialize, #private::diesel::AsChangeset)]
            #[serde(crate = "::mobync::__private_0_1::serde", deny_unknown_fields)]
            #[diesel(table_name = #table, primary_key(#id_col))]
            struct __MobyncPatch {
                #(
                    #[serde(rename = #wire, default, deserialize_with = #de_patch_name)]
                    #[diesel(column_name = #data_col)]
                    #data: ::core::option::Option<#data_ty>,
                )*
            }

            // Each field's decoding, its errors naming the field.
            #(
                fn #de_field<'de, D, T>(deserializer: D) -> ::core::result::Result<T, D::Error>
                where
                    D: #private::serde::Deserializer<'de>,
                    T: #private::serde::Deserialize<'de>,
                {
                    #private::field(deserializer, #wire)
                }

                fn #de_patch<'de, D, T>(deserializer: D) -> ::core::result::Result<::core::option::Option<T>, D::Error>
                where
                    D: #private::serde::Deserializer<'de>,
                    T: #private::serde::Deserialize<'de>,
                {
                    #private::some_field(deserializer, #wire)
                }
            )*

            impl __MobyncCreate {
                /// Every number sent is the one decoded (none out of range).
                fn __mobync_fits(&self, diff: &::mobync::protocol::Diff) -> ::core::result::Result<(), ::mobync::error::SyncError> {
                    #( #private::fits(#model, #wire, &diff.data, &self.#data)?; )*
                    ::core::result::Result::Ok(())
                }
            }

            impl __MobyncPatch {
                fn __mobync_is_empty(&self) -> bool {
                    true #( && self.#data.is_none() )*
                }

                /// Every number sent is the one decoded (none out of range).
                fn __mobync_fits(&self, diff: &::mobync::protocol::Diff) -> ::core::result::Result<(), ::mobync::error::SyncError> {
                    #(
                        if let ::core::option::Option::Some(value) = &self.#data {
                            #private::fits(#model, #wire, &diff.data, value)?;
                        }
                    )*
                    ::core::result::Result::Ok(())
                }
            }

            /// The row a create inserts: no skipped column, so that the
            /// database's default applies. A `None` is the `null` the
            /// create sent, not the column's default; and with no value
            /// that could be `DEFAULT`, Diesel writes a batch as one
            /// multi-row INSERT on SQLite too (else one INSERT a row).
            #[derive(#private::diesel::Insertable)]
            #[diesel(table_name = #table, treat_none_as_default_value = false)]
            struct __MobyncNew {
                #(
                    #[diesel(column_name = #row_col)]
                    #row_field: #row_ty,
                )*
            }

            /// The same row as a multi-row INSERT kept prepared writes it.
            impl<__DB> #private::InsertRow<__DB> for __MobyncNew
            where
                __DB: #private::diesel::backend::Backend
                    #( + #private::diesel::sql_types::HasSqlType<#private::diesel::dsl::SqlTypeOf<#table::#row_col>> )*,
                #( #row_ty: #private::diesel::serialize::ToSql<#private::diesel::dsl::SqlTypeOf<#table::#row_col>, __DB>, )*
            {
                fn columns(mut out: #private::diesel::query_builder::AstPass<'_, '_, __DB>) -> #private::diesel::QueryResult<()> {
                    #(
                        #row_sep
                        out.push_identifier(<#table::#row_col as #private::diesel::Column>::NAME)?;
                    )*
                    ::core::result::Result::Ok(())
                }

                fn values<'__b>(&'__b self, mut out: #private::diesel::query_builder::AstPass<'_, '__b, __DB>) -> #private::diesel::QueryResult<()> {
                    #(
                        #row_sep
                        out.push_bind_param::<#private::diesel::dsl::SqlTypeOf<#table::#row_col>, #row_ty>(&self.#row_field)?;
                    )*
                    ::core::result::Result::Ok(())
                }
            }

            #( #rule_consts )*

            fn __mobync_id(diff: &::mobync::protocol::Diff) -> ::core::result::Result<#id_ty, ::mobync::error::SyncError> {
                #private::row_id::<#id_ty>(#model, diff.row_id())
            }

            fn __mobync_no_owner(diff: &::mobync::protocol::Diff) -> ::core::result::Result<(), ::mobync::error::SyncError> {
                if diff.data.contains_key(#owner_name) {
                    return ::core::result::Result::Err(#private::server_field(#model, #owner_name));
                }
                ::core::result::Result::Ok(())
            }

            fn __mobync_decode_create(
                diff: &::mobync::protocol::Diff,
            ) -> ::core::result::Result<__MobyncCreate, ::mobync::error::SyncError> {
                __mobync_no_owner(diff)?;
                let create: __MobyncCreate = #private::decode(#model, &diff.data, &["id"])?;
                create.__mobync_fits(diff)?;
                ::core::result::Result::Ok(create)
            }

            fn __mobync_patch(
                diff: &::mobync::protocol::Diff,
            ) -> ::core::result::Result<__MobyncPatch, ::mobync::error::SyncError> {
                __mobync_no_owner(diff)?;
                let patch: __MobyncPatch = #private::decode(#model, &diff.data, &["id"])?;
                patch.__mobync_fits(diff)?;
                ::core::result::Result::Ok(patch)
            }

            fn __mobync_new(owner: &#owner_ty, diff: &::mobync::protocol::Diff) -> ::core::result::Result<__MobyncNew, ::mobync::error::SyncError> {
                let create = __mobync_decode_create(diff)?;
                ::core::result::Result::Ok(__MobyncNew {
                    __mobync_id: __mobync_id(diff)?,
                    __mobync_owner: ::core::clone::Clone::clone(owner),
                    #( #data: create.#data, )*
                })
            }

            #typed_row
        }
    }

    /// `impl SyncModel`: the wire name and fields, the owner type, and the
    /// checks without a database.
    fn sync_model(&self) -> TokenStream {
        let (ty, model) = (self.ty, &self.model);
        let owner_ty = self.roles.owner.ty;
        let mut fields = vec!["id".to_owned()];
        fields.extend(self.data().iter().map(|f| f.wire_name()));
        quote! {
            #[automatically_derived]
            impl ::mobync::SyncModel for #ty {
                const MODEL: &'static str = #model;
                const FIELDS: &'static [&'static str] = &[#(#fields),*];
                type Owner = #owner_ty;

                fn check(diff: &::mobync::protocol::Diff) -> ::core::result::Result<(), ::mobync::error::SyncError> {
                    __mobync_id(diff)?;
                    match diff.op {
                        ::mobync::protocol::OperationType::Create => __mobync_decode_create(diff).map(|_| ()),
                        ::mobync::protocol::OperationType::Update => __mobync_patch(diff).map(|_| ()),
                        ::mobync::protocol::OperationType::Delete => ::core::result::Result::Ok(()),
                    }
                }
            }
        }
    }

    /// `impl Syncable<C>` for one connection type.
    fn syncable(&self, conn: &Path) -> TokenStream {
        let private = private();
        let (ty, table, model) = (self.ty, &self.table, &self.model);
        let (id, owner) = (self.roles.id, self.roles.owner);
        let (id_ident, id_ty, id_col) = (id.ident, id.ty, id.column());
        let id_col_name = id_col.to_string();
        let (owner_ty, owner_col) = (owner.ty, owner.column());
        let data: Vec<&Ident> = self.data().iter().map(|f| f.ident).collect();
        let wire: Vec<String> = self.data().iter().map(|f| f.wire_name()).collect();
        let result = quote!(::core::result::Result);
        let err = quote!(::mobync::error::SyncError);
        let diff_ty = quote!(::mobync::protocol::Diff);
        let traits = quote! {
            #[allow(unused_imports)]
            use #private::diesel::prelude::{
                ExpressionMethods as _, OptionalExtension as _, QueryDsl as _, RunQueryDsl as _,
                SelectableHelper as _,
            };
        };
        let filter_owned = quote! {
            #table::table
                .filter(#table::#id_col.eq(&row_id))
                .filter(#table::#owner_col.eq(owner))
        };
        // Kept prepared for the first lengths of run seen.
        let kept_insert = quote!(#private::KeptInsert::new(#table::table, rows, KEPT.keeps(rows.len() as u64)));
        let insert_rows = if is_db_connection(conn) {
            quote!(#private::on_backend!(conn, c => #kept_insert.execute(c)))
        } else {
            quote!(#kept_insert.execute(conn))
        };
        let validate_all = self.validate_all(conn);
        // The id, the owner and every synced field: `__MobyncNew`'s columns.
        let columns = 2 + self.data().len();

        quote! {
            #[automatically_derived]
            impl ::mobync::Syncable<#conn> for #ty {
                fn read(conn: &mut #conn, owner: &#owner_ty, id: &str) -> #result<::core::option::Option<::mobync::protocol::JsonObject>, #err> {
                    #traits
                    let row_id = match #private::row_id::<#id_ty>(#model, id) {
                        ::core::result::Result::Ok(row_id) => row_id,
                        ::core::result::Result::Err(_) => return ::core::result::Result::Ok(::core::option::Option::None),
                    };
                    let found = #filter_owned
                        .select(#ty::as_select())
                        .first::<#ty>(conn)
                        .optional()
                        .map_err(|err| #private::db(conn, err))?;
                    let row = match found {
                        ::core::option::Option::Some(row) => row,
                        ::core::option::Option::None => return ::core::result::Result::Ok(::core::option::Option::None),
                    };
                    let mut object = ::mobync::protocol::JsonObject::new();
                    object.insert(::std::string::String::from("id"), #private::id_value(&row.#id_ident));
                    #(
                        object.insert(::std::string::String::from(#wire), #private::encode(&row.#data)?);
                    )*
                    ::core::result::Result::Ok(::core::option::Option::Some(object))
                }

                fn create(conn: &mut #conn, owner: &#owner_ty, diff: &#diff_ty) -> #result<(), #err> {
                    #traits
                    let new = __mobync_new(owner, diff)?;
                    // One statement: a taken id is the key's unique
                    // violation, and the failed sync rolls back as a whole.
                    #private::diesel::insert_into(#table::table)
                        .values(&new)
                        .execute(conn)
                        .map_err(|err| #private::insert_failed(conn, #model, #id_col_name, diff.row_id(), err))?;
                    ::core::result::Result::Ok(())
                }

                fn create_all(conn: &mut #conn, owner: &#owner_ty, diffs: &[&#diff_ty]) -> #result<(), #err> {
                    #traits
                    let rows = diffs
                        .iter()
                        .map(|diff| __mobync_new(owner, diff).map_err(|err| err.with_diff(::std::clone::Clone::clone(&diff.id))))
                        .collect::<#result<::std::vec::Vec<__MobyncNew>, #err>>()?;
                    // Multi-row INSERTs alone: a taken id is the key's unique
                    // violation, whose diff is found then (the database names
                    // the value, or each row of the chunk is tried alone).
                    fn insert(conn: &mut #conn, rows: &[__MobyncNew]) -> #private::diesel::QueryResult<usize> {
                        #traits
                        static KEPT: #private::KeptSets = #private::KeptSets::new();
                        #insert_rows
                    }
                    const CHUNK: usize = #private::insert_chunk(#columns);
                    for (chunk, creates) in rows.chunks(CHUNK).zip(diffs.chunks(CHUNK)) {
                        // A unique value of another column, or another
                        // owner's create of an id that won the race.
                        if let ::core::result::Result::Err(err) = insert(conn, chunk) {
                            // What the server says of it, before the retries.
                            let said = #private::said(conn, &err);
                            let retry = |at: usize| insert(conn, &chunk[at..at + 1]).is_err();
                            return ::core::result::Result::Err(#private::chunk_insert_failed(#model, #id_col_name, creates, err, said, retry));
                        }
                    }
                    ::core::result::Result::Ok(())
                }

                fn update(conn: &mut #conn, owner: &#owner_ty, diff: &#diff_ty) -> #result<(), #err> {
                    #traits
                    let patch = __mobync_patch(diff)?;
                    let row_id = __mobync_id(diff)?;
                    let found = if patch.__mobync_is_empty() {
                        // Nothing to set, but the row must still be the owner's.
                        #filter_owned.count().get_result::<i64>(conn).map_err(|err| #private::db(conn, err))? as usize
                    } else {
                        // Kept prepared for the first sets of fields seen
                        // (Diesel's own UPDATE is compiled every time).
                        static KEPT: #private::KeptSets = #private::KeptSets::new();
                        let mut shape: ::core::primitive::u64 = 0;
                        #( shape = shape.rotate_left(1) ^ ::core::primitive::u64::from(patch.#data.is_some()); )*
                        #private::KeptUpdate::new(
                            #table::table,
                            #private::diesel::query_builder::AsChangeset::as_changeset(&patch),
                            #private::diesel::BoolExpressionMethods::and(#table::#id_col.eq(&row_id), #table::#owner_col.eq(owner)),
                            KEPT.keeps(shape),
                        )
                        .execute(conn)
                        .map_err(|err| #private::update_failed(conn, #model, err))?
                    };
                    if found == 0 {
                        return ::core::result::Result::Err(#private::no_row(#model, diff.row_id()));
                    }
                    ::core::result::Result::Ok(())
                }

                fn delete(conn: &mut #conn, owner: &#owner_ty, diff: &#diff_ty) -> #result<(), #err> {
                    #traits
                    let row_id = __mobync_id(diff)?;
                    let found = #private::diesel::delete(#filter_owned)
                        .execute(conn)
                        .map_err(|err| #private::db(conn, err))?;
                    if found == 0 {
                        return ::core::result::Result::Err(#private::no_row(#model, diff.row_id()));
                    }
                    ::core::result::Result::Ok(())
                }

                fn validate_all(conn: &mut #conn, owner: &#owner_ty, diffs: &[&#diff_ty]) -> #result<(), #err> {
                    #validate_all
                }
            }
        }
    }

    /// All the rules of a sync at once: the rows the update and delete
    /// rules need are read in one query, and patched in memory in order.
    fn validate_all(&self, _conn: &Path) -> TokenStream {
        let private = private();
        let (ty, table, model) = (self.ty, &self.table, &self.model);
        let (id, owner) = (self.roles.id, self.roles.owner);
        let (id_ident, id_ty, id_col) = (id.ident, id.ty, id.column());
        let owner_ident = owner.ident;
        let data: Vec<&Ident> = self.data().iter().map(|f| f.ident).collect();
        let [(create, _), (update, _), (delete, _)] = self.rules();
        let (has_update_rule, has_delete_rule) = (update.given, delete.given);
        let owner_arg = quote!(::mobync::Owner::as_ref(owner));
        let create_arm = if create.given {
            let name = create.name;
            quote! {
                let row = __mobync_row(owner, diff)?;
                #name(#owner_arg, &row).map_err(#private::refused)
            }
        } else {
            quote!(::core::result::Result::Ok(()))
        };
        let update_arm = if update.given {
            let name = update.name;
            quote! {
                let patch = __mobync_patch(diff)?;
                let row = rows.get_mut(diff.row_id()).ok_or_else(|| #private::no_row(#model, diff.row_id()))?;
                #(
                    if let ::core::option::Option::Some(value) = patch.#data {
                        row.#data = value;
                    }
                )*
                #name(#owner_arg, row).map_err(#private::refused)
            }
        } else {
            quote!(::core::result::Result::Ok(()))
        };
        let delete_arm = if delete.given {
            let name = delete.name;
            quote! {
                let row = rows.get(diff.row_id()).ok_or_else(|| #private::no_row(#model, diff.row_id()))?;
                #name(#owner_arg, row).map_err(#private::refused)
            }
        } else {
            quote!(::core::result::Result::Ok(()))
        };
        quote! {
            #[allow(unused_imports)]
            use #private::diesel::prelude::{ExpressionMethods as _, QueryDsl as _, RunQueryDsl as _, SelectableHelper as _};
            let wanted: ::std::vec::Vec<#id_ty> = #private::row_ids(#model, diffs.iter().filter(|diff| match diff.op {
                ::mobync::protocol::OperationType::Update => #has_update_rule,
                ::mobync::protocol::OperationType::Delete => #has_delete_rule,
                ::mobync::protocol::OperationType::Create => false,
            }).map(|diff| diff.row_id()));
            let mut rows: ::std::collections::HashMap<::std::string::String, #ty> = ::std::collections::HashMap::new();
            if !wanted.is_empty() {
                // By id alone, the owner compared here: given `owner = ?`
                // too, SQLite (without statistics) walks the owner's index,
                // every row of the owner, instead of the key.
                // Kept prepared for the first lengths of list.
                static KEPT: #private::KeptSets = #private::KeptSets::new();
                let keep = KEPT.keeps(wanted.len() as u64);
                let found: ::std::vec::Vec<#ty> = #private::Kept::new(
                    #table::table.filter(#table::#id_col.eq_any(wanted)).select(#ty::as_select()),
                    keep,
                )
                .load::<#ty>(conn)
                .map_err(|err| #private::db(conn, err))?;
                for row in found.into_iter().filter(|row| row.#owner_ident == *owner) {
                    rows.insert(::std::string::ToString::to_string(&row.#id_ident), row);
                }
            }
            for diff in diffs {
                let mut check = || -> ::core::result::Result<(), ::mobync::error::SyncError> {
                    match diff.op {
                        ::mobync::protocol::OperationType::Create => { #create_arm }
                        ::mobync::protocol::OperationType::Update => { #update_arm }
                        ::mobync::protocol::OperationType::Delete => { #delete_arm }
                    }
                };
                check().map_err(|err| err.with_diff(::std::clone::Clone::clone(&diff.id)))?;
            }
            ::core::result::Result::Ok(())
        }
    }
}
