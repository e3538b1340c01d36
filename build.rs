//! Compiles every `proto/ghthub/v1/*.proto` with a vendored `protoc`, so a fresh
//! machine needs no system protobuf compiler, and emits the descriptor set that
//! server reflection serves.
use std::{env, fs, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY-free in edition 2021: build scripts are single-threaded here.
    env::set_var("PROTOC", protoc);

    let dir = PathBuf::from("proto/ghthub/v1");
    let mut protos: Vec<PathBuf> = fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "proto"))
        .collect();
    protos.sort();
    println!("cargo:rerun-if-changed=proto");
    // sqlx::migrate! embeds the migrations at compile time: a changed file must rebuild.
    println!("cargo:rerun-if-changed=migrations");

    let out = PathBuf::from(env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("ghthub_descriptor.bin"))
        .compile_protos(&protos, &[PathBuf::from("proto")])?;
    // The echo baseline for load comparisons lives outside the public contract.
    tonic_prost_build::configure()
        .compile_protos(&[PathBuf::from("proto/ghthub/bench/echo.proto")], &[PathBuf::from("proto")])?;
    Ok(())
}
