//! Per-block checksums of a piece (manifest version 2): the block table built while a piece is
//! written (one CRC32C pass over the bytes gives every block's CRC and the whole piece's), and
//! the checks a reader makes before it hands out a block's bytes.
//!
//! The table is stored after the piece's data, in the piece itself: `blocks` big-endian
//! CRC32C values, one per `block_size` bytes of data (the last block may be short). The
//! manifest records the table's own CRC32C, so a damaged table is found as surely as damaged
//! data.

use crate::error::{Error, Result};
use crate::manifest::Piece;

/// The block table of a piece being written.
pub struct TableBuilder {
    block_size: u64,
    /// CRC32C of each full block so far.
    blocks: Vec<u32>,
    /// CRC32C of the bytes of the block being filled, and how many there are.
    cur: u32,
    fill: u64,
    /// CRC32C of all the data so far.
    whole: u32,
}

impl TableBuilder {
    pub fn new(block_size: u32) -> TableBuilder {
        TableBuilder { block_size: block_size as u64, blocks: Vec::new(), cur: 0, fill: 0, whole: 0 }
    }

    /// Take the next bytes of the piece; returns their CRC32C (for the store's per-request
    /// checksum: one pass over each byte serves both).
    pub fn update(&mut self, mut buf: &[u8]) -> u32 {
        let mut all = 0u32;
        while !buf.is_empty() {
            let take = ((self.block_size - self.fill) as usize).min(buf.len());
            let (seg, rest) = buf.split_at(take);
            let c = crc32c::crc32c(seg);
            self.cur = if self.fill == 0 { c } else { crate::util::crc32c_combine(self.cur, c, seg.len()) };
            self.whole = crate::util::crc32c_combine(self.whole, c, seg.len());
            all = crate::util::crc32c_combine(all, c, seg.len());
            self.fill += take as u64;
            if self.fill == self.block_size {
                self.blocks.push(self.cur);
                self.fill = 0;
            }
            buf = rest;
        }
        all
    }

    /// The CRC32C of all the data, the table's bytes, and the table's CRC32C.
    pub fn finish(mut self) -> (u32, Vec<u8>, u32) {
        if self.fill > 0 {
            self.blocks.push(self.cur);
        }
        let table: Vec<u8> = self.blocks.iter().flat_map(|c| c.to_be_bytes()).collect();
        let table_crc = crc32c::crc32c(&table);
        (self.whole, table, table_crc)
    }
}

/// The table of `piece` from its stored bytes, checked against the manifest.
pub fn decode_table(piece: &Piece, bytes: &[u8]) -> Result<Vec<u32>> {
    if bytes.len() as u64 != piece.table_len() {
        return Err(Error::corrupt(format!(
            "block table of piece {} is {} bytes, expected {}",
            piece.key,
            bytes.len(),
            piece.table_len()
        )));
    }
    let got = crc32c::crc32c(bytes);
    if got != piece.table_crc32c {
        return Err(Error::corrupt(format!(
            "block table of piece {} fails its checksum (stored {:08x}, read {got:08x})",
            piece.key, piece.table_crc32c
        )));
    }
    Ok(bytes.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect())
}

/// Check block `b` of `piece`, whose bytes are `data` (the whole block).
pub fn check_block(piece: &Piece, table: &[u32], b: u64, data: &[u8]) -> Result<()> {
    let want = table[b as usize];
    let got = crc32c::crc32c(data);
    if got != want {
        let start = b * piece.block_size as u64;
        return Err(Error::corrupt(format!(
            "piece {} block {b} (piece bytes {start}..{}) fails its checksum (stored {want:08x}, read {got:08x})",
            piece.key,
            start + data.len() as u64
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(len: u64, block_size: u32, table_crc32c: u32) -> Piece {
        Piece { key: "i/p".into(), len, crc32c: 0, owned: true, block_size, table_crc32c }
    }

    #[test]
    fn one_pass_gives_blocks_and_whole() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut t = TableBuilder::new(1024);
        // Pieces of odd sizes that straddle block boundaries.
        for chunk in data.chunks(777) {
            assert_eq!(t.update(chunk), crc32c::crc32c(chunk), "each update gives its bytes' CRC32C");
        }
        let (whole, table, table_crc) = t.finish();
        assert_eq!(whole, crc32c::crc32c(&data));
        let p = piece(data.len() as u64, 1024, table_crc);
        let crcs = decode_table(&p, &table).unwrap();
        assert_eq!(crcs.len(), 10);
        for (b, chunk) in data.chunks(1024).enumerate() {
            assert_eq!(crcs[b], crc32c::crc32c(chunk), "block {b}");
            check_block(&p, &crcs, b as u64, chunk).unwrap();
        }
        let mut bad = data[..1024].to_vec();
        bad[100] ^= 4;
        assert!(check_block(&p, &crcs, 0, &bad).is_err());
        let mut t2 = table.clone();
        t2[3] ^= 1;
        assert!(decode_table(&p, &t2).is_err(), "a damaged table is caught");
        assert!(decode_table(&p, &table[..8]).is_err(), "a short table is caught");
    }
}
