#[derive(mobync::Syncable)]
struct Task {
    id: String,
    user: String,
    title: String,
}

fn main() {}
