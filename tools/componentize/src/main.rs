//! `arauto-componentize IN.wasm OUT.wasm`: turn the core module that rustc
//! builds for wasm32-unknown-unknown (with wit-bindgen's component-type custom
//! section) into a WebAssembly component, then validate it.
//!
//! A small in-repo helper instead of `cargo install wasm-tools`: it builds in
//! about half the time, needs no binary outside target/, and is pinned by our
//! own Cargo.lock.

use anyhow::{Context, Result, bail};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output] = args.as_slice() else {
        bail!("usage: arauto-componentize <core-module.wasm> <component.wasm>");
    };
    let module = std::fs::read(input).with_context(|| format!("reading {input}"))?;
    let mut encoder = wit_component::ComponentEncoder::default();
    encoder.validate(true).module(&module).with_context(|| {
        format!("{input} is not a core module with wit-bindgen type information")
    })?;
    let component = encoder
        .encode()
        .with_context(|| format!("encoding {input} as a component"))?;
    wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
        .validate_all(&component)
        .with_context(|| format!("validating the component built from {input}"))?;
    let tmp = format!("{output}.tmp");
    std::fs::write(&tmp, &component).with_context(|| format!("writing {tmp}"))?;
    std::fs::rename(&tmp, output).with_context(|| format!("renaming {tmp} to {output}"))?;
    Ok(())
}
