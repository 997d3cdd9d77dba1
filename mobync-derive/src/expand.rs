//! Generates `impl ::mobync::Syncable` for a model that `valid` accepted.
//! Everything is named by absolute path, so the code compiles whatever the
//! user imported; the helper items live in an anonymous `const _` block.

use crate::ast::Struct;
use crate::valid::{self, Roles};
use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned as _;
use syn::{DeriveInput, Path, Result};

/// The impl, or the errors plus a stub impl so that they are the only ones.
pub fn derive(input: &DeriveInput) -> TokenStream {
    match expand(input) {
        Ok(tokens) => tokens,
        Err(err) => {
            let mut tokens = err.to_compile_error();
            tokens.extend(fallback(input));
            tokens
        }
    }
}

fn expand(input: &DeriveInput) -> Result<TokenStream> {
    let input = Struct::from_syn(input)?;
    let roles = valid::check(&input)?;
    Ok(impl_syncable(&input, &roles))
}

/// The bodies of the trait's methods; the parameters are named `conn`,
/// `owner`, `diff` (and `id` for `read`).
struct Bodies {
    check: TokenStream,
    read: TokenStream,
    create: TokenStream,
    update: TokenStream,
    delete: TokenStream,
    validate_create: TokenStream,
    validate_update: TokenStream,
    validate_delete: TokenStream,
    validate_all: TokenStream,
    create_all: TokenStream,
}

fn impl_block(ty: &Ident, model: &str, fields: &[String], bodies: Bodies) -> TokenStream {
    let Bodies { check, read, create, update, delete, validate_create, validate_update, validate_delete, validate_all, create_all } =
        bodies;
    quote! {
        #[automatically_derived]
        #[allow(unused_variables, unused_mut, unreachable_code)]
        impl ::mobync::Syncable for #ty {
            const MODEL: &'static str = #model;
            const FIELDS: &'static [&'static str] = &[#(#fields),*];

            fn check(diff: &::mobync::protocol::Diff) -> ::core::result::Result<(), ::mobync::error::SyncError> {
                #check
            }
            fn read(
                conn: &mut ::mobync::db::DbConnection,
                owner: &str,
                id: &str,
            ) -> ::core::result::Result<::core::option::Option<::mobync::protocol::JsonObject>, ::mobync::error::SyncError> {
                #read
            }
            fn create(
                conn: &mut ::mobync::db::DbConnection,
                owner: &str,
                diff: &::mobync::protocol::Diff,
            ) -> ::core::result::Result<(), ::mobync::error::SyncError> {
                #create
            }
            fn update(
                conn: &mut ::mobync::db::DbConnection,
                owner: &str,
                diff: &::mobync::protocol::Diff,
            ) -> ::core::result::Result<(), ::mobync::error::SyncError> {
                #update
            }
            fn delete(
                conn: &mut ::mobync::db::DbConnection,
                owner: &str,
                diff: &::mobync::protocol::Diff,
            ) -> ::core::result::Result<(), ::mobync::error::SyncError> {
                #delete
            }
            fn validate_create(
                conn: &mut ::mobync::db::DbConnection,
                owner: &str,
                diff: &::mobync::protocol::Diff,
            ) -> ::core::result::Result<(), ::mobync::error::SyncError> {
                #validate_create
            }
            fn validate_update(
                conn: &mut ::mobync::db::DbConnection,
                owner: &str,
                diff: &::mobync::protocol::Diff,
            ) -> ::core::result::Result<(), ::mobync::error::SyncError> {
                #validate_update
            }
            fn validate_delete(
                conn: &mut ::mobync::db::DbConnection,
                owner: &str,
                diff: &::mobync::protocol::Diff,
            ) -> ::core::result::Result<(), ::mobync::error::SyncError> {
                #validate_delete
            }

            fn validate_all(
                conn: &mut ::mobync::db::DbConnection,
                owner: &str,
                diffs: &[&::mobync::protocol::Diff],
            ) -> ::core::result::Result<(), ::mobync::error::SyncError> {
                #validate_all
            }

            fn create_all(
                conn: &mut ::mobync::db::DbConnection,
                owner: &str,
                diffs: &[&::mobync::protocol::Diff],
            ) -> ::core::result::Result<(), ::mobync::error::SyncError> {
                #create_all
            }
        }
    }
}

/// After an error: an impl whose methods are never run, so that uses of the
/// model elsewhere do not add "Syncable is not implemented" errors.
fn fallback(input: &DeriveInput) -> TokenStream {
    if !input.generics.params.is_empty() {
        return TokenStream::new();
    }
    let stub = || quote!(::core::unreachable!());
    let bodies = Bodies {
        check: stub(),
        read: stub(),
        create: stub(),
        update: stub(),
        delete: stub(),
        validate_create: stub(),
        validate_update: stub(),
        validate_delete: stub(),
        validate_all: stub(),
        create_all: stub(),
    };
    impl_block(&input.ident, "", &[], bodies)
}

fn impl_syncable(input: &Struct, roles: &Roles) -> TokenStream {
    let ty = input.ident();
    let table = input.table();
    let model = input.model_name();
    let private = quote!(::mobync::__private);

    let id = roles.id.ident;
    let id_col = roles.id.column();
    let owner = roles.owner.ident;
    let owner_col = roles.owner.column();
    let owner_name = roles.owner.name();

    let data: Vec<&Ident> = roles.data.iter().map(|f| f.ident).collect();
    let data_ty: Vec<_> = roles.data.iter().map(|f| f.ty).collect();
    let data_col: Vec<Ident> = roles.data.iter().map(|f| f.column()).collect();
    let data_name: Vec<String> = roles.data.iter().map(|f| f.name()).collect();
    let skipped = roles.skipped.iter().map(|f| {
        let ident = f.ident;
        quote_spanned!(f.ty.span()=> #ident: ::core::default::Default::default())
    });

    let mut fields = vec!["id".to_owned()];
    fields.extend(data_name.iter().cloned());

    // The rules, each coerced to a fn pointer at the attribute's span so
    // that a wrong path or signature is reported there.
    let attrs = &input.attrs;
    let rules = [
        ("CREATE", attrs.validate_create.as_ref().or(attrs.validate.as_ref())),
        ("UPDATE", attrs.validate_update.as_ref().or(attrs.validate.as_ref())),
        ("DELETE", attrs.validate_delete.as_ref()),
    ];
    let rule_consts = rules.iter().filter_map(|(op, path)| path.map(|path| rule_const(ty, op, path)));
    let [create_rule, update_rule, delete_rule] = rules.map(|(op, path)| path.map(|_| rule_name(op)));

    let filter_owned = quote! {
        #table::table
            .filter(#table::#id_col.eq(row_id))
            .filter(#table::#owner_col.eq(owner))
    };
    let traits = quote! {
        #[allow(unused_imports)]
        use #private::diesel::prelude::{
            ExpressionMethods as _, OptionalExtension as _, QueryDsl as _, RunQueryDsl as _,
            SelectableHelper as _,
        };
    };

    // The rules of one diff are those of a sync of that one diff.
    let validate_one = quote! {
        <#ty as ::mobync::Syncable>::validate_all(conn, owner, &[diff])
    };
    let (validate_create, validate_update, validate_delete) =
        (validate_one.clone(), validate_one.clone(), validate_one);

    // All the rules of a sync at once: the rows the update and delete rules
    // need are read in one query, and patched in memory in order.
    let (has_update_rule, has_delete_rule) = (update_rule.is_some(), delete_rule.is_some());
    let create_arm = match &create_rule {
        Some(rule) => quote! {
            let row = __mobync_row(owner, diff)?;
            #rule(owner, &row).map_err(#private::refused)
        },
        None => quote!(::core::result::Result::Ok(())),
    };
    let update_arm = match &update_rule {
        Some(rule) => quote! {
            let patch = __mobync_patch(diff)?;
            let row = rows.get_mut(diff.row_id()).ok_or_else(|| #private::no_row(#model, diff.row_id()))?;
            #(
                if let ::core::option::Option::Some(value) = patch.#data {
                    row.#data = value;
                }
            )*
            #rule(owner, row).map_err(#private::refused)
        },
        None => quote!(::core::result::Result::Ok(())),
    };
    let delete_arm = match &delete_rule {
        Some(rule) => quote! {
            let row = rows.get(diff.row_id()).ok_or_else(|| #private::no_row(#model, diff.row_id()))?;
            #rule(owner, row).map_err(#private::refused)
        },
        None => quote!(::core::result::Result::Ok(())),
    };
    let validate_all = quote! {
        #traits
        let wanted: ::std::vec::Vec<&str> = diffs
            .iter()
            .filter(|diff| match diff.op {
                ::mobync::protocol::OperationType::Update => #has_update_rule,
                ::mobync::protocol::OperationType::Delete => #has_delete_rule,
                ::mobync::protocol::OperationType::Create => false,
            })
            .map(|diff| diff.row_id())
            .collect();
        let mut rows: ::std::collections::HashMap<::std::string::String, #ty> = ::std::collections::HashMap::new();
        if !wanted.is_empty() {
            let found: ::std::vec::Vec<#ty> = #table::table
                .filter(#table::#id_col.eq_any(wanted))
                .filter(#table::#owner_col.eq(owner))
                .select(#ty::as_select())
                .load::<#ty>(conn)
                .map_err(#private::db)?;
            for row in found {
                let key = ::std::borrow::ToOwned::to_owned(::core::convert::AsRef::<str>::as_ref(&row.#id));
                rows.insert(key, row);
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
    };

    // Several creates: one query for the ids already taken (so the answer
    // names the diff), then multi-row INSERTs on the backend's own
    // connection (Diesel's batch insert does not go through the enum).
    let create_all = quote! {
        #traits
        let rows = diffs
            .iter()
            .map(|diff| __mobync_row(owner, diff).map_err(|err| err.with_diff(::std::clone::Clone::clone(&diff.id))))
            .collect::<::core::result::Result<::std::vec::Vec<#ty>, ::mobync::error::SyncError>>()?;
        let ids: ::std::vec::Vec<&str> = diffs.iter().map(|diff| diff.row_id()).collect();
        let taken: ::std::vec::Vec<::std::string::String> = #table::table
            .filter(#table::#id_col.eq_any(&ids))
            .select(#table::#id_col)
            .load(conn)
            .map_err(#private::db)?;
        if let ::core::option::Option::Some(diff) = diffs.iter().find(|diff| taken.iter().any(|id| id == diff.row_id())) {
            return ::core::result::Result::Err(
                #private::taken(#model, diff.row_id()).with_diff(::std::clone::Clone::clone(&diff.id)),
            );
        }
        fn insert(
            conn: &mut ::mobync::db::DbConnection,
            rows: &[#ty],
        ) -> #private::diesel::QueryResult<usize> {
            #traits
            ::mobync::__mobync_on_backend!(conn, c => #private::diesel::insert_into(#table::table).values(rows).execute(c))
        }
        for chunk in rows.chunks(#private::INSERT_CHUNK) {
            insert(conn, chunk).map_err(#private::db)?;
        }
        ::core::result::Result::Ok(())
    };

    let bodies = Bodies {
        check: quote! {
            if diff.op == ::mobync::protocol::OperationType::Create {
                __mobync_decode_create(diff).map(|_| ())
            } else if diff.op == ::mobync::protocol::OperationType::Update {
                __mobync_patch(diff).map(|_| ())
            } else {
                ::core::result::Result::Ok(())
            }
        },
        read: quote! {
            let row = match __mobync_current(conn, owner, id)? {
                ::core::option::Option::Some(row) => row,
                ::core::option::Option::None => return ::core::result::Result::Ok(::core::option::Option::None),
            };
            let mut object = ::mobync::protocol::JsonObject::new();
            object.insert(::std::string::String::from("id"), #private::encode(&row.#id)?);
            #(
                object.insert(::std::string::String::from(#data_name), #private::encode(&row.#data)?);
            )*
            ::core::result::Result::Ok(::core::option::Option::Some(object))
        },
        create: quote! {
            #traits
            let row = __mobync_row(owner, diff)?;
            // One statement: a taken id is the primary key's unique
            // violation, and the failed sync rolls back as a whole.
            #private::diesel::insert_into(#table::table)
                .values(&row)
                .execute(conn)
                .map_err(|err| #private::insert_failed(#model, diff.row_id(), err))?;
            ::core::result::Result::Ok(())
        },
        update: quote! {
            #traits
            let patch = __mobync_patch(diff)?;
            let row_id = diff.row_id();
            let found = if patch.__mobync_is_empty() {
                // Nothing to set, but the row must still be the owner's.
                #filter_owned.count().get_result::<i64>(conn).map_err(#private::db)? as usize
            } else {
                #private::diesel::update(#filter_owned)
                    .set(&patch)
                    .execute(conn)
                    .map_err(#private::db)?
            };
            if found == 0 {
                return ::core::result::Result::Err(#private::no_row(#model, row_id));
            }
            ::core::result::Result::Ok(())
        },
        delete: quote! {
            #traits
            let row_id = diff.row_id();
            let found = #private::diesel::delete(#filter_owned)
                .execute(conn)
                .map_err(#private::db)?;
            if found == 0 {
                return ::core::result::Result::Err(#private::no_row(#model, row_id));
            }
            ::core::result::Result::Ok(())
        },
        validate_create,
        validate_update,
        validate_delete,
        validate_all,
        create_all,
    };
    let impl_block = impl_block(ty, &model, &fields, bodies);

    quote! {
        #[allow(non_upper_case_globals, non_camel_case_types, dead_code)]
        const _: () = {
            // Diesel's derives expand to `diesel::...` after a `use diesel;`,
            // which finds this one: the user's crate needs no `diesel` of its own.
            use #private::diesel;

            /// The fields of a create, all required: `deserialize_with`
            /// keeps serde from reading a missing `Option` field as `None`.
            #[derive(#private::serde::Deserialize)]
            #[serde(crate = "::mobync::__private::serde", deny_unknown_fields)]
            struct __MobyncCreate {
                #(
                    #[serde(deserialize_with = "::mobync::__private::serde::Deserialize::deserialize")]
                    #data: #data_ty,
                )*
            }

            /// The fields of an update: `Some` when present (even `null`).
            #[derive(#private::serde::Deserialize, #private::diesel::AsChangeset)]
            #[serde(crate = "::mobync::__private::serde", deny_unknown_fields)]
            #[diesel(table_name = #table, primary_key(#id_col))]
            struct __MobyncPatch {
                #(
                    #[serde(default, deserialize_with = "::mobync::__private::some")]
                    #[diesel(column_name = #data_col)]
                    #data: ::core::option::Option<#data_ty>,
                )*
            }

            impl __MobyncPatch {
                fn __mobync_is_empty(&self) -> bool {
                    true #( && self.#data.is_none() )*
                }
            }

            #( #rule_consts )*

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
                #private::decode(#model, &diff.data, &["id"])
            }

            fn __mobync_patch(
                diff: &::mobync::protocol::Diff,
            ) -> ::core::result::Result<__MobyncPatch, ::mobync::error::SyncError> {
                __mobync_no_owner(diff)?;
                #private::decode(#model, &diff.data, &["id"])
            }

            /// The row a create inserts.
            fn __mobync_row(
                owner: &str,
                diff: &::mobync::protocol::Diff,
            ) -> ::core::result::Result<#ty, ::mobync::error::SyncError> {
                let create = __mobync_decode_create(diff)?;
                ::core::result::Result::Ok(#ty {
                    #id: ::core::convert::Into::into(::std::borrow::ToOwned::to_owned(diff.row_id())),
                    #owner: ::core::convert::Into::into(::std::borrow::ToOwned::to_owned(owner)),
                    #( #data: create.#data, )*
                    #( #skipped, )*
                })
            }

            /// `owner`'s row `row_id`, if there is one.
            fn __mobync_current(
                conn: &mut ::mobync::db::DbConnection,
                owner: &str,
                row_id: &str,
            ) -> ::core::result::Result<::core::option::Option<#ty>, ::mobync::error::SyncError> {
                #traits
                #filter_owned
                    .select(#ty::as_select())
                    .first::<#ty>(conn)
                    .optional()
                    .map_err(#private::db)
            }

            #impl_block
        };
    }
}

fn rule_name(op: &str) -> Ident {
    format_ident!("__MOBYNC_VALIDATE_{}", op)
}

/// `const __MOBYNC_VALIDATE_<OP>: fn(&str, &Model) -> Result<(), String> = path;`
fn rule_const(ty: &Ident, op: &str, path: &Path) -> TokenStream {
    let name = rule_name(op);
    let span = path.span();
    quote_spanned! {span=>
        const #name: fn(&str, &#ty) -> ::core::result::Result<(), ::std::string::String> = #path;
    }
}
