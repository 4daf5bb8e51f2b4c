//! Upstream providers: which routes each serves, the request facts it reads from a body,
//! how its credential is injected, and how its usage and errors read.
//!
//! The gateway builds a [`Provider`] per upstream from its kind-tagged [`ProviderConfig`]
//! and asks it; a route's wire format is an opaque [`Dialect`]. Adding a provider means a
//! module here, a variant of [`ProviderConfig`] and its arms in this crate's matches; the
//! gateway does not change.
//!
//! Everything here is pure: bytes and headers in, values out. The gateway does the I/O.

pub mod anthropic;
pub mod azure;
pub mod bedrock;
mod error_shape;
mod fields;
pub mod gemini;
mod inspect;
pub mod mcp;
mod meter;
pub mod openai;
mod provider;
mod route;
mod secret;
pub mod sigv4;
pub mod sse;
pub mod stream_text;
mod usage;
pub mod vertex;

pub use error_shape::GatewayErrorReport;
pub use inspect::{InspectError, Inspected};
pub use meter::{BodyUsage, StreamMeter, is_event_stream};
pub use provider::{
    AwsShapeProblem, AzureConfig, BedrockConfig, BuildError, ConfigSource, CredentialError,
    FieldProblem, InspectRefusal, Inspection, KeyConfig, Launch, McpConfig, OpenAiConfig, Provider,
    ProviderConfig, RawSecret, ToolConfig, VertexConfig,
};
pub use route::{Dialect, Operation, ProviderKind, ROUTES, RouteSpec, UpstreamInPath};
pub use secret::UpstreamSecret;
pub use stream_text::{Channel, TextFilter, TextKind};
pub use usage::{PriceEntry, Pricing, PricingError, Usage, estimate_tokens};
