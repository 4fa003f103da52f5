//! ltsweep's report (the report issue builds it).
