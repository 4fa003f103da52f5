//! ltsweep's worker (the trainer issue builds it).
