//! Fake third-party services for arauto's demo and tests, as real HTTP servers
//! on 127.0.0.1: a Loja Integrada API simulator ([`li`]), a Nuvemshop API
//! simulator ([`nuvemshop`]) and channel provider
//! fakes ([`channels`]: WhatsApp Cloud API, Evolution API, Z-API, Twilio,
//! Telegram, webhook receivers) that record what they receive, and scripted
//! stories that move a fake store's orders over time ([`scenario`], the
//! `arauto-sim` binary's demo).

pub mod channels;
pub mod li;
pub mod nuvemshop;
pub mod scenario;
mod serving;
