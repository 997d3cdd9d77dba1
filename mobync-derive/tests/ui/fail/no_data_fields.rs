#[derive(mobync::Syncable)]
struct Task {
    id: String,
    owner: String,
    #[mobync(skip)]
    cache: i32,
}

fn main() {}
