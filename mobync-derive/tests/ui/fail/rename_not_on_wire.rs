// The row id is always `id`; the owner and skipped fields are never sent.
#[derive(mobync::Syncable)]
struct Task {
    #[mobync(rename = "key")]
    id: String,
    #[mobync(rename = "user")]
    owner: String,
    title: String,
    #[mobync(skip, rename = "seen")]
    views: i32,
}

fn main() {}
