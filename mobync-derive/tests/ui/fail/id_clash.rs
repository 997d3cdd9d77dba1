// With `uuid` as the row id, a field named `id` would be sent as "id" too.
#[derive(mobync::Syncable)]
struct Task {
    #[mobync(id)]
    uuid: String,
    id: i32,
    owner: String,
    title: String,
}

fn main() {}
