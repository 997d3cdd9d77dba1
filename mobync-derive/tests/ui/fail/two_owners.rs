#[derive(mobync::Syncable)]
struct Task {
    id: String,
    #[mobync(owner)]
    user: String,
    #[mobync(owner)]
    account: String,
    title: String,
}

fn main() {}
