#[derive(mobync::Syncable)]
struct Task {
    id: String,
    owner: String,
    #[mobync(model = "title")]
    title: String,
}

fn main() {}
