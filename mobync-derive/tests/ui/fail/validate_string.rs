#[derive(mobync::Syncable)]
#[mobync(validate = "rules::task")]
struct Task {
    id: String,
    owner: String,
    title: String,
}

fn main() {}
