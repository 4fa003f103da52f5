//! `ltsweep bench loader`: images/s of the list data loader alone, as `bench/loader.sh` times
//! its PyTorch peer: a shuffled pass over a list of JPEGs, each image decoded, cropped
//! (`RandomResizedCrop`), flipped and normalised into float batches of `[B, 3, 224, 224]`.

use std::sync::Arc;
use std::time::Instant;

use ltsweep_data::rng::Rng;
use ltsweep_data::{jpeg, list};
use ltsweep_domain::{
    DatasetConfig, DatasetKind, HeadSplit, ListConfig, Normalization, SyntheticConfig,
};
use ltsweep_worker::loader::Loader;
use tch::Device;

use crate::cli::BenchLoaderArgs;
use crate::exit::BadInput;

pub fn loader(args: &BenchLoaderArgs) -> anyhow::Result<()> {
    if args.batch < 2 || args.passes == 0 {
        return Err(
            BadInput("--batch must be at least 2 and --passes at least 1".to_owned()).into(),
        );
    }
    // The folder given is the data root (the caller's own, as in `ltsweep data`).
    let config = DatasetConfig {
        kind: DatasetKind::List,
        path: None,
        imbalance_ratio: 1.0,
        head: HeadSplit::MinCount(100),
        sampling_seed: 0,
        classes: None,
        synthetic: SyntheticConfig {
            train_per_class: 1,
            test_per_class: 1,
            image_size: 32,
            channels: 3,
            noise: 0.0,
        },
        val_per_class: 0,
        subset_seed: None,
        list: Some(ListConfig {
            train: args.list.clone(),
            val: None,
            test: args.list.clone(),
            crop_size: args.crop,
            resize_size: args.crop * 8 / 7,
            color_jitter: args.color_jitter,
            normalization: Normalization::IMAGENET,
            reduced_decode: !args.full_size_decode,
            packed: args.packed.clone(),
        }),
    };
    let data =
        Arc::new(list::prepare(&config, &args.path).map_err(crate::commands::data::bad_data)?);
    let n = data.train.len();
    if args.decode_only {
        return decode_only(&data, args.passes);
    }
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let loader = Loader::new(Arc::clone(&data), threads, Device::Cpu);
    let mut timed = 0usize;
    let mut seconds = 0f64;
    // Pass 0 warms the page cache and the allocator; the others are timed.
    for pass in 0..=args.passes {
        let mut order: Vec<i64> = (0..n as i64).collect();
        Rng::derive(0, &[u64::from(pass)]).shuffle(&mut order);
        let start = Instant::now();
        let mut feed = loader.train(Arc::new(order), Some((0, pass)), 0, args.batch);
        let mut images = 0;
        while let Some(batch) = feed.next_batch() {
            let (x, _) = batch.map_err(crate::commands::data::bad_data)?;
            images += x.size()[0] as usize;
        }
        if pass > 0 {
            timed += images;
            seconds += start.elapsed().as_secs_f64();
        }
    }
    let rate = timed as f64 / seconds;
    println!(
        "ltsweep loader: {rate:.1} images/s ({n} JPEGs, {threads} threads, batch {}, crop {}, {} decode, {} timed passes)",
        args.batch,
        args.crop,
        if args.full_size_decode {
            "full-size"
        } else {
            "reduced-scale"
        },
        args.passes
    );
    println!("images_per_second={rate:.1}");
    Ok(())
}

/// `--decode-only`: whole-image decodes per second on this thread, over the same passes.
fn decode_only(data: &list::FileData, passes: u32) -> anyhow::Result<()> {
    let list::ImageStore::Files(folder) = &data.images else {
        return Err(BadInput("--decode-only reads the JPEG files, not a pack".to_owned()).into());
    };
    let files = data
        .train
        .entries
        .iter()
        .map(|entry| {
            let path = folder.join(&entry.path);
            let bytes = data
                .data_root
                .read(&path, list::IMAGE_LIMIT, "")
                .map_err(|e| BadInput(format!("{}: {e}", path.display())))?;
            Ok((path, bytes))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut seconds = 0f64;
    for pass in 0..=passes {
        let start = Instant::now();
        for (path, bytes) in &files {
            let (width, height) = jpeg::dimensions(bytes)
                .map_err(|e| BadInput(format!("{}: {e}", path.display())))?;
            std::hint::black_box(
                jpeg::decode(bytes, width, height)
                    .map_err(|e| BadInput(format!("{}: {e}", path.display())))?,
            );
        }
        if pass > 0 {
            seconds += start.elapsed().as_secs_f64();
        }
    }
    let rate = (files.len() as f64 * f64::from(passes)) / seconds;
    println!(
        "ltsweep decode only: {rate:.1} images/s ({} JPEGs decoded whole on one thread, {passes} timed passes)",
        files.len()
    );
    println!("images_per_second={rate:.1}");
    Ok(())
}
