//! The revocation ids of a writ's blocks, held in one allocation: every live writ keeps
//! them (revocation is tested on every request), so their layout is part of what a live
//! writ costs.

use crate::error::WritError;

/// The revocation ids (block signatures) of a writ's blocks, authority first.
///
/// Laid out as `[count][end of each id, u16 little-endian]…[the ids' bytes]`: one
/// allocation of about 130 bytes for a writ minted here, where a vector of vectors takes
/// three and about 200.
#[derive(Clone, PartialEq, Eq)]
pub struct RevocationIds(Box<[u8]>);

impl RevocationIds {
    /// The ids in `ids`, in order. Refused if there are more than 255 ids or more than
    /// 64 KiB of them (writs have at most [`crate::MAX_BLOCKS`] blocks, each signature
    /// under 100 bytes).
    pub(crate) fn new(ids: &[Vec<u8>]) -> Result<Self, WritError> {
        let too_many = |_| WritError::Malformed {
            reason: "too many revocation ids",
        };
        let count = u8::try_from(ids.len()).map_err(too_many)?;
        let total: usize = ids.iter().map(Vec::len).sum();
        let mut out = Vec::with_capacity(1 + 2 * ids.len() + total);
        out.push(count);
        let mut end = 0usize;
        for id in ids {
            end += id.len();
            let end = u16::try_from(end).map_err(too_many)?;
            out.extend_from_slice(&end.to_le_bytes());
        }
        for id in ids {
            out.extend_from_slice(id);
        }
        Ok(Self(out.into_boxed_slice()))
    }

    /// Number of ids (one per block).
    pub fn len(&self) -> usize {
        self.0.first().map_or(0, |&n| usize::from(n))
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The end of id `i` within the ids' bytes.
    fn end(&self, i: usize) -> Option<usize> {
        let at = 1 + 2 * i;
        let bytes = <[u8; 2]>::try_from(self.0.get(at..at + 2)?).ok()?;
        Some(usize::from(u16::from_le_bytes(bytes)))
    }

    /// The id of block `i` (0 is the authority block).
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        if i >= self.len() {
            return None;
        }
        let start = if i == 0 { 0 } else { self.end(i - 1)? };
        let base = 1 + 2 * self.len();
        self.0.get(base + start..base + self.end(i)?)
    }

    /// The id of the last block.
    pub fn last(&self) -> Option<&[u8]> {
        self.len().checked_sub(1).and_then(|i| self.get(i))
    }

    /// Every id, authority first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &[u8]> + ExactSizeIterator + '_ {
        (0..self.len()).map(|i| self.get(i).unwrap_or_default())
    }

    /// Every id as its own vector, authority first.
    pub fn to_vec(&self) -> Vec<Vec<u8>> {
        self.iter().map(<[u8]>::to_vec).collect()
    }

    /// Whether `ids` are these ids, in this order.
    pub(crate) fn matches(&self, ids: &[Vec<u8>]) -> bool {
        self.len() == ids.len() && self.iter().zip(ids).all(|(a, b)| a == b.as_slice())
    }
}

/// The id of block `i`, as a slice is indexed: panics if there is no block `i`.
impl std::ops::Index<usize> for RevocationIds {
    type Output = [u8];
    fn index(&self, i: usize) -> &[u8] {
        match self.get(i) {
            Some(id) => id,
            None => panic!("block {i} out of {} revocation ids", self.len()),
        }
    }
}

impl std::fmt::Debug for RevocationIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.iter().map(hex::encode))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_of_any_length_read_back_in_order() {
        let ids = vec![vec![1u8; 64], vec![2u8; 71], vec![], vec![3u8; 64]];
        let held = RevocationIds::new(&ids).unwrap();
        assert_eq!(held.len(), 4);
        assert_eq!(held.to_vec(), ids);
        assert_eq!(held.get(1), Some(&[2u8; 71][..]));
        assert_eq!(held.get(2), Some(&[][..]));
        assert_eq!(held.get(4), None);
        assert_eq!(&held[3], &[3u8; 64][..]);
        assert_eq!(held.last(), Some(&[3u8; 64][..]));
        assert_eq!(held.iter().next_back(), Some(&[3u8; 64][..]));
        assert!(held.matches(&ids));
        assert!(!held.matches(&ids[..3]));
        let empty = RevocationIds::new(&[]).unwrap();
        assert!(empty.is_empty() && empty.last().is_none());
        assert!(RevocationIds::new(&vec![vec![0u8; 1]; 256]).is_err());
        assert!(RevocationIds::new(&[vec![0u8; 70_000]]).is_err());
    }
}
