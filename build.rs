use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    // Migrations are embedded by sqlx::migrate!; rebuild when they change.
    println!("cargo:rerun-if-changed=migrations");
    // The shipped rule pack is embedded too (the default rule source).
    println!("cargo:rerun-if-changed=rules");
    let root =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("manifest dir")).join("rules");
    let mut files = Vec::new();
    collect(&root, &root, &mut files);
    files.sort();
    let mut out = String::from("pub static FILES: &[(&str, &str)] = &[\n");
    for (rel, abs) in &files {
        println!("cargo:rerun-if-changed={}", abs.display());
        writeln!(
            out,
            "    ({rel:?}, include_str!({:?})),",
            abs.display().to_string()
        )
        .expect("write");
    }
    out.push_str("];\n");
    let dest = PathBuf::from(std::env::var("OUT_DIR").expect("out dir")).join("embedded_rules.rs");
    std::fs::write(dest, out).expect("write embedded_rules.rs");
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            // Drafts (rules/drafts/) are for review: loaded from disk, never built in.
            if p.parent() == Some(root) && p.file_name().is_some_and(|n| n == "drafts") {
                continue;
            }
            collect(root, &p, out);
            println!("cargo:rerun-if-changed={}", p.display());
        } else if p.extension().is_some_and(|x| x == "toml") {
            let rel = p
                .strip_prefix(root)
                .unwrap_or(&p)
                .to_string_lossy()
                .replace('\\', "/");
            out.push((rel, p));
        }
    }
}
