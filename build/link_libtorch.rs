// Shared by the build scripts of the packages whose binaries and tests call libtorch.

/// Makes this package's binaries and test executables find libtorch by themselves and really use
/// CUDA where the installed wheel has it.
fn link_libtorch() {
    // torch-sys (links = "tch") publishes the library folder it linked against.
    let lib = std::env::var("DEP_TCH_LIBTORCH_LIB")
        .expect("torch-sys did not report its libtorch folder; is torch-sys a direct dependency?");
    // An rpath, so that no LD_LIBRARY_PATH is needed, from any working directory.
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    // tch links with --as-needed, and no symbol of libtorch_cuda is referenced directly, so the
    // linker would drop it and CUDA would silently stay unavailable. libtorch.so depends on
    // libtorch_cuda.so (when the wheel has one), so keeping it keeps CUDA.
    println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
    println!("cargo:rustc-link-arg=-ltorch");
    // The libtorch version, for `ltsweep doctor`: the wheel's version.py beside lib/.
    let version_py = std::path::Path::new(&lib).join("../version.py");
    let version = std::fs::read_to_string(&version_py)
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("__version__ = "))
                .map(|v| v.trim_matches(|c| c == '\'' || c == '"').to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=LTSWEEP_LIBTORCH_VERSION={version}");
    println!("cargo:rustc-env=LTSWEEP_LIBTORCH_LIB={lib}");
    println!("cargo:rerun-if-changed={}", version_py.display());
}
