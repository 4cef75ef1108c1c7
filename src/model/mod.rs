//! Domain types shared by every stage of the pipeline (poll → detect → decide →
//! queue → send → report).
//!
//! These are arauto's own types: the plugin host converts the WIT bindings into
//! them at the sandbox boundary, so nothing outside `plugin/` depends on a
//! particular version of the plugin contract.

mod error_class;
mod event;
mod ids;
mod notification;
mod order;
pub mod phone;
mod plugin_info;

pub use error_class::ErrorClass;
pub use event::{EventStore, EventTracking, OrderEvent};
pub use ids::ChannelId;
pub use notification::{NotificationKind, UnknownNotificationKind};
pub use order::{
    Boleto, Customer, Item, Money, Order, OrderStatus, Payment, PaymentFamily, Pix, Shipment,
};
pub use phone::{E164, NoUsablePhone, PhoneProblem, first_usable_phone};
pub use plugin_info::{
    Capabilities, Capability, ConfigKey, ConnectorInfo, DeclaredBy, PluginInfo, PluginKind,
    PushSupport, RecipientNeed, SenderInfo, StatusEntry,
};
