#[derive(mobync::Syncable)]
#[mobync(modle = "task")]
struct Task {
    id: String,
    owner: String,
    title: String,
}

fn main() {}
