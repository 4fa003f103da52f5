//! ltsweep's coordinator (the cluster issue builds it).
