//! Usage: tokens a call consumed, and what they cost by the pricing table.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Tokens one call consumed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Usage {
    /// Input (prompt) tokens, cached ones included.
    pub input_tokens: u64,
    /// Output (completion) tokens.
    pub output_tokens: u64,
    /// Of the input tokens, how many were served from the provider's cache.
    pub cached_input_tokens: u64,
}

/// A token count a usage report states that is not a non-negative integer (negative,
/// fractional, beyond `u64`, a string): the report cannot be read, and the call is
/// estimated rather than metered as zero — a broken or hostile upstream must not make
/// output free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UnreadableCount;

/// A token count of a usage report: `None` when absent or null.
pub(crate) fn count(value: Option<&serde_json::Value>) -> Result<Option<u64>, UnreadableCount> {
    match value {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or(UnreadableCount),
    }
}

/// Documented estimate when a provider reports no usage: about four characters a token.
pub fn estimate_tokens(chars: u64) -> u64 {
    chars.div_ceil(4)
}

/// A model's prices, as pico-USD per token (USD per million tokens × 10⁶), so costs are
/// exact integer arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Price {
    input: u64,
    output: u64,
    cached_input: u64,
}

/// A price as written in the pricing file: USD per million tokens.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceEntry {
    /// Input tokens.
    pub input: f64,
    /// Output tokens.
    pub output: f64,
    /// Cached input tokens; the input price when left out.
    pub cached_input: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PricingFile {
    models: HashMap<String, PriceEntry>,
}

/// A price could not be read.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PricingError {
    /// The file is not valid.
    #[error("invalid pricing table: {0}")]
    Invalid(String),
    /// A price is negative, not finite, or absurdly large.
    #[error("price for `{model}` must be between 0 and 1 000 000 USD per million tokens")]
    OutOfRange {
        /// The model.
        model: String,
    },
}

/// Prices by model name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pricing {
    models: HashMap<String, Price>,
}

const BUILTIN: &str = include_str!("../pricing.toml");

fn picos(model: &str, usd_per_million: f64) -> Result<u64, PricingError> {
    if !usd_per_million.is_finite() || !(0.0..=1_000_000.0).contains(&usd_per_million) {
        return Err(PricingError::OutOfRange {
            model: model.to_string(),
        });
    }
    Ok((usd_per_million * 1e6).round() as u64)
}

impl Pricing {
    /// The table shipped with writ (`pricing.toml`).
    pub fn builtin() -> Self {
        Self::from_toml(BUILTIN).unwrap_or_default()
    }

    /// Reads a pricing table in the format of `pricing.toml`.
    pub fn from_toml(text: &str) -> Result<Self, PricingError> {
        let file: PricingFile =
            toml::from_str(text).map_err(|e| PricingError::Invalid(e.to_string()))?;
        let mut pricing = Self::default();
        for (model, entry) in file.models {
            pricing.set(&model, entry)?;
        }
        Ok(pricing)
    }

    /// Sets (or overrides) one model's price.
    pub fn set(&mut self, model: &str, entry: PriceEntry) -> Result<(), PricingError> {
        let price = Price {
            input: picos(model, entry.input)?,
            output: picos(model, entry.output)?,
            cached_input: picos(model, entry.cached_input.unwrap_or(entry.input))?,
        };
        self.models.insert(model.to_string(), price);
        Ok(())
    }

    /// The price for `model`: its own entry, else the longest entry it starts with.
    pub fn price(&self, model: &str) -> Option<Price> {
        if let Some(p) = self.models.get(model) {
            return Some(*p);
        }
        self.models
            .iter()
            .filter(|(name, _)| model.starts_with(name.as_str()))
            .max_by_key(|(name, _)| name.len())
            .map(|(_, p)| *p)
    }

    /// The cost of `usage` on `model` in USD micros, rounded up; `None` for an unpriced model.
    pub fn cost_usd_micros(&self, model: &str, usage: &Usage) -> Option<u64> {
        let p = self.price(model)?;
        let cached = usage.cached_input_tokens.min(usage.input_tokens);
        let picos = u128::from(usage.input_tokens - cached) * u128::from(p.input)
            + u128::from(cached) * u128::from(p.cached_input)
            + u128::from(usage.output_tokens) * u128::from(p.output);
        Some(u64::try_from(picos.div_ceil(1_000_000)).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_are_exact_and_rounded_up() {
        let pricing = Pricing::builtin();
        // gpt-4o-mini: 0.15 $/M in, 0.60 $/M out → 1M in + 1M out = 0.75 $ = 750 000 µ$.
        let usage = Usage {
            input_tokens: 1_000_000,
            output_tokens: 1_000_000,
            cached_input_tokens: 0,
        };
        assert_eq!(
            pricing.cost_usd_micros("gpt-4o-mini", &usage),
            Some(750_000)
        );
        // Dated names use their family's price; cached input is cheaper.
        let cached = Usage {
            input_tokens: 1_000_000,
            output_tokens: 0,
            cached_input_tokens: 1_000_000,
        };
        assert_eq!(
            pricing.cost_usd_micros("gpt-4o-mini-2024-07-18", &cached),
            Some(75_000)
        );
        // One token still costs something.
        let one = Usage {
            input_tokens: 1,
            ..Default::default()
        };
        assert_eq!(pricing.cost_usd_micros("gpt-4o-mini", &one), Some(1));
        assert_eq!(pricing.cost_usd_micros("unknown-model", &one), None);
        assert!(
            pricing.price("gpt-4o-mini").unwrap().input < pricing.price("gpt-4o").unwrap().input
        );
    }

    #[test]
    fn overrides_and_bad_tables() {
        let mut pricing = Pricing::builtin();
        pricing
            .set(
                "gpt-4o-mini",
                PriceEntry {
                    input: 1.0,
                    output: 2.0,
                    cached_input: None,
                },
            )
            .unwrap();
        let usage = Usage {
            input_tokens: 1_000_000,
            output_tokens: 1_000_000,
            cached_input_tokens: 10,
        };
        assert_eq!(
            pricing.cost_usd_micros("gpt-4o-mini", &usage),
            Some(3_000_000)
        );
        assert!(matches!(
            Pricing::from_toml("[models.x]\ninput = -1.0\noutput = 1.0"),
            Err(PricingError::OutOfRange { .. })
        ));
        assert!(matches!(
            Pricing::from_toml("[models.x]\ninput = 1.0"),
            Err(PricingError::Invalid(_))
        ));
        assert!(matches!(
            Pricing::from_toml("[models.x]\ninput = 1.0\noutput = 1.0\nextra = 2"),
            Err(PricingError::Invalid(_))
        ));
    }
}
