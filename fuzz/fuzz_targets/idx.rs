//! The IDX parser (MNIST, Fashion-MNIST), plain and gzip: any bytes give dimensions and data
//! that agree, or a `DataError`.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use ltsweep_data::idx::{Contents, parse_file};

fuzz_target!(|data: &[u8]| {
    for contents in [Contents::Images, Contents::Labels] {
        if let Ok((dims, bytes)) = parse_file(Path::new("fuzz-idx"), data, contents) {
            assert_eq!(dims.iter().product::<usize>(), bytes.len());
        }
    }
});
