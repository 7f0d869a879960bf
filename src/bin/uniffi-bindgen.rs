//! The uniffi binding generator, built from this crate so that the bindings always match the
//! library's uniffi version: `cargo run --features cli --bin uniffi-bindgen -- generate ...`
//! (see `scripts/gen-bindings`).

fn main() {
    uniffi::uniffi_bindgen_main()
}
