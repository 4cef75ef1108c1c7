//! What a fake Nuvemshop store holds: orders with their three state fields,
//! nested customers, products, and tracking.
//!
//! Plain structs with public fields and chainable builders, like the LI
//! fake's model. Money is in cents (`i64`) and rendered as decimal strings
//! (`"139.90"`); times are [`jiff::Timestamp`]s rendered with an offset (see
//! [`TimeFormat`](super::TimeFormat)). State values are strings, not enums, so
//! tests can send the values a store really holds and also the ones it
//! should not (`"closed "`, `"PAID"`).

use jiff::Timestamp;

/// The order's `id` (the API addresses orders by it; `number` is what
/// customers see).
pub type OrderId = u64;

/// `status` values.
pub mod status {
    /// Open (the default).
    pub const OPEN: &str = "open";
    /// Closed (archived by the merchant after fulfilment).
    pub const CLOSED: &str = "closed";
    /// Cancelled.
    pub const CANCELLED: &str = "cancelled";
}

/// `payment_status` values.
pub mod payment {
    /// Waiting for the payment.
    pub const PENDING: &str = "pending";
    /// Authorised, not captured yet.
    pub const AUTHORIZED: &str = "authorized";
    /// Paid.
    pub const PAID: &str = "paid";
    /// Voided.
    pub const VOIDED: &str = "voided";
    /// Refunded.
    pub const REFUNDED: &str = "refunded";
    /// Abandoned.
    pub const ABANDONED: &str = "abandoned";
}

/// `shipping_status` values.
pub mod shipping {
    /// Not packed yet (the default).
    pub const UNPACKED: &str = "unpacked";
    /// Packed, not shipped yet (the `order/packed` event).
    pub const UNFULFILLED: &str = "unfulfilled";
    /// Shipped (the `order/fulfilled` event); older docs call it `shipped`.
    pub const FULFILLED: &str = "fulfilled";
}

/// The buyer (`customer`), nested in the order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Customer {
    /// `customer.id`; assigned by the store when `None`.
    pub id: Option<u64>,
    /// `customer.name` (also the order's `contact_name`).
    pub name: String,
    /// `customer.email` (also `contact_email`).
    pub email: Option<String>,
    /// `customer.phone`, free text as the buyer typed it (`"+55 11 99999-0001"`).
    pub phone: Option<String>,
    /// `customer.identification` (CPF).
    pub identification: Option<String>,
}

impl Customer {
    /// A customer with a name only.
    pub fn new(name: &str) -> Self {
        Self {
            id: None,
            name: name.to_owned(),
            email: None,
            phone: None,
            identification: None,
        }
    }
    /// Set `email`.
    pub fn email(mut self, email: &str) -> Self {
        self.email = Some(email.to_owned());
        self
    }
    /// Set `phone`.
    pub fn phone(mut self, phone: &str) -> Self {
        self.phone = Some(phone.to_owned());
        self
    }
    /// Set `id`.
    pub fn id(mut self, id: u64) -> Self {
        self.id = Some(id);
        self
    }
}

impl Default for Customer {
    fn default() -> Self {
        Self::new("Maria Teste da Silva")
            .email("maria.teste@example.com")
            .phone("+55 11 90000-0001")
    }
}

/// One line of `products`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Product {
    /// `product_id`.
    pub product_id: u64,
    /// `variant_id`.
    pub variant_id: u64,
    /// `name` at the time of purchase.
    pub name: String,
    /// `price` (unit) in cents.
    pub price_cents: i64,
    /// `quantity`.
    pub quantity: u32,
    /// `sku`.
    pub sku: Option<String>,
}

impl Product {
    /// One unit of `name` at `price_cents`.
    pub fn new(name: &str, price_cents: i64) -> Self {
        Self {
            product_id: 0,
            variant_id: 0,
            name: name.to_owned(),
            price_cents,
            quantity: 1,
            sku: None,
        }
    }
    /// Set `quantity`.
    pub fn quantity(mut self, quantity: u32) -> Self {
        self.quantity = quantity;
        self
    }
    /// Line total in cents.
    pub fn total_cents(&self) -> i64 {
        self.price_cents.saturating_mul(i64::from(self.quantity))
    }
}

/// One shipment of a multi-inventory order (`fulfillment_orders[]`): split
/// shipments, each with its own tracking.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FulfillmentOrder {
    /// `id` (a string in the API).
    pub id: String,
    /// `status`: `UNPACKED`, `PACKED`, `DISPATCHED`, `DELIVERED`.
    pub status: String,
    /// `tracking_info.code`.
    pub tracking_code: Option<String>,
    /// `tracking_info.url`.
    pub tracking_url: Option<String>,
    /// `tracking_info.carrier`.
    pub carrier: Option<String>,
}

impl FulfillmentOrder {
    /// An unpacked shipment without tracking.
    pub fn new(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            status: "UNPACKED".to_owned(),
            tracking_code: None,
            tracking_url: None,
            carrier: Some("Correios".to_owned()),
        }
    }
    /// Dispatched with this tracking code and URL.
    pub fn dispatched(mut self, code: &str, url: Option<&str>) -> Self {
        "DISPATCHED".clone_into(&mut self.status);
        self.tracking_code = Some(code.to_owned());
        self.tracking_url = url.map(str::to_owned);
        self
    }
}

/// An order as the store holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Order {
    /// `id`; assigned by the store when `None`.
    pub id: Option<OrderId>,
    /// `number`; sequential from 100 when `None`.
    pub number: Option<u64>,
    /// `status`: open / closed / cancelled.
    pub status: String,
    /// `payment_status`.
    pub payment_status: String,
    /// `shipping_status`.
    pub shipping_status: String,
    /// `shipping_tracking_number`.
    pub tracking_number: Option<String>,
    /// `shipping_tracking_url`.
    pub tracking_url: Option<String>,
    /// The nested `customer`.
    pub customer: Customer,
    /// `contact_phone` (the phone given at checkout).
    pub contact_phone: Option<String>,
    /// `billing_phone`.
    pub billing_phone: Option<String>,
    /// `products`.
    pub products: Vec<Product>,
    /// `fulfillment_orders` (rendered only when not empty).
    pub fulfillment_orders: Vec<FulfillmentOrder>,
    /// `shipping_cost_customer` in cents.
    pub shipping_cents: i64,
    /// `discount` in cents.
    pub discount_cents: i64,
    /// `currency` (ISO 4217).
    pub currency: String,
    /// `gateway`, the payment provider's code (`"nuvempago"`, `"mercadopago"`,
    /// `"boleto_paghiper"`, ...).
    pub gateway: String,
    /// `gateway_name`, its display name.
    pub gateway_name: Option<String>,
    /// `payment_details.method` (`pix`, `credit_card`, `boleto`, ...).
    pub payment_method: Option<String>,
    /// `payment_details.installments`.
    pub installments: Option<u32>,
    /// `shipping_option` (`"Correios - PAC"`).
    pub shipping_option: String,
    /// `cancel_reason` (`customer`, `fraud`, `inventory`, `other`).
    pub cancel_reason: Option<String>,
    /// `created_at`; the fake's clock when `None`.
    pub created_at: Option<Timestamp>,
    /// `updated_at`; `created_at` when `None`.
    pub updated_at: Option<Timestamp>,
    /// `paid_at`, set when `payment_status` becomes `paid`.
    pub paid_at: Option<Timestamp>,
    /// `shipped_at`, set when `shipping_status` becomes `fulfilled`.
    pub shipped_at: Option<Timestamp>,
    /// `cancelled_at`, set when `status` becomes `cancelled`.
    pub cancelled_at: Option<Timestamp>,
}

impl Default for Order {
    fn default() -> Self {
        Self::new()
    }
}

impl Order {
    /// An open, pending, unpacked order of one product (R$ 139,90 + R$ 20,00
    /// shipping) by the [`Customer::default`], paid by Pix, with the customer's
    /// phone also as `contact_phone`.
    pub fn new() -> Self {
        let customer = Customer::default();
        Self {
            id: None,
            number: None,
            status: status::OPEN.to_owned(),
            payment_status: payment::PENDING.to_owned(),
            shipping_status: shipping::UNPACKED.to_owned(),
            tracking_number: None,
            tracking_url: None,
            contact_phone: customer.phone.clone(),
            billing_phone: None,
            customer,
            products: vec![Product::new("Camiseta Básica Algodão", 13_990)],
            fulfillment_orders: Vec::new(),
            shipping_cents: 2_000,
            discount_cents: 0,
            currency: "BRL".to_owned(),
            gateway: "nuvempago".to_owned(),
            gateway_name: Some("Nuvem Pago".to_owned()),
            payment_method: Some("pix".to_owned()),
            installments: Some(1),
            shipping_option: "Correios - PAC".to_owned(),
            cancel_reason: None,
            created_at: None,
            updated_at: None,
            paid_at: None,
            shipped_at: None,
            cancelled_at: None,
        }
    }
    /// Set `id`.
    pub fn id(mut self, id: OrderId) -> Self {
        self.id = Some(id);
        self
    }
    /// Set `number`.
    pub fn number(mut self, number: u64) -> Self {
        self.number = Some(number);
        self
    }
    /// Set the customer; `contact_phone` follows the customer's phone.
    pub fn customer(mut self, customer: Customer) -> Self {
        self.contact_phone.clone_from(&customer.phone);
        self.customer = customer;
        self
    }
    /// Set `contact_phone` (`None`: no phone given at checkout).
    pub fn contact_phone(mut self, phone: Option<&str>) -> Self {
        self.contact_phone = phone.map(str::to_owned);
        self
    }
    /// Set `billing_phone`.
    pub fn billing_phone(mut self, phone: Option<&str>) -> Self {
        self.billing_phone = phone.map(str::to_owned);
        self
    }
    /// Set the three state fields at once.
    pub fn states(mut self, status: &str, payment_status: &str, shipping_status: &str) -> Self {
        status.clone_into(&mut self.status);
        payment_status.clone_into(&mut self.payment_status);
        shipping_status.clone_into(&mut self.shipping_status);
        self
    }
    /// Set `payment_status`.
    pub fn payment_status(mut self, value: &str) -> Self {
        value.clone_into(&mut self.payment_status);
        self
    }
    /// Set `shipping_status`.
    pub fn shipping_status(mut self, value: &str) -> Self {
        value.clone_into(&mut self.shipping_status);
        self
    }
    /// Set `status`.
    pub fn status(mut self, value: &str) -> Self {
        value.clone_into(&mut self.status);
        self
    }
    /// Set the tracking number and URL.
    pub fn tracking(mut self, number: &str, url: Option<&str>) -> Self {
        self.tracking_number = Some(number.to_owned());
        self.tracking_url = url.map(str::to_owned);
        self
    }
    /// Set `products`.
    pub fn products(mut self, products: Vec<Product>) -> Self {
        self.products = products;
        self
    }
    /// Set `fulfillment_orders` (split shipments).
    pub fn fulfillment_orders(mut self, shipments: Vec<FulfillmentOrder>) -> Self {
        self.fulfillment_orders = shipments;
        self
    }
    /// Set `gateway` (keeping the other payment fields).
    pub fn gateway(mut self, gateway: &str) -> Self {
        gateway.clone_into(&mut self.gateway);
        self
    }
    /// Set the payment: `payment_details.method`, `gateway`, `gateway_name`
    /// and `payment_details.installments`.
    pub fn payment(
        mut self,
        method: &str,
        gateway: &str,
        gateway_name: &str,
        installments: u32,
    ) -> Self {
        self.payment_method = Some(method.to_owned());
        gateway.clone_into(&mut self.gateway);
        self.gateway_name = Some(gateway_name.to_owned());
        self.installments = Some(installments);
        self
    }
    /// Set `created_at`.
    pub fn created_at(mut self, at: Timestamp) -> Self {
        self.created_at = Some(at);
        self
    }
    /// Set `updated_at`.
    pub fn updated_at(mut self, at: Timestamp) -> Self {
        self.updated_at = Some(at);
        self
    }
    /// `subtotal` in cents (sum of the product lines).
    pub fn subtotal_cents(&self) -> i64 {
        self.products.iter().map(Product::total_cents).sum()
    }
    /// `total` in cents: subtotal + shipping − discount.
    pub fn total_cents(&self) -> i64 {
        self.subtotal_cents() + self.shipping_cents - self.discount_cents
    }
}

/// `"139.90"` from 13990; `"-5.00"` from -500.
pub(crate) fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let cents = cents.unsigned_abs();
    format!("{sign}{}.{:02}", cents / 100, cents % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_a_two_decimal_string() {
        assert_eq!(money(13_990), "139.90");
        assert_eq!(money(5), "0.05");
        assert_eq!(money(-500), "-5.00");
    }

    #[test]
    fn the_default_order_totals_add_up() {
        let order = Order::new();
        assert_eq!(order.subtotal_cents(), 13_990);
        assert_eq!(order.total_cents(), 15_990);
    }
}
