#[derive(mobync::Syncable)]
#[mobync(model = 5)]
struct Task {
    id: String,
    owner: String,
    title: String,
}

fn main() {}
