#!/bin/sh
# The shared libraries of the torch wheel (and of the nvidia-* wheels beside it) that the worker
# loads, one a line, as paths relative to SITE, the site-packages folder that holds them:
# what the binary links (ldd's whole chain), and what libtorch and cuDNN open by name while
# running, with what those link. deploy/Containerfile.worker copies exactly these into its
# image; the rest of the wheels (Python code and bindings, headers, triton, static libraries,
# CUDA libraries nothing links) stays out.
#
#   deploy/worker-libraries.sh BINARY SITE
set -eu
[ $# -eq 2 ] || { echo "usage: $0 BINARY SITE" >&2; exit 2; }
binary=$(realpath "$1")
site=$(realpath "$2")

# Opened with dlopen, so in no ldd output: GPU linear algebra and run-time kernel compilation
# (libtorch), cuDNN's engines (libcudnn.so.9 only loads them), NVRTC's built-in headers.
opened='torch/lib/libtorch_cuda_linalg.so torch/lib/libcaffe2_nvrtc.so nvidia/cudnn/lib/libcudnn_*.so.* nvidia/*/lib/libnvrtc-builtins.so.*'

found=$(mktemp)
trap 'rm -f "$found"' EXIT

# Appends to $found the libraries under SITE that ldd resolves for $1, as real paths (ldd
# shows libtorch's relative RUNPATH with its ../.. in it). A library ldd cannot find fails the
# script, since the image would lack it too; but for the GPU driver's own libcuda, which the
# container runtime brings from the host.
linked() {
    out=$(ldd "$1")
    missing=$(printf '%s\n' "$out" | grep 'not found' | grep -v '^[[:space:]]*libcuda\.so\.1 ' || true)
    if [ -n "$missing" ]; then
        printf '%s: cannot find\n%s\n' "$1" "$missing" >&2
        exit 1
    fi
    for lib in $(printf '%s\n' "$out" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }'); do
        lib=$(realpath "$lib")
        case $lib in "$site"/*) echo "$lib" >>"$found" ;; esac
    done
}

linked "$binary"
cd "$site"
for pattern in $opened; do
    for lib in $pattern; do
        [ -f "$lib" ] || continue
        echo "$site/$lib" >>"$found"
        linked "$site/$lib"
    done
done
sed "s|^$site/||" "$found" | sort -u
