//! Chunk boundaries derived from a target's own input, so a crash replays exactly.

/// Cuts `data` into chunks whose lengths (1 to 16 bytes, now and then up to 300) come
/// from a generator seeded with a hash of `data`: the same input always gets the same
/// cut, and different inputs get different ones.
pub(crate) fn derived_chunks(data: &[u8]) -> Vec<&[u8]> {
    // FNV-1a of the input seeds an xorshift generator.
    let mut state = data.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    }) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut chunks = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let r = next();
        let len = if r % 8 == 0 {
            1 + (r >> 8) % 300
        } else {
            1 + (r >> 8) % 16
        };
        let len = usize::try_from(len).unwrap_or(1).min(rest.len());
        let (chunk, tail) = rest.split_at(len);
        chunks.push(chunk);
        rest = tail;
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_input_in_order_and_depend_on_it() {
        let data: Vec<u8> = (0..2000u32).map(|i| (i % 251) as u8).collect();
        let chunks = derived_chunks(&data);
        assert_eq!(chunks.concat(), data);
        assert!(chunks.len() > 1);
        assert!(chunks.iter().all(|c| !c.is_empty()));
        let mut other = data.clone();
        other[0] ^= 1;
        let lens = |c: &[&[u8]]| c.iter().map(|c| c.len()).collect::<Vec<_>>();
        assert_ne!(lens(&derived_chunks(&other)), lens(&chunks));
        assert!(derived_chunks(b"").is_empty());
    }
}
