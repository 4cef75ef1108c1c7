//! What `build` reports when a configuration cannot run: every problem,
//! each named by its config key path.

/// Something `build` found wrong beyond the configuration's syntax (a plugin
/// that does not load, a template that does not compile…).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildProblem {
    /// The part at fault, as a config key path: `stores.loja1`, `channels.whatsapp`.
    pub component: String,
    /// What is wrong.
    pub message: String,
}

/// Every problem `build` found, reported together.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", render_problems(.problems))]
pub struct BuildError {
    /// Never empty.
    pub problems: Vec<BuildProblem>,
}

fn render_problems(problems: &[BuildProblem]) -> String {
    let mut out = format!("cannot start: {} problem(s):", problems.len());
    for p in problems {
        out.push_str(&format!("\n  {}: {}", p.component, p.message));
    }
    out
}
