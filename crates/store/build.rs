// `sqlx::migrate!` embeds the files of `migrations/` at build time, but cargo does not know
// the macro reads them: without this, a new migration file leaves a stale build that does not
// apply it.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
