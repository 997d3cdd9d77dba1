#[derive(mobync::Syncable)]
struct Task {
    id: String,
    owner: String,
    title: String,
    #[mobync(skip)]
    #[mobync(skip)]
    cache: i32,
}

fn main() {}
