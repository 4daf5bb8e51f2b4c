//! Shannon entropy of a byte string, the "does this look random" measure behind the
//! generic `password=` rule.

/// Entropy of the byte distribution of `s`, in bits per byte (0 for empty input, at most
/// `log2(min(len, 256))`).
pub(crate) fn shannon_bits_per_byte(s: &[u8]) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in s {
        counts[usize::from(b)] += 1;
    }
    let len = s.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / len;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        assert_eq!(shannon_bits_per_byte(b""), 0.0);
        assert_eq!(shannon_bits_per_byte(b"aaaa"), 0.0);
        assert!((shannon_bits_per_byte(b"abcd") - 2.0).abs() < 1e-12);
        assert!((shannon_bits_per_byte(b"abc123abc123") - 6f64.log2()).abs() < 1e-12);
    }
}
