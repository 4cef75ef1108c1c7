//! `arauto webhooks register|unregister --store ID --url URL`: subscribe a
//! store's platform to push order changes to the daemon's webhook listener
//! (or undo it), through the store's connector (`register-push`,
//! `unregister-push`).
//!
//! It loads the configuration and builds the stores' connectors exactly as
//! `check` does without a daemon, then calls the one store's connector; the
//! state database is not opened, so it runs alongside the daemon.

use std::time::Duration;

use clap::{Args, Subcommand};

use super::backend::host_config;
use super::config_arg::ConfigArg;
use super::exit::Exit;
use crate::config;
use crate::plugin::{PluginError, PluginHost};
use crate::state::{BuildOptions, build};

/// How long the platform may take to answer the subscription call (the
/// connector's own call timeout applies within it).
const CALL_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest `--url` accepted.
const MAX_URL_BYTES: usize = 2048;

/// `arauto webhooks`.
#[derive(Debug, Args)]
pub struct WebhooksArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: WebhooksCommand,
}

/// `arauto webhooks …`.
#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Ask the store's platform to push order changes to URL (the public
    /// address of this daemon's `POST /hooks/<store>`, behind your proxy).
    Register(SubscriptionArgs),
    /// Ask the store's platform to stop pushing to URL.
    Unregister(SubscriptionArgs),
}

/// The store and the URL of a subscription.
#[derive(Debug, Args)]
pub struct SubscriptionArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub config: ConfigArg,
    /// The store (`[stores.<ID>]`).
    #[arg(long, value_name = "ID")]
    pub store: String,
    /// Where the platform pushes: an absolute http(s) URL, usually
    /// `https://<your host>/hooks/<ID>`.
    #[arg(long, value_name = "URL", value_parser = parse_url)]
    pub url: String,
}

/// Why a `--url` is refused.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    /// Not `http://host…` or `https://host…`.
    #[error("expected an absolute http(s) URL, like https://shop.example.com/hooks/loja")]
    NotAbsoluteHttp,
    /// Longer than [`MAX_URL_BYTES`].
    #[error("longer than {MAX_URL_BYTES} bytes")]
    TooLong,
}

fn parse_url(text: &str) -> Result<String, UrlError> {
    if text.len() > MAX_URL_BYTES {
        return Err(UrlError::TooLong);
    }
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
        .ok_or(UrlError::NotAbsoluteHttp)?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let valid = !host.is_empty()
        && !host.starts_with(':')
        && !text.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(text.to_owned())
    } else {
        Err(UrlError::NotAbsoluteHttp)
    }
}

/// Run `arauto webhooks …`: 0 done, 1 the platform or the connector refused
/// (or the configuration is invalid), 2 an unknown store, `register` for a
/// disabled one, or a connector that cannot manage subscriptions.
/// `unregister` works for a disabled store (to clean up after it).
pub(crate) fn run(args: WebhooksArgs) -> Exit {
    let (register, args) = match args.command {
        WebhooksCommand::Register(args) => (true, args),
        WebhooksCommand::Unregister(args) => (false, args),
    };
    let config = match config::load(args.config.config.as_deref()) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("arauto: {errors}");
            return Exit::Failure;
        }
    };
    if !config.stores.contains_key(&args.store) {
        let known: Vec<&str> = config.stores.keys().map(String::as_str).collect();
        eprintln!(
            "arauto: unknown store {:?} (configured: {})",
            args.store,
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        );
        return Exit::Usage;
    }
    let disabled = config
        .stores
        .get(&args.store)
        .is_some_and(|store| !store.enabled);
    if disabled && register {
        // The listener answers a disabled store's pushes 404: subscribing
        // now would only make the platform deliver into a wall.
        eprintln!(
            "arauto: store {} is disabled (enabled = false in [stores.{}]); the daemon refuses its pushes (404). Set enabled = true and reload, then register",
            args.store, args.store
        );
        return Exit::Usage;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("arauto: cannot start the async runtime: {error}");
            return Exit::Failure;
        }
    };
    let host = match PluginHost::new(host_config(&config)) {
        Ok(host) => host,
        Err(error) => {
            eprintln!("arauto: cannot start the plugin host: {error}");
            return Exit::Failure;
        }
    };
    let path = config.source_path().display().to_string();
    let state = match runtime.block_on(build(config, &BuildOptions::default(), &host)) {
        Ok(state) => state,
        Err(error) => {
            eprintln!("arauto: invalid configuration {path}: {error}");
            return Exit::Failure;
        }
    };
    let Some(store) = state.stores.get(&args.store) else {
        eprintln!("arauto: store {:?} could not be started", args.store);
        return Exit::Failure;
    };
    let plugin = store.plugin.name().to_owned();
    if !store.info.push.register {
        eprintln!(
            "arauto: the connector {plugin} of store {} cannot manage push subscriptions (it does not declare push.register); subscribe {} by hand as the platform documents",
            args.store, args.url
        );
        return Exit::Usage;
    }
    let connector = store.connector.clone();
    let url = args.url.clone();
    let call = async move {
        if register {
            connector.register_push(&url).await
        } else {
            connector.unregister_push(&url).await
        }
    };
    let outcome = runtime.block_on(async { tokio::time::timeout(CALL_TIMEOUT, call).await });
    let (done, verb) = if register {
        ("registered", "register")
    } else {
        ("unregistered", "unregister")
    };
    match outcome {
        Ok(Ok(())) => {
            println!(
                "{done}: store {} ({plugin}) pushes to {}{}",
                args.store,
                args.url,
                if register { "" } else { " no more" }
            );
            Exit::Ok
        }
        Ok(Err(error)) => {
            let hint = match &error {
                PluginError::Misconfigured(_) => {
                    format!("; check [stores.{}.settings]", args.store)
                }
                _ => String::new(),
            };
            eprintln!(
                "arauto: cannot {verb} {} for store {}: {error}{hint}",
                args.url, args.store
            );
            Exit::Failure
        }
        Err(_) => {
            eprintln!(
                "arauto: cannot {verb} {} for store {}: no answer within {}s",
                args.url,
                args.store,
                CALL_TIMEOUT.as_secs()
            );
            Exit::Failure
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_absolute_http_urls_are_accepted() {
        assert!(parse_url("https://shop.example.com/hooks/loja").is_ok());
        assert!(parse_url("http://127.0.0.1:8480/hooks/loja").is_ok());
        for bad in [
            "shop.example.com/hooks",
            "ftp://x/y",
            "https://",
            "https:///hooks",
            "https://a b/c",
            "/hooks/loja",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }
}
