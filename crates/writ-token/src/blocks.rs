//! A token's signed blocks decoded from its protobuf bytes once, each with the symbol table
//! its names resolve in: what every reading of a token's bytes (the evaluation-cost shapes,
//! the time bound, the stated claims) starts from.

use biscuit_auth::format::schema;
use prost::Message;

/// The blocks of one serialized token, authority first.
pub(crate) struct Blocks {
    blocks: Vec<Decoded>,
    /// The symbols of the first-party blocks, in block order: such a block's names resolve
    /// in the symbols of the blocks up to and including it.
    shared: Vec<String>,
}

struct Decoded {
    block: schema::Block,
    /// Signed by a third party: its names resolve in its own symbols only.
    external: bool,
    /// How many of the shared symbols this block sees.
    shared_end: usize,
}

/// One block of a token, as read from [`Blocks`].
pub(crate) struct Block<'a> {
    /// 0 for the authority block.
    pub(crate) index: usize,
    pub(crate) block: &'a schema::Block,
    /// The symbol table the block's names and strings resolve in.
    pub(crate) symbols: &'a [String],
    /// Whether a third party signed it.
    pub(crate) external: bool,
}

impl Blocks {
    /// Decodes the serialized token `token`; the error is the index of the block that
    /// does not decode (0 also when the token itself does not).
    pub(crate) fn decode(token: &[u8]) -> Result<Self, usize> {
        let container = schema::Biscuit::decode(token).map_err(|_| 0usize)?;
        let mut shared: Vec<String> = Vec::new();
        let signed = std::iter::once(&container.authority).chain(container.blocks.iter());
        let blocks = signed
            .enumerate()
            .map(|(index, signed)| {
                let block = schema::Block::decode(signed.block.as_slice()).map_err(|_| index)?;
                let external = signed.external_signature.is_some();
                if !external {
                    shared.extend(block.symbols.iter().cloned());
                }
                Ok(Decoded {
                    block,
                    external,
                    shared_end: shared.len(),
                })
            })
            .collect::<Result<Vec<_>, usize>>()?;
        Ok(Self { blocks, shared })
    }

    /// How many blocks the token has, authority included.
    pub(crate) fn len(&self) -> usize {
        self.blocks.len()
    }

    /// The blocks, authority first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = Block<'_>> {
        self.blocks.iter().enumerate().map(|(index, d)| Block {
            index,
            block: &d.block,
            symbols: if d.external {
                &d.block.symbols
            } else {
                &self.shared[..d.shared_end]
            },
            external: d.external,
        })
    }
}
