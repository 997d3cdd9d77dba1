// The field named `id` is the row id unless another field is marked.
#[derive(mobync::Syncable)]
struct Task {
    #[mobync(owner)]
    id: String,
    title: String,
}

fn main() {}
