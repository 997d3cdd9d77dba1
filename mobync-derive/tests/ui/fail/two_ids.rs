#[derive(mobync::Syncable)]
struct Task {
    #[mobync(id)]
    uuid: String,
    #[mobync(id)]
    key: String,
    owner: String,
    title: String,
}

fn main() {}
