//! The CIFAR-10 and CIFAR-100 record parser: any bytes give records or a `DataError`.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use ltsweep_data::cifar::{Format, parse};

fuzz_target!(|data: &[u8]| {
    for format in [Format::Cifar10, Format::Cifar100] {
        if let Ok((labels, pixels)) = parse(Path::new("fuzz.bin"), data, format) {
            assert_eq!(pixels.len(), labels.len() * 3072);
            assert!(labels.iter().all(|&l| (l as usize) < format.classes()));
        }
    }
});
