//! Notification texts: minijinja templates, with pt-BR defaults for every kind.
//!
//! One template per notification kind, optionally a different one per channel
//! (`by_channel`), given inline in the config or as a file. Kinds without an
//! override use the built-in defaults shipped in `config/templates/pt-BR/`
//! (embedded in the binary). For WhatsApp Cloud approved templates, a
//! [`ProviderTemplateSpec`] maps the notification to the template name and
//! renders its parameters with the same variables.
//!
//! # Behaviour
//!
//! * **Strict undefined**: using a variable that does not exist is an error,
//!   not an empty string. Optional values that exist but are absent (no
//!   tracking code yet, no e-mail) are `none`: falsy in `{% if %}` and printed
//!   as nothing.
//! * **Validation**: [`Templates::compile`] compiles every template, checks
//!   every variable it references against the variable tree below (including
//!   branches a sample would not take), and renders it against the sample
//!   orders of [`sample_orders`]. Errors name the template file (or
//!   `inline template for <config key>`, or the built-in file), the line and the
//!   variable.
//! * **Whitespace**: `trim_blocks` and `lstrip_blocks` are on (a line holding
//!   only a `{% … %}` tag leaves no blank line); after rendering, trailing
//!   spaces are removed, runs of blank lines collapse into one, and the text is
//!   trimmed.
//! * No HTML escaping (the output is plain text for WhatsApp/SMS/Telegram).
//! * **Text filter, on for every variable** (customer and platform text is
//!   untrusted; see [`clean_text`]): before rendering, every string variable
//!   loses bidirectional-override and zero-width characters (U+202A–U+202E,
//!   U+2066–U+2069, U+200B–U+200F, U+FEFF, …) and control characters; line
//!   breaks and tabs inside a variable become a space, so only the template
//!   itself starts new lines. Lengths are capped, cut with `…`: names
//!   (`customer.name`, `customer.first_name`, item names) at 100 characters,
//!   tracking codes at 64, the Pix code at 1,000, every other string at 500.
//!   There is no opt-out: text that reaches a customer must not carry them.
//! * **Fuel**: one render may run at most [`RENDER_FUEL`] template instructions;
//!   a template that loops more (nested `range(10000)`) fails validation
//!   quickly, naming the template, instead of keeping `validate` or a reload busy.
//! * Filter `brl`: cents → `R$ 1.234,56` (`{{ item.total_cents * 2 | brl }}`).
//! * **Unreadable values are unknown, never zero**: an amount or quantity the
//!   platform sent as `"abc"`, `null` or out of range is *unknown* — falsy in
//!   `{% if order.total %}`, and an error when printed, computed with or
//!   passed to `brl`. The built-in texts test for them; a message whose text
//!   needs an unknown value is not sent: the job is dead-lettered ("held")
//!   with the template, line and variable, visible in `arauto queue list`
//!   and `arauto report`, and `arauto queue retry` sends it once the order
//!   is fixed. Unknown amounts are `null` in a webhook's event JSON.
//!
//! # Variables
//!
//! | variable | meaning |
//! |---|---|
//! | `customer.name`, `customer.first_name` | buyer's full and first name (first name falls back to the first word of the name) |
//! | `customer.email`, `customer.phone` | e-mail and first phone as the platform stores it (may be none) |
//! | `order.id`, `order.number` | platform id and store-facing number |
//! | `order.status`, `order.status_code` | status display name (`Pedido Enviado`) and code (`pedido_enviado`) |
//! | `order.created_at`, `order.updated_at` | `dd/mm/aaaa HH:MM` in the store's time zone |
//! | `order.created_date` | `dd/mm/aaaa` |
//! | `order.total`, `order.subtotal`, `order.shipping`, `order.discount` | formatted `R$ 1.234,56` (discount positive); may be unknown |
//! | `order.total_cents`, `order.subtotal_cents`, `order.shipping_cents`, `order.discount_cents` | the same in cents (integers) |
//! | `order.currency` | ISO 4217 code |
//! | `order.payment_method`, `order.payment_code` | payment display name and platform code (may be none) |
//! | `order.payment_family`, `order.payment_family_label` | `pix`/`boleto`/`credit-card`/`deposit`/`external`/`other` and its pt-BR label |
//! | `order.installments` | number of installments (may be none) |
//! | `order.items[]` | `name`, `sku`, `quantity` (`2`, `2,5`), `unit_price`, `unit_price_cents`, `total`, `total_cents` (amounts and quantity may be unknown) |
//! | `order.item_count` | sum of quantities (unknown when a quantity is) |
//! | `order.shipments[]` | `id`, `carrier`, `method`, `tracking_code`, `tracking_url` |
//! | `order.boleto` | none, or `barcode`, `url`, `due_date` (`dd/mm/aaaa`) |
//! | `order.pix` | none, or `code`, `qr_code_url`, `expires_at` |
//! | `order.extras` | platform-specific JSON; keys vary, so guard with `is defined` |
//! | `tracking.code`, `tracking.url`, `tracking.carrier`, `tracking.method`, `tracking.shipment_id` | the shipment a tracking-updated message is about; for other kinds the first shipment with a code; all none without one |
//! | `store.id`, `store.description` | store id and display name |
//! | `notification.kind`, `notification.label` | `order-shipped`, `Pedido enviado` |

mod context;
mod sample;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;

use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Serde, Value, ValueKind};
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};

pub use context::{
    BoletoVars, CustomerVars, ItemVars, Maybe, NotificationVars, OrderVars, PixVars, ShipmentVars,
    StoreInfo, StoreVars, TemplateContext, TrackingVars, UnknownValue, format_date,
    format_datetime,
};
pub use sample::sample_orders;

use crate::decide::TrackingRef;
use crate::model::{Money, NotificationKind};

/// Template instructions one render may run. The built-in templates need a few
/// hundred per order (a few thousand for an order with hundreds of items); this
/// leaves room for any honest template and stops a runaway loop in milliseconds.
pub const RENDER_FUEL: u64 = 1_000_000;

/// Longest name variable (customer names, item names), in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// Longest tracking code variable, in characters.
pub const MAX_TRACKING_CODE_CHARS: usize = 64;
/// Longest Pix "copia e cola" code (an EMV BR Code is a few hundred characters).
pub const MAX_PIX_CODE_CHARS: usize = 1000;
/// Longest other string variable, in characters.
pub const MAX_TEXT_CHARS: usize = 500;

/// The text filter applied to every string variable (see the module docs):
/// bidi and invisible formatting characters removed, control characters
/// removed, line breaks and tabs turned into spaces, then at most `max_chars`
/// characters (the last one `…` when cut).
pub fn clean_text(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars * 4));
    let mut kept = 0usize;
    let mut cut = false;
    for c in text.chars() {
        let c = match c {
            '\n' | '\r' | '\t' | '\u{2028}' | '\u{2029}' | '\u{85}' => ' ',
            c if is_invisible(c) || c.is_control() => continue,
            c => c,
        };
        if kept == max_chars {
            cut = true;
            break;
        }
        out.push(c);
        kept += 1;
    }
    if cut && max_chars > 0 {
        out.pop();
        out.push('…');
    }
    out
}

/// Bidirectional controls and zero-width/invisible formatting characters: they
/// can reorder or hide what a customer reads (a name that "says" something else).
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{AD}' | '\u{34F}' | '\u{61C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}'
        | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}'
        | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}'
        | '\u{FFF0}'..='\u{FFFB}'
        | '\u{E0000}'..='\u{E007F}')
}

/// The cap for the string at `path` (JSON-pointer-like, list indexes as `[]`).
fn cap_for(path: &[&str]) -> usize {
    match path {
        ["customer", "name" | "first_name"] | ["order", "items", "[]", "name"] => MAX_NAME_CHARS,
        ["tracking", "code"] | ["order", "shipments", "[]", "tracking_code"] => {
            MAX_TRACKING_CODE_CHARS
        }
        ["order", "pix", "code"] => MAX_PIX_CODE_CHARS,
        _ => MAX_TEXT_CHARS,
    }
}

/// `value` with every string passed through [`clean_text`] at the cap of its
/// path. Works on minijinja values rather than JSON so that the unknown-value
/// marker ([`UnknownValue`]) survives: it is neither a string, a list nor a map.
///
/// Runs once per rendered message (issue 16: it was about 2 % of a message's
/// CPU): `path` holds the keys as the values they already are (no string
/// copied per key), a string is looked at in one pass and kept as it is
/// unless it needs cleaning, and maps come out as before (sorted by key).
fn clean_value(value: Value, path: &mut Vec<Value>) -> Value {
    match value.kind() {
        ValueKind::String => {
            let text = value.as_str().unwrap_or_default();
            let max = cap_at(path);
            if needs_cleaning(text, max) {
                Value::from(clean_text(text, max))
            } else {
                value
            }
        }
        ValueKind::Seq => {
            path.push(Value::from("[]"));
            let items: Vec<Value> = match value.try_iter() {
                Ok(items) => items.map(|item| clean_value(item, path)).collect(),
                Err(_) => Vec::new(),
            };
            path.pop();
            Value::from(items)
        }
        ValueKind::Map => {
            let mut map = BTreeMap::new();
            if let Ok(keys) = value.try_iter() {
                for key in keys {
                    let item = value.get_item(&key).unwrap_or_default();
                    path.push(key);
                    let item = clean_value(item, path);
                    if let Some(key) = path.pop() {
                        map.insert(key, item);
                    }
                }
            }
            Value::from_object(map)
        }
        _ => value,
    }
}

/// [`cap_for`] the path of keys `path` (a key that is no string counts as
/// `""`); no cap names a path deeper than four keys.
fn cap_at(path: &[Value]) -> usize {
    let mut keys = [""; 4];
    if path.len() > keys.len() {
        return MAX_TEXT_CHARS;
    }
    for (slot, key) in keys.iter_mut().zip(path) {
        *slot = key.as_str().unwrap_or_default();
    }
    cap_for(&keys[..path.len()])
}

/// Whether `text` goes through [`clean_text`] at `max` characters: it has
/// more than `max` characters, or a control or invisible one.
fn needs_cleaning(text: &str, max: usize) -> bool {
    let mut count = 0usize;
    for c in text.chars() {
        if c.is_control() || is_invisible(c) {
            return true;
        }
        count += 1;
    }
    count > max
}

/// The variables of `context` for minijinja, every string passed through the
/// text filter ([`clean_text`]).
fn context_value(context: &TemplateContext) -> Value {
    clean_value(Value::from(Serde(context)), &mut Vec::new())
}

/// The built-in pt-BR template of a kind (the text of `config/templates/pt-BR/<kind>.txt`).
pub const fn default_template(kind: NotificationKind) -> &'static str {
    match kind {
        NotificationKind::WaitingPayment => {
            include_str!("../../config/templates/pt-BR/waiting-payment.txt")
        }
        NotificationKind::OrderPaid => include_str!("../../config/templates/pt-BR/order-paid.txt"),
        NotificationKind::OrderProcessing => {
            include_str!("../../config/templates/pt-BR/order-processing.txt")
        }
        NotificationKind::OrderShipped => {
            include_str!("../../config/templates/pt-BR/order-shipped.txt")
        }
        NotificationKind::ReadyForPickup => {
            include_str!("../../config/templates/pt-BR/ready-for-pickup.txt")
        }
        NotificationKind::OrderDelivered => {
            include_str!("../../config/templates/pt-BR/order-delivered.txt")
        }
        NotificationKind::OrderCanceled => {
            include_str!("../../config/templates/pt-BR/order-canceled.txt")
        }
        NotificationKind::OrderRefunded => {
            include_str!("../../config/templates/pt-BR/order-refunded.txt")
        }
        NotificationKind::TrackingUpdated => {
            include_str!("../../config/templates/pt-BR/tracking-updated.txt")
        }
        NotificationKind::BoletoReminder => {
            include_str!("../../config/templates/pt-BR/boleto-reminder.txt")
        }
        NotificationKind::PixReminder => {
            include_str!("../../config/templates/pt-BR/pix-reminder.txt")
        }
        NotificationKind::AbandonedCart => {
            include_str!("../../config/templates/pt-BR/abandoned-cart.txt")
        }
    }
}

/// Where a template's text comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TemplateSource {
    /// Text written in the config.
    Inline {
        /// The template text.
        text: String,
        /// The config key it was written under, e.g. `notifications.order-shipped.template`.
        config_key: String,
    },
    /// A file, read by [`Templates::compile`].
    File {
        /// Path of the file.
        path: PathBuf,
    },
}

/// A provider-side template (WhatsApp Cloud approved template) and its parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderTemplateSpec {
    /// Approved template name.
    pub name: String,
    /// Template language, e.g. `pt_BR`.
    pub language: String,
    /// Body parameters `{{1}}`, `{{2}}`, … Each is an expression
    /// (`customer.first_name`) or a template snippet (`Pedido #{{ order.number }}`).
    pub positional: Vec<String>,
    /// Named parameters, same syntax.
    pub named: Vec<(String, String)>,
    /// The config key of this spec, for error messages.
    pub config_key: String,
}

/// Rendered provider template parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderedProviderTemplate {
    /// Approved template name.
    pub name: String,
    /// Template language.
    pub language: String,
    /// Body parameters in order.
    pub positional: Vec<String>,
    /// Named parameters.
    pub named: Vec<(String, String)>,
}

/// The template configuration of a store (or of the whole daemon).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TemplateConfig {
    /// Per-kind templates replacing the built-in defaults.
    pub by_kind: BTreeMap<NotificationKind, TemplateSource>,
    /// Per (channel, kind) templates, taking precedence over `by_kind`.
    pub by_channel: BTreeMap<(String, NotificationKind), TemplateSource>,
    /// Provider templates per (channel, kind).
    pub provider: BTreeMap<(String, NotificationKind), ProviderTemplateSpec>,
}

/// A template problem, naming the template, line and variable.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The template file cannot be read.
    #[error("cannot read template file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The template does not parse.
    #[error("{template}{line}: syntax error: {message}", line = LineSuffix(*line))]
    Syntax {
        /// File or `inline template for <key>`.
        template: String,
        /// 1-based line.
        line: Option<usize>,
        /// What the parser expected.
        message: String,
    },
    /// A variable that does not exist.
    #[error("{template}{line}: unknown variable `{variable}` (see the variable list in the template documentation)", line = LineSuffix(*line))]
    UnknownVariable {
        /// File or `inline template for <key>`.
        template: String,
        /// 1-based line.
        line: Option<usize>,
        /// The expression that is undefined, e.g. `order.totl`.
        variable: String,
    },
    /// The text needs a value the platform sent unreadable (an unknown
    /// amount or quantity): the message is held rather than sent wrong.
    #[error("{template}{line}: {message}", line = LineSuffix(*line))]
    MissingValue {
        /// File or `inline template for <key>`.
        template: String,
        /// 1-based line.
        line: Option<usize>,
        /// Which variable is unknown, and how to guard it.
        message: String,
    },
    /// Any other rendering failure (unknown filter, bad operation…).
    #[error("{template}{line}: {message}", line = LineSuffix(*line))]
    Render {
        /// File or `inline template for <key>`.
        template: String,
        /// 1-based line.
        line: Option<usize>,
        /// What went wrong.
        message: String,
    },
}

impl TemplateError {
    /// The configuration key of an inline template or a provider template
    /// parameter (`notifications.order-paid.template`), to find its line in
    /// the configuration file; `None` for template files and built-ins.
    pub fn config_key(&self) -> Option<&str> {
        let template = match self {
            Self::Read { .. } => return None,
            Self::Syntax { template, .. }
            | Self::UnknownVariable { template, .. }
            | Self::MissingValue { template, .. }
            | Self::Render { template, .. } => template,
        };
        template
            .strip_prefix("inline template for ")
            .or_else(|| template.strip_prefix("provider template parameter "))
    }
}

struct LineSuffix(Option<usize>);

impl fmt::Display for LineSuffix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(line) => write!(f, ", line {line}"),
            None => Ok(()),
        }
    }
}

/// Every problem found while compiling templates.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct TemplateErrors(pub Vec<TemplateError>);

struct ProviderNames {
    name: String,
    language: String,
    positional: Vec<String>,
    named: Vec<(String, String)>,
}

/// Compiled, validated templates.
pub struct Templates {
    env: Environment<'static>,
    /// Internal template name → what error messages call it.
    origins: BTreeMap<String, String>,
    /// Internal template name → the kind it renders (for validation contexts).
    kinds: BTreeMap<String, NotificationKind>,
    provider: BTreeMap<(String, NotificationKind), ProviderNames>,
}

impl fmt::Debug for Templates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Templates")
            .field("templates", &self.origins)
            .finish_non_exhaustive()
    }
}

fn kind_name(kind: NotificationKind) -> String {
    format!("kind/{kind}")
}

fn channel_name(channel: &str, kind: NotificationKind) -> String {
    format!("channel/{channel}/{kind}")
}

impl Templates {
    /// Compile the configured templates plus the built-in defaults, and
    /// validate all of them (see the module docs). All problems are reported
    /// together.
    pub fn compile(config: &TemplateConfig) -> Result<Self, TemplateErrors> {
        let mut env = Environment::new();
        env.set_debug(true);
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        if let Ok(syntax) = SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
        {
            env.set_syntax(syntax);
        }
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.set_fuel(Some(RENDER_FUEL));
        env.set_formatter(|out, state, value| {
            if let Some(unknown) = value.downcast_object_ref::<UnknownValue>() {
                // Printing an amount nobody could read would tell the
                // customer something false: fail, and the job is held.
                Err(minijinja::Error::new(
                    ErrorKind::InvalidOperation,
                    unknown.message(),
                ))
            } else if value.is_none() {
                Ok(())
            } else {
                minijinja::escape_formatter(out, state, value)
            }
        });
        env.add_filter("brl", brl);

        let mut templates = Templates {
            env,
            origins: BTreeMap::new(),
            kinds: BTreeMap::new(),
            provider: BTreeMap::new(),
        };
        let mut errors = Vec::new();
        let mut sources = BTreeMap::new();

        for kind in NotificationKind::ALL {
            let name = kind_name(kind);
            let loaded = match config.by_kind.get(&kind) {
                Some(source) => load(source),
                None => Ok((
                    default_template(kind).to_owned(),
                    format!("built-in template config/templates/pt-BR/{kind}.txt"),
                )),
            };
            templates.add(name, kind, loaded, &mut sources, &mut errors);
        }
        for ((channel, kind), source) in &config.by_channel {
            templates.add(
                channel_name(channel, *kind),
                *kind,
                load(source),
                &mut sources,
                &mut errors,
            );
        }
        for ((channel, kind), spec) in &config.provider {
            let prefix = format!("provider/{channel}/{kind}");
            let mut names = ProviderNames {
                name: spec.name.clone(),
                language: spec.language.clone(),
                positional: Vec::new(),
                named: Vec::new(),
            };
            for (i, param) in spec.positional.iter().enumerate() {
                let name = format!("{prefix}/positional/{i}");
                let origin = format!(
                    "provider template parameter {}.positional[{i}]",
                    spec.config_key
                );
                templates.add(
                    name.clone(),
                    *kind,
                    Ok((snippet(param), origin)),
                    &mut sources,
                    &mut errors,
                );
                names.positional.push(name);
            }
            for (key, param) in &spec.named {
                let name = format!("{prefix}/named/{key}");
                let origin = format!(
                    "provider template parameter {}.named.{key}",
                    spec.config_key
                );
                templates.add(
                    name.clone(),
                    *kind,
                    Ok((snippet(param), origin)),
                    &mut sources,
                    &mut errors,
                );
                names.named.push((key.clone(), name));
            }
            templates.provider.insert((channel.clone(), *kind), names);
        }
        // Templates that compiled are validated even when others did not, so
        // one run reports every problem.
        errors.extend(templates.validate(&sources));
        if errors.is_empty() {
            Ok(templates)
        } else {
            Err(TemplateErrors(errors))
        }
    }

    fn add(
        &mut self,
        name: String,
        kind: NotificationKind,
        loaded: Result<(String, String), TemplateError>,
        sources: &mut BTreeMap<String, String>,
        errors: &mut Vec<TemplateError>,
    ) {
        let (text, origin) = match loaded {
            Ok(loaded) => loaded,
            Err(err) => {
                errors.push(err);
                return;
            }
        };
        if let Err(err) = self.env.add_template_owned(name.clone(), text.clone()) {
            errors.push(convert(&err, &origin));
            return;
        }
        self.origins.insert(name.clone(), origin);
        self.kinds.insert(name.clone(), kind);
        sources.insert(name, text);
    }

    /// Static variable check plus sample renders of every template.
    fn validate(&self, sources: &BTreeMap<String, String>) -> Vec<TemplateError> {
        let store = StoreInfo {
            id: "loja-exemplo".to_owned(),
            description: "Loja Exemplo".to_owned(),
            time_zone: jiff::tz::TimeZone::get(crate::decide::timing::DEFAULT_TIME_ZONE)
                .unwrap_or(jiff::tz::TimeZone::UTC),
        };
        let orders = sample_orders();
        let mut errors = Vec::new();
        let mut seen = BTreeSet::new();
        for (name, text) in sources {
            let (Some(origin), Some(kind)) = (self.origins.get(name), self.kinds.get(name)) else {
                continue;
            };
            let Ok(template) = self.env.get_template(name) else {
                continue;
            };
            let contexts: Vec<Value> = orders
                .iter()
                .map(|order| {
                    let tracking =
                        crate::decide::detect::current_codes(order)
                            .next()
                            .map(|(s, c)| TrackingRef {
                                shipment_id: s.to_owned(),
                                code: c.to_owned(),
                            });
                    let tracking = if *kind == NotificationKind::TrackingUpdated {
                        tracking
                    } else {
                        None
                    };
                    context_value(&TemplateContext::new(
                        order,
                        *kind,
                        &store,
                        tracking.as_ref(),
                    ))
                })
                .collect();

            let globals: BTreeSet<&str> = self.env.globals().map(|(name, _)| name).collect();
            let mut variables: Vec<String> =
                template.undeclared_variables(true).into_iter().collect();
            variables.sort();
            let mut unknown = false;
            for variable in variables {
                let root = variable.split('.').next().unwrap_or_default();
                if !globals.contains(root)
                    && !contexts.iter().any(|ctx| path_exists(ctx, &variable))
                {
                    unknown = true;
                    let err = TemplateError::UnknownVariable {
                        template: origin.clone(),
                        line: line_of(text, &variable),
                        variable,
                    };
                    if seen.insert(err.to_string()) {
                        errors.push(err);
                    }
                }
            }
            if unknown {
                // The sample renders would only repeat the same problem.
                continue;
            }
            for ctx in &contexts {
                if let Err(err) = template.render(ctx) {
                    // Another sample would burn the same fuel for the same answer.
                    let out_of_fuel = err.kind() == ErrorKind::OutOfFuel;
                    let err = convert(&err, origin);
                    if out_of_fuel {
                        if seen.insert(err.to_string()) {
                            errors.push(err);
                        }
                        break;
                    }
                    // Extras differ per platform and order; a sample cannot have them all.
                    if matches!(&err, TemplateError::UnknownVariable { variable, .. } if variable.starts_with("order.extras."))
                    {
                        continue;
                    }
                    if seen.insert(err.to_string()) {
                        errors.push(err);
                    }
                }
            }
        }
        errors
    }

    /// The name error messages and logs use for the template of `kind` on `channel`.
    pub fn origin(&self, kind: NotificationKind, channel: &str) -> Option<&str> {
        let name = self.template_name(kind, channel);
        self.origins.get(&name).map(String::as_str)
    }

    fn template_name(&self, kind: NotificationKind, channel: &str) -> String {
        let specific = channel_name(channel, kind);
        if self.origins.contains_key(&specific) {
            specific
        } else {
            kind_name(kind)
        }
    }

    /// Render the text of a notification of `kind` for `channel`.
    pub fn render(
        &self,
        kind: NotificationKind,
        channel: &str,
        context: &TemplateContext,
    ) -> Result<String, TemplateError> {
        let name = self.template_name(kind, channel);
        Ok(tidy(&self.render_named(&name, &context_value(context))?))
    }

    /// Render the provider template parameters of `kind` for `channel`, if configured.
    pub fn render_provider(
        &self,
        kind: NotificationKind,
        channel: &str,
        context: &TemplateContext,
    ) -> Result<Option<RenderedProviderTemplate>, TemplateError> {
        let Some(names) = self.provider.get(&(channel.to_owned(), kind)) else {
            return Ok(None);
        };
        let ctx = context_value(context);
        let positional = names
            .positional
            .iter()
            .map(|name| self.render_named(name, &ctx).map(|s| s.trim().to_owned()))
            .collect::<Result<Vec<_>, _>>()?;
        let named = names
            .named
            .iter()
            .map(|(key, name)| {
                self.render_named(name, &ctx)
                    .map(|s| (key.clone(), s.trim().to_owned()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(RenderedProviderTemplate {
            name: names.name.clone(),
            language: names.language.clone(),
            positional,
            named,
        }))
    }

    fn render_named(&self, name: &str, ctx: &Value) -> Result<String, TemplateError> {
        let origin = self.origins.get(name).map_or(name, String::as_str);
        let template = self
            .env
            .get_template(name)
            .map_err(|err| convert(&err, origin))?;
        template.render(ctx).map_err(|err| convert(&err, origin))
    }
}

fn load(source: &TemplateSource) -> Result<(String, String), TemplateError> {
    match source {
        TemplateSource::Inline { text, config_key } => {
            Ok((text.clone(), format!("inline template for {config_key}")))
        }
        TemplateSource::File { path } => read_template_file(path)
            .map(|text| (text, path.display().to_string()))
            .map_err(|source| TemplateError::Read {
                path: path.clone(),
                source,
            }),
    }
}

/// Largest template file read (a message template is a few hundred bytes).
const MAX_TEMPLATE_FILE_BYTES: u64 = 1024 * 1024;

/// The file's text, refusing more than [`MAX_TEMPLATE_FILE_BYTES`] without
/// reading it all (a path to /dev/zero must not hang `validate`).
fn read_template_file(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(MAX_TEMPLATE_FILE_BYTES + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > MAX_TEMPLATE_FILE_BYTES {
        return Err(std::io::Error::other(format!(
            "larger than {MAX_TEMPLATE_FILE_BYTES} bytes"
        )));
    }
    Ok(text)
}

/// A provider parameter is an expression unless it contains template tags.
fn snippet(param: &str) -> String {
    if param.contains("{{") || param.contains("{%") {
        param.to_owned()
    } else {
        format!("{{{{ {} }}}}", param.trim())
    }
}

/// The `brl` filter: cents → `R$ 1.234,56`; an unknown amount is an error
/// (see [`UnknownValue`]), never `R$ 0,00`.
fn brl(cents: Value) -> Result<String, minijinja::Error> {
    if let Some(unknown) = cents.downcast_object_ref::<UnknownValue>() {
        return Err(minijinja::Error::new(
            ErrorKind::InvalidOperation,
            unknown.message(),
        ));
    }
    let cents = i64::try_from(cents.clone()).map_err(|_| {
        minijinja::Error::new(
            ErrorKind::InvalidOperation,
            format!("`brl` needs an amount in cents (an integer), got {cents}"),
        )
    })?;
    Ok(Money(cents).format_brl())
}

/// Map a minijinja error to ours, naming the template by its origin.
fn convert(err: &minijinja::Error, origin: &str) -> TemplateError {
    let template = origin.to_owned();
    let line = err.line();
    let detail = err.detail().map(str::to_owned);
    match err.kind() {
        ErrorKind::SyntaxError | ErrorKind::BadEscape => TemplateError::Syntax {
            template,
            line,
            message: detail.unwrap_or_else(|| err.kind().to_string()),
        },
        ErrorKind::UndefinedError => {
            let from_detail = detail.as_deref().and_then(|d| {
                let start = d.find('`')? + 1;
                let len = d[start..].find('`')?;
                Some(d[start..start + len].to_owned())
            });
            let from_source = err
                .template_source()
                .zip(err.range())
                .and_then(|(src, range)| src.get(range))
                .map(str::to_owned);
            let variable = from_detail
                .or(from_source)
                .unwrap_or_else(|| "?".to_owned());
            TemplateError::UnknownVariable {
                template,
                line,
                variable,
            }
        }
        ErrorKind::InvalidOperation
            if detail
                .as_deref()
                .is_some_and(|d| d.contains(context::UNKNOWN_VALUE_MARKER)) =>
        {
            TemplateError::MissingValue {
                template,
                line,
                message: detail.unwrap_or_default(),
            }
        }
        // Our unknown-value marker is the only plain object in the context:
        // arithmetic or a comparison on it names the expression.
        ErrorKind::InvalidOperation
            if detail
                .as_deref()
                .is_some_and(|d| d.contains("plain object")) =>
        {
            let expression = err
                .template_source()
                .zip(err.range())
                .and_then(|(src, range)| src.get(range))
                .unwrap_or("?");
            TemplateError::MissingValue {
                template,
                line,
                message: format!(
                    "`{expression}` uses a value the platform sent unreadable (an unknown \
                     amount or quantity); test it with `{{% if … %}}` first"
                ),
            }
        }
        ErrorKind::OutOfFuel => TemplateError::Render {
            template,
            line,
            message: format!(
                "the template does too much work (more than {RENDER_FUEL} steps in one render): \
                 check its loops"
            ),
        },
        kind => TemplateError::Render {
            template,
            line,
            message: match detail {
                Some(detail) => format!("{kind}: {detail}"),
                None => kind.to_string(),
            },
        },
    }
}

/// Whether a dotted variable path exists in a sample context. A path that
/// reaches `none`, a list, or the free-form `order.extras` is accepted.
fn path_exists(ctx: &Value, path: &str) -> bool {
    let mut parts = path.split('.');
    let Some(root) = parts.next() else {
        return false;
    };
    let Ok(mut value) = ctx.get_attr(root) else {
        return false;
    };
    let mut walked = root.to_owned();
    for part in parts {
        if value.is_undefined() {
            return false;
        }
        if value.is_none()
            || walked == "order.extras"
            || value.kind() == minijinja::value::ValueKind::Seq
        {
            return true;
        }
        match value.get_attr(part) {
            Ok(next) => value = next,
            Err(_) => return false,
        }
        walked.push('.');
        walked.push_str(part);
    }
    !value.is_undefined()
}

/// 1-based line of the first occurrence of `variable` as a whole word.
fn line_of(source: &str, variable: &str) -> Option<usize> {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_' || c == '.';
    let mut from = 0;
    while let Some(pos) = source[from..].find(variable) {
        let start = from + pos;
        let end = start + variable.len();
        let before_ok = source[..start]
            .chars()
            .next_back()
            .is_none_or(|c| !is_ident(c));
        let after_ok = source[end..]
            .chars()
            .next()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        if before_ok && after_ok {
            return Some(source[..start].matches('\n').count() + 1);
        }
        from = end;
    }
    None
}

/// Trailing spaces off, at most one blank line in a row, no leading/trailing blank lines.
fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank_run = 0;
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            blank_run += 1;
            if blank_run > 1 || out.is_empty() {
                continue;
            }
        } else {
            blank_run = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_filter_strips_bidi_invisible_and_control_characters() {
        assert_eq!(clean_text("\u{202E}ana\u{202C} silva", 100), "ana silva");
        assert_eq!(
            clean_text("a\u{200B}b\u{200D}c\u{FEFF}d\u{2066}e\u{2069}", 100),
            "abcde"
        );
        assert_eq!(
            clean_text("QB123\nLIGUE\r\n0800\tJA", 100),
            "QB123 LIGUE  0800 JA"
        );
        assert_eq!(clean_text("bell\u{7}nul\u{0}del\u{7f}", 100), "bellnuldel");
        // Accents, emoji and ordinary punctuation are untouched.
        assert_eq!(clean_text("Conceição 🌸 — ok!", 100), "Conceição 🌸 — ok!");
    }

    #[test]
    fn the_text_filter_caps_lengths_with_a_marker() {
        let long = "x".repeat(10_000);
        let cut = clean_text(&long, MAX_NAME_CHARS);
        assert_eq!(cut.chars().count(), MAX_NAME_CHARS);
        assert!(cut.ends_with('…'));
        assert_eq!(clean_text("exactly", 7), "exactly");
        assert_eq!(cap_for(&["customer", "name"]), MAX_NAME_CHARS);
        assert_eq!(cap_for(&["tracking", "code"]), MAX_TRACKING_CODE_CHARS);
        assert_eq!(
            cap_for(&["order", "shipments", "[]", "tracking_code"]),
            MAX_TRACKING_CODE_CHARS
        );
        assert_eq!(cap_for(&["order", "pix", "code"]), MAX_PIX_CODE_CHARS);
        assert_eq!(cap_for(&["order", "payment_method"]), MAX_TEXT_CHARS);
    }

    /// The filter as it was before issue 16's rewrite, kept to compare.
    fn clean_value_before(value: Value, path: &mut Vec<String>) -> Value {
        match value.kind() {
            ValueKind::String => {
                let text = value.as_str().unwrap_or_default();
                let keys: Vec<&str> = path.iter().map(String::as_str).collect();
                let max = cap_for(&keys);
                if text.chars().count() > max
                    || text.chars().any(|c| c.is_control() || is_invisible(c))
                {
                    Value::from(clean_text(text, max))
                } else {
                    value
                }
            }
            ValueKind::Seq => {
                path.push("[]".to_owned());
                let items: Vec<Value> = match value.try_iter() {
                    Ok(items) => items.map(|item| clean_value_before(item, path)).collect(),
                    Err(_) => Vec::new(),
                };
                path.pop();
                Value::from(items)
            }
            ValueKind::Map => {
                let mut map = BTreeMap::new();
                if let Ok(keys) = value.try_iter() {
                    for key in keys {
                        let item = value.get_item(&key).unwrap_or_default();
                        path.push(key.as_str().unwrap_or_default().to_owned());
                        let item = clean_value_before(item, path);
                        path.pop();
                        map.insert(key, item);
                    }
                }
                Value::from_object(map)
            }
            _ => value,
        }
    }

    #[test]
    fn the_filtered_context_is_what_the_filter_gave_before() {
        let store = StoreInfo {
            id: "loja".into(),
            description: "Loja \u{202E}X".into(),
            time_zone: jiff::tz::TimeZone::UTC,
        };
        let long = "y".repeat(2_000);
        for (i, mut order) in sample_orders().into_iter().enumerate() {
            if i == 0 {
                order.customer.first_name = "\u{202E}anA\u{202C}".into();
                order.customer.name = format!("Ana\u{200B} Silva{long}");
                if let Some(item) = order.items.first_mut() {
                    item.name = format!("Vaso\u{7} azul\r\n{long}");
                }
                if let Some(shipment) = order.shipments.first_mut() {
                    shipment.tracking_code = Some(format!("QB123\n{long}"));
                }
            }
            for kind in [
                NotificationKind::OrderPaid,
                NotificationKind::TrackingUpdated,
            ] {
                let context = TemplateContext::new(&order, kind, &store, None);
                let now = context_value(&context);
                let before = clean_value_before(Value::from(Serde(&context)), &mut Vec::new());
                assert_eq!(now, before, "order {i}, {kind:?}");
                assert_eq!(
                    format!("{now:?}"),
                    format!("{before:?}"),
                    "order {i}, {kind:?}"
                );
            }
        }
    }
}
