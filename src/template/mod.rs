//! Notification texts: minijinja templates, pt-BR defaults.
