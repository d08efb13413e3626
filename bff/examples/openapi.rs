//! Prints the OpenAPI document (`cargo run -p bff --example openapi > openapi.json`).
#[allow(clippy::print_stdout)]
fn main() {
    println!(
        "{}",
        String::from_utf8_lossy(&bff::openapi::document_json())
    );
}
