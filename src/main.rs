//! The `provision` binary: it only hands over to the CLI edge.

fn main() -> std::process::ExitCode {
    provision::cli::main()
}
