#[derive(mobync::Syncable)]
#[mobync(validate_delete = |_, _| Ok(()))]
struct Task {
    id: String,
    owner: String,
    title: String,
}

fn main() {}
