#[derive(mobync::Syncable)]
struct Task {
    id: String,
    owner: String,
    title: String,
    #[mobync(skipped)]
    cache: i32,
}

fn main() {}
