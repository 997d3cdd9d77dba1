#[derive(mobync::Syncable)]
enum Task {
    Open { id: String, owner: String },
    Done { id: String, owner: String },
}

fn main() {}
