#[derive(mobync::Syncable)]
#[mobync(model = "task")]
#[mobync(validate = rules::task, model = "todo")]
struct Task {
    id: String,
    owner: String,
    title: String,
}

mod rules {
    pub fn task(_owner: &str, _task: &super::Task) -> Result<(), String> {
        Ok(())
    }
}

fn main() {}
