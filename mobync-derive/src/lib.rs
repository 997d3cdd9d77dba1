//! `#[derive(Syncable)]` for mobync: the sync glue of a Diesel model.
//!
//! The derive is re-exported as `mobync::Syncable`; see its documentation.
//! Layout: `ast` reads the input, `attr` its attributes, `valid` checks it,
//! `expand` generates the impl.

mod ast;
mod attr;
mod expand;
mod valid;

use proc_macro::TokenStream;

#[doc = include_str!("derive.md")]
#[proc_macro_derive(Syncable, attributes(mobync))]
pub fn derive_syncable(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    expand::derive(&input).into()
}

#[cfg(test)]
mod snapshots;
