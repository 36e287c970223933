//! The metrics region (docs/PROTOCOL.md, "The metrics region"): a small shared memory file
//! the monitor creates once, sealed so that its size never changes, and passes to every
//! generation of the program, which map it and count in it (`src/program-metrics.ts` holds
//! the layout; the mapping is the addon's `region.rs`). The monitor creates it and never maps or reads it: what a child writes there
//! can only mislead the children's own numbers.

use crate::sys;
use crate::Result;

/// The region's size in bytes: the layout in `src/program-metrics.ts` fits in it exactly.
pub const SIZE: usize = 96 * 1024;

/// A new region: a close-on-exec memfd of `SIZE` zero bytes, sealed against shrinking,
/// growing and further seals (Linux; elsewhere Unsupported).
pub fn create() -> Result<i32> {
    sys::create_sealed(SIZE).map_err(|e| e.about("creating the metrics region"))
}

/// Where the monitor records how its upgrades ended: two little-endian u64 at this byte,
/// succeeded then failed (`src/program-metrics.ts` reads them; docs/PROTOCOL.md).
pub const UPGRADES_AT: u64 = 16;

/// Writes the monitor's upgrade counts into region `fd` (never reading it back).
pub fn record_upgrades(fd: i32, succeeded: u64, failed: u64) -> Result<()> {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&succeeded.to_le_bytes());
    bytes[8..].copy_from_slice(&failed.to_le_bytes());
    sys::write_at(fd, UPGRADES_AT, &bytes).map_err(|e| e.about("the metrics region's upgrade counts"))
}
