#[derive(mobync::Syncable)]
struct Task {
    key: String,
    owner: String,
    title: String,
}

fn main() {}
