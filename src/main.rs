//! The `arauto` binary: everything lives in the library; see [`arauto::cli`].

fn main() -> std::process::ExitCode {
    arauto::cli::main()
}
