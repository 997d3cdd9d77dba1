#[derive(mobync::Syncable)]
struct Task {
    #[mobync(skip)]
    id: String,
    owner: String,
    title: String,
}

fn main() {}
