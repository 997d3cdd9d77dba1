// `id` on the wire is the row id.
#[derive(mobync::Syncable)]
struct Task {
    id: String,
    owner: String,
    #[mobync(rename = "id")]
    code: String,
}

fn main() {}
