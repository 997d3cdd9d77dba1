#[derive(mobync::Syncable)]
struct Task {
    id: String,
    #[mobync(owner, skip)]
    user: String,
    title: String,
}

fn main() {}
