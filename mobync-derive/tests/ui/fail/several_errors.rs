// Every misuse of the attributes is reported in one compile.
#[derive(mobync::Syncable)]
#[mobync(modle = "task")]
struct Task {
    id: String,
    owner: String,
    #[mobync(skipp)]
    title: String,
}

fn main() {}
