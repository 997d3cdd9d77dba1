#[derive(mobync::Syncable)]
struct Task {
    #[mobync(id = true)]
    key: String,
    owner: String,
    title: String,
}

fn main() {}
