// `connection` names a type.
#[derive(mobync::Syncable)]
#[mobync(connection = "diesel::PgConnection")]
struct Task {
    id: String,
    owner: String,
    title: String,
}

fn main() {}
