//! Offline attenuation: a holder appends a block of grants, narrowing what a writ allows,
//! without the root key and without calling the gateway.

use biscuit_auth::UnverifiedBiscuit;
use biscuit_auth::builder::BlockBuilder;

use crate::encoding::{MAX_BLOCKS, WRIT_PREFIX, classify_parse_error, decode};
use crate::error::WritError;
use crate::grant::{Grant, compile_block, validate};

/// Appends a block holding `grants` to `writ` and returns the narrower writ.
///
/// The new block's access grants are alternatives, as at mint time; every block must
/// pass, so the result allows at most what `writ` allowed. Nothing is verified here: the
/// gateway verifies the whole chain when the writ is used.
pub fn attenuate(writ: &str, grants: &[Grant]) -> Result<String, WritError> {
    validate(grants)?;
    let body = &decode(writ)?.body;
    let token = UnverifiedBiscuit::from_base64(body).map_err(classify_parse_error)?;
    if token.block_count() >= MAX_BLOCKS {
        return Err(WritError::TooManyBlocks {
            count: token.block_count() + 1,
            max: MAX_BLOCKS,
        });
    }
    let block =
        compile_block(BlockBuilder::new(), grants).map_err(|e| WritError::Build(e.to_string()))?;
    let narrowed = token
        .append(block)
        .map_err(|e| WritError::Build(e.to_string()))?;
    let b64 = narrowed
        .to_base64()
        .map_err(|e| WritError::Build(e.to_string()))?;
    Ok(format!("{WRIT_PREFIX}{b64}"))
}
