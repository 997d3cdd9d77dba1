#[derive(mobync::Syncable)]
struct Task {
    #[mobync(id, owner)]
    key: String,
    title: String,
}

fn main() {}
