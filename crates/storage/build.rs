//! Lists each backend's migrations from `migrations/<backend>/NNNN_name.sql`, in version order,
//! so adding a migration is adding its file. Both backends must have the same versions.

use std::fmt::Write;
use std::path::Path;

fn main() {
    let mut out = String::new();
    let mut versions = Vec::new();
    for (backend, constant) in [("sqlite", "SQLITE"), ("postgres", "POSTGRES")] {
        let dir = Path::new("migrations").join(backend);
        println!("cargo::rerun-if-changed={}", dir.display());
        let mut found: Vec<(i64, String, String)> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| {
                let file = entry.expect("a directory entry").file_name().into_string().expect("a UTF-8 file name");
                let stem = file.strip_suffix(".sql").unwrap_or_else(|| panic!("{file}: not a .sql file"));
                let (version, name) = stem.split_once('_').unwrap_or_else(|| panic!("{file}: not NNNN_name.sql"));
                let version = version.parse().unwrap_or_else(|_| panic!("{file}: the version is not a number"));
                (version, name.to_owned(), file)
            })
            .collect();
        found.sort();
        for pair in found.windows(2) {
            assert!(pair[0].0 != pair[1].0, "{backend}: two migrations numbered {}", pair[0].0);
        }
        versions.push(found.iter().map(|(v, _, _)| *v).collect::<Vec<_>>());
        writeln!(out, "pub const {constant}: &[Migration] = &[").unwrap();
        for (version, name, file) in &found {
            writeln!(
                out,
                "    Migration {{ version: {version}, name: {name:?}, sql: include_str!(concat!(env!(\"CARGO_MANIFEST_DIR\"), \"/migrations/{backend}/{file}\")) }},"
            )
            .unwrap();
        }
        writeln!(out, "];").unwrap();
    }
    assert_eq!(versions[0], versions[1], "SQLite and PostgreSQL must have the same migration versions");
    let target = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("migrations.rs");
    std::fs::write(target, out).expect("writing the migrations list");
}
