#[derive(mobync::Syncable)]
#[mobync(skip)]
struct Task {
    id: String,
    owner: String,
    title: String,
}

fn main() {}
