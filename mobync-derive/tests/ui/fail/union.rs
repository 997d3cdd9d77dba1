#[derive(mobync::Syncable)]
union Task {
    id: u64,
    owner: u64,
}

fn main() {}
