#[derive(mobync::Syncable)]
#[mobync(model)]
struct Task {
    id: String,
    owner: String,
    title: String,
}

fn main() {}
