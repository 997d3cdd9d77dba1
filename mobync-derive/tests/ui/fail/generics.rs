#[derive(mobync::Syncable)]
struct Task<T> {
    id: String,
    owner: String,
    title: T,
}

fn main() {}
