// Two fields may not share a wire name.
#[derive(mobync::Syncable)]
struct Task {
    id: String,
    owner: String,
    title: String,
    #[mobync(rename = "title")]
    heading: String,
}

fn main() {}
