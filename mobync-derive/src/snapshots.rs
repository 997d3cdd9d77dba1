//! Snapshots (insta) of what the derive generates for every model the
//! examples and the tests use, read from their source files: a change to
//! the generated code shows up as a reviewed diff of these snapshots.

use std::path::Path;

/// The files whose `#[derive(... Syncable ...)]` structs are snapshotted.
const SOURCES: [&str; 6] = [
    "../examples/todo/src/models.rs",
    "../examples/notes/src/models.rs",
    "../tests/src/models.rs",
    "../tests/tests/connections.rs",
    "tests/shapes.rs",
    "tests/generated.rs",
];

fn derives_syncable(item: &syn::ItemStruct) -> bool {
    item.attrs.iter().filter(|a| a.path().is_ident("derive")).any(|attr| {
        let mut found = false;
        let _ = attr.parse_nested_meta(|meta| {
            found |= meta.path.segments.last().is_some_and(|s| s.ident == "Syncable");
            Ok(())
        });
        found
    })
}

/// Every struct deriving Syncable in `items`, inline modules included,
/// with the path of modules it is in.
fn structs<'a>(items: &'a [syn::Item], prefix: &str, out: &mut Vec<(String, &'a syn::ItemStruct)>) {
    for item in items {
        match item {
            syn::Item::Struct(s) if derives_syncable(s) => out.push((format!("{prefix}{}", s.ident), s)),
            syn::Item::Mod(m) => {
                if let Some((_, inner)) = &m.content {
                    structs(inner, &format!("{prefix}{}_", m.ident), out);
                }
            }
            _ => {}
        }
    }
}

#[test]
fn the_generated_code_of_every_model_in_use() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut count = 0;
    for source in SOURCES {
        let text = std::fs::read_to_string(root.join(source)).unwrap_or_else(|e| panic!("{source}: {e}"));
        let file = syn::parse_file(&text).unwrap_or_else(|e| panic!("{source}: {e}"));
        let mut found = Vec::new();
        structs(&file.items, "", &mut found);
        assert!(!found.is_empty(), "{source} has no synced model");
        let stem = source.trim_start_matches("../").replace(['/', '.'], "_");
        for (name, item) in found {
            let input: syn::DeriveInput = item.clone().into();
            let generated = crate::expand::derive(&input);
            let file: syn::File = syn::parse2(generated).unwrap_or_else(|e| panic!("{source} {name}: {e}"));
            insta::assert_snapshot!(format!("{stem}__{name}"), prettyplease::unparse(&file));
            count += 1;
        }
    }
    assert!(count >= 12, "only {count} models found");
}
