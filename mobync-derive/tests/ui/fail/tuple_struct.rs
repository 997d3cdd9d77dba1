#[derive(mobync::Syncable)]
struct Task(String, String, String);

fn main() {}
